//! AWS: STS `AssumeRoleWithWebIdentity` and `GetCallerIdentity`, and Secrets Manager
//! `GetSecretValue` and `ListSecrets`, signed with SigV4 (the `aws-sigv4` crate) using the session
//! credentials the exchange returned.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use keyward_core::endpoints::{EndpointsFile, real};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Cause, CloudError, Presented, Refusal, Step};
use crate::secret::Secret;
use crate::transport::{Answer, Deadline, Transport};

/// The region of a credential or identity that names none: also where the global STS endpoint
/// signs.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `region`, or [`DEFAULT_REGION`] when none is set.
pub fn region_or_default(region: Option<&str>) -> &str {
    region.unwrap_or(DEFAULT_REGION)
}

/// The audience AWS STS expects (the IAM OIDC provider's client id).
pub const AUDIENCE: &str = "sts.amazonaws.com";
const STS_VERSION: &str = "2011-06-15";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Temporary credentials from `AssumeRoleWithWebIdentity`.
#[derive(Clone, Debug)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Absent for an IAM user's long-lived access key.
    pub session_token: Option<Secret>,
    /// RFC 3339, as STS printed it.
    pub expiration: String,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`
    pub assumed_role_arn: String,
}

impl SessionCredentials {
    /// An IAM user's long-lived access key (the static-credentials path): no session token.
    pub fn static_keys(access_key_id: &str, secret_access_key: Secret) -> SessionCredentials {
        SessionCredentials {
            access_key_id: access_key_id.to_owned(),
            secret_access_key,
            session_token: None,
            expiration: String::new(),
            assumed_role_arn: String::new(),
        }
    }
}

/// Who the credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub account: String,
    pub user_id: String,
}

#[derive(Clone)]
pub struct AwsClient {
    transport: Transport,
    sts: String,
    sts_region: String,
    secrets_manager: String,
    region: String,
}

/// The signing time. SigV4 signatures carry the real time, so this reads the clock.
#[allow(clippy::disallowed_methods)] // the single place this crate reads the wall clock
pub(crate) fn wall_clock() -> SystemTime {
    SystemTime::now()
}

impl AwsClient {
    pub(crate) fn new(transport: Transport, endpoints: &EndpointsFile, region: &str) -> AwsClient {
        let sts = endpoints.aws_sts();
        // The global STS endpoint signs in us-east-1; a regional or simulated one in its region.
        let sts_region = if sts == real::AWS_STS {
            DEFAULT_REGION.to_owned()
        } else {
            region.to_owned()
        };
        AwsClient {
            transport,
            sts_region,
            secrets_manager: endpoints.aws_secrets_manager(region),
            sts,
            region: region.to_owned(),
        }
    }

    /// Exchanges Keyward's JWT for the role's temporary credentials (an unsigned call).
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        web_identity_token: &str,
        duration: Option<Duration>,
        deadline: &Deadline,
    ) -> Result<SessionCredentials, CloudError> {
        let step = Step::AwsAssumeRole;
        if !role_arn.starts_with("arn:aws") || !role_arn.contains(":role/") {
            return Err(CloudError::InvalidArgument {
                step,
                detail: format!(
                    "'{role_arn}' is not a role ARN (arn:aws:iam::<account>:role/<name>)"
                ),
            });
        }
        let presented = Presented::from_jwt(web_identity_token);
        let duration = duration.map(|d| d.as_secs().to_string());
        let url = format!("{}/", self.sts);
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    let mut form = vec![
                        ("Action", "AssumeRoleWithWebIdentity"),
                        ("Version", STS_VERSION),
                        ("RoleArn", role_arn),
                        ("RoleSessionName", session_name),
                        ("WebIdentityToken", web_identity_token),
                    ];
                    if let Some(d) = &duration {
                        form.push(("DurationSeconds", d));
                    }
                    Ok(self.transport.http().post(&url).form(&form))
                },
                |a| sts_refusal(step, a, presented.clone()),
            )
            .await?;
        session_credentials(step, &answer)
    }

    /// Assumes `role_arn` with long-lived keys (the static path's optional role): STS
    /// `AssumeRole`, SigV4-signed, with the external id when the role's trust requires one.
    pub async fn assume_role(
        &self,
        credentials: &SessionCredentials,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
        deadline: &Deadline,
    ) -> Result<SessionCredentials, CloudError> {
        let step = Step::AwsAssumeRoleStatic;
        if !role_arn.starts_with("arn:aws") || !role_arn.contains(":role/") {
            return Err(CloudError::InvalidArgument {
                step,
                detail: format!(
                    "'{role_arn}' is not a role ARN (arn:aws:iam::<account>:role/<name>)"
                ),
            });
        }
        // The serializer is not Send; finish it before any await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", "AssumeRole")
                .append_pair("Version", STS_VERSION)
                .append_pair("RoleArn", role_arn)
                .append_pair("RoleSessionName", session_name);
            if let Some(id) = external_id {
                form.append_pair("ExternalId", id);
            }
            form.finish()
        };
        let answer = self
            .signed_sts_call(step, credentials, &body, deadline)
            .await?;
        session_credentials(step, &answer)
    }

    /// Proves the credentials work: STS `GetCallerIdentity`, SigV4-signed.
    pub async fn get_caller_identity(
        &self,
        credentials: &SessionCredentials,
        deadline: &Deadline,
    ) -> Result<CallerIdentity, CloudError> {
        let step = Step::AwsCallerIdentity;
        let body = format!("Action=GetCallerIdentity&Version={STS_VERSION}");
        let answer = self
            .signed_sts_call(step, credentials, &body, deadline)
            .await?;
        let text = answer.text();
        let doc = roxmltree::Document::parse(&text)
            .map_err(|e| answer.unexpected(step, format!("not XML: {e}")))?;
        let field = |name: &str| {
            doc.descendants()
                .find(|n| n.tag_name().name() == name)
                .and_then(|n| n.text())
                .map(|t| t.trim().to_owned())
                .unwrap_or_default()
        };
        Ok(CallerIdentity {
            arn: field("Arn"),
            account: field("Account"),
            user_id: field("UserId"),
        })
    }

    /// `GetSecretValue` by name or ARN; the current version's `SecretString`.
    pub async fn get_secret_value(
        &self,
        credentials: &SessionCredentials,
        secret_id: &str,
        deadline: &Deadline,
    ) -> Result<Secret, CloudError> {
        let step = Step::AwsSecretGet;
        if secret_id.is_empty() {
            return Err(CloudError::InvalidArgument {
                step,
                detail: "the secret id is empty".into(),
            });
        }
        let answer = self
            .secrets_manager_call(
                step,
                credentials,
                "GetSecretValue",
                json!({ "SecretId": secret_id }),
                deadline,
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Value_ {
            secret_string: Option<String>,
        }
        let body: Value_ = answer.json(step)?;
        body.secret_string.map(Secret::new).ok_or_else(|| {
            answer.unexpected(
                step,
                format!("the secret '{secret_id}' holds binary data, not a SecretString"),
            )
        })
    }

    /// Secret names starting with `prefix`, all pages (needs `secretsmanager:ListSecrets` on `*`).
    pub async fn list_secrets(
        &self,
        credentials: &SessionCredentials,
        prefix: &str,
        deadline: &Deadline,
    ) -> Result<Vec<String>, CloudError> {
        let step = Step::AwsSecretList;
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut request = json!({ "MaxResults": 100 });
            if !prefix.is_empty() {
                request["Filters"] = json!([{ "Key": "name", "Values": [prefix] }]);
            }
            if let Some(t) = &next {
                request["NextToken"] = json!(t);
            }
            let answer = self
                .secrets_manager_call(step, credentials, "ListSecrets", request, deadline)
                .await?;
            let page: Value = answer.json(step)?;
            names.extend(
                page["SecretList"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["Name"].as_str())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_owned),
            );
            match page["NextToken"].as_str() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }

    /// An STS query-protocol call signed with `credentials` (AssumeRole, GetCallerIdentity).
    async fn signed_sts_call(
        &self,
        step: Step,
        credentials: &SessionCredentials,
        body: &str,
        deadline: &Deadline,
    ) -> Result<Answer, CloudError> {
        let url = format!("{}/", self.sts);
        self.transport
            .call(
                step,
                deadline,
                || {
                    self.signed(
                        step,
                        credentials,
                        "sts",
                        &self.sts_region,
                        &url,
                        &[(
                            "content-type",
                            "application/x-www-form-urlencoded; charset=utf-8",
                        )],
                        body.as_bytes(),
                    )
                },
                |a| long_lived(credentials, sts_refusal(step, a, None)),
            )
            .await
    }

    async fn secrets_manager_call(
        &self,
        step: Step,
        credentials: &SessionCredentials,
        operation: &str,
        body: Value,
        deadline: &Deadline,
    ) -> Result<Answer, CloudError> {
        let url = format!("{}/", self.secrets_manager);
        let body = body.to_string();
        let target = format!("secretsmanager.{operation}");
        self.transport
            .call(
                step,
                deadline,
                || {
                    self.signed(
                        step,
                        credentials,
                        "secretsmanager",
                        &self.region,
                        &url,
                        &[("content-type", JSON_1_1), ("x-amz-target", &target)],
                        body.as_bytes(),
                    )
                },
                |a| long_lived(credentials, json_refusal(step, a)),
            )
            .await
    }

    /// A POST carrying `headers` and `body`, signed for `service` in `region`.
    #[allow(clippy::too_many_arguments)]
    fn signed(
        &self,
        step: Step,
        credentials: &SessionCredentials,
        service: &str,
        region: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<reqwest::RequestBuilder, CloudError> {
        let invalid = |detail: String| CloudError::InvalidArgument { step, detail };
        let parsed =
            url::Url::parse(url).map_err(|e| invalid(format!("bad endpoint URL {url}: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(invalid(format!("the endpoint URL {url} has no host"))),
        };
        let identity = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose().to_owned(),
            credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            None,
            "keyward",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(wall_clock())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| invalid(format!("SigV4 parameters: {e}")))?
            .into();
        let mut all: Vec<(&str, &str)> = vec![("host", &host)];
        all.extend_from_slice(headers);
        let signable =
            SignableRequest::new("POST", url, all.iter().copied(), SignableBody::Bytes(body))
                .map_err(|e| invalid(format!("SigV4 request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| invalid(format!("SigV4 signing failed: {e}")))?
            .into_parts();
        let (signature_headers, _) = instructions.into_parts();
        // reqwest writes the same Host from the URL; the signed headers travel as given.
        let mut request = self.transport.http().post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for header in signature_headers {
            request = request.header(header.name(), header.value());
        }
        Ok(request)
    }
}

/// An IAM user's own key refused is a wrong or deactivated access key, not a stale session.
fn long_lived(credentials: &SessionCredentials, mut refusal: Refusal) -> Refusal {
    if credentials.session_token.is_none() && refusal.cause == Cause::SessionCredentialsRejected {
        refusal.cause = Cause::AccessKeyRejected;
    }
    refusal
}

/// The `<Credentials>` and `<AssumedRoleUser>` of an AssumeRole-family answer.
fn session_credentials(step: Step, answer: &Answer) -> Result<SessionCredentials, CloudError> {
    let text = answer.text();
    let doc = roxmltree::Document::parse(&text)
        .map_err(|e| answer.unexpected(step, format!("not XML: {e}")))?;
    let field = |name: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
            .ok_or_else(|| answer.unexpected(step, format!("no <{name}> in the answer")))
    };
    Ok(SessionCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expiration: field("Expiration")?,
        assumed_role_arn: doc
            .descendants()
            .find(|n| n.tag_name().name() == "AssumedRoleUser")
            .and_then(|n| n.children().find(|c| c.tag_name().name() == "Arn"))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_owned(),
    })
}

/// STS's XML error: `<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error>…`.
fn sts_refusal(step: Step, answer: &Answer, presented: Option<Presented>) -> Refusal {
    let text = answer.text();
    let (code, message) = match roxmltree::Document::parse(&text) {
        Ok(doc) => {
            let field = |name: &str| {
                doc.descendants()
                    .find(|n| n.tag_name().name() == name)
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            (field("Code"), field("Message"))
        }
        Err(_) => (format!("HTTP {}", answer.status), text.clone()),
    };
    let m = message.to_ascii_lowercase();
    let cause = match code.as_str() {
        "IDPCommunicationError" => Cause::IssuerUnreachable,
        "Throttling" | "ThrottlingException" => Cause::Unavailable,
        "AccessDenied" if step == Step::AwsAssumeRoleStatic => Cause::AssumeRoleDenied,
        "AccessDenied" => Cause::TrustPolicyMismatch,
        "InvalidClientTokenId" | "SignatureDoesNotMatch" if step == Step::AwsAssumeRoleStatic => {
            Cause::AccessKeyRejected
        }
        "ExpiredTokenException" => Cause::TokenExpired,
        "InvalidIdentityToken" if m.contains("no openidconnect provider") => {
            Cause::OidcProviderNotRegistered
        }
        "InvalidIdentityToken" if m.contains("audience") => Cause::AudienceMismatch,
        "InvalidIdentityToken" if m.contains("retrieve verification key") => {
            Cause::IssuerUnreachable
        }
        "InvalidIdentityToken" if m.contains("not a valid jwt") => Cause::MalformedToken,
        "InvalidIdentityToken" => Cause::UnknownSigningKey,
        "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" => {
            Cause::SessionCredentialsRejected
        }
        "ValidationError" | "InvalidParameterValue" | "MissingParameter" => Cause::BadRequest,
        _ => Cause::Other,
    };
    Refusal::new(step, answer.status, code, message, cause, presented)
}

/// Secrets Manager's JSON error: `{"__type": "<Code>", "message": "…"}` (`__type` may carry a
/// namespace before `#`; some services spell it `Message`).
fn json_refusal(step: Step, answer: &Answer) -> Refusal {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = body["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| format!("HTTP {}", answer.status));
    let message = body["message"]
        .as_str()
        .or_else(|| body["Message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| answer.text());
    let cause = match (step, code.as_str()) {
        (_, "ThrottlingException") => Cause::Unavailable,
        (Step::AwsSecretList, "AccessDeniedException") => Cause::MissingListSecrets,
        (_, "AccessDeniedException") => Cause::MissingGetSecretValue,
        (_, "ResourceNotFoundException") => Cause::SecretNotFound,
        (
            _,
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "IncompleteSignature",
        ) => Cause::SessionCredentialsRejected,
        (_, "InvalidParameterException" | "InvalidRequestException" | "ValidationException") => {
            Cause::BadRequest
        }
        _ => Cause::Other,
    };
    Refusal::new(step, answer.status, code, message, cause, None)
}
