//! GCP: STS token exchange, IAM Credentials `generateAccessToken`, Secret Manager access and
//! list, and Vertex `generateContent` (the call that proves `roles/aiplatform.user`).

use std::time::Duration;

use base64::Engine;
use keyward_core::endpoints::EndpointsFile;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Cause, CloudError, Presented, Refusal, Step};
use crate::secret::Secret;
use crate::transport::{Answer, Deadline, Transport};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The STS audience for a provider resource name
/// (`projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>`).
pub fn audience_for(provider: &str) -> String {
    format!(
        "//iam.googleapis.com/{}",
        provider.trim_start_matches("//iam.googleapis.com/")
    )
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service account key file (`gcloud iam service-accounts keys create`) that
/// the JWT bearer grant uses. Read from a [`Secret`]; the private key never leaves this module.
#[derive(Deserialize)]
struct ServiceAccountKeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key_id: String,
    private_key: String,
    token_uri: String,
}

impl Drop for ServiceAccountKeyFile {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

/// The service account and project a key file names (nothing secret), for messages and for
/// the project a credential defaults to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFileInfo {
    pub client_email: String,
    pub project_id: Option<String>,
}

/// Reads the public facts of a service account key file, or says what is wrong with it.
pub fn key_file_info(json: &str) -> Result<KeyFileInfo, String> {
    let parsed = parse_key_file(json)?;
    let project_id = serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| v["project_id"].as_str().map(str::to_owned));
    Ok(KeyFileInfo {
        client_email: parsed.client_email.clone(),
        project_id,
    })
}

fn parse_key_file(json: &str) -> Result<ServiceAccountKeyFile, String> {
    // serde's message could quote the private key; name only the problem.
    let file: ServiceAccountKeyFile = serde_json::from_str(json).map_err(|e| {
        format!(
            "not a service account key file (JSON with type, client_email, private_key_id, private_key, token_uri): error at line {} column {}",
            e.line(),
            e.column()
        )
    })?;
    if file.kind != "service_account" {
        return Err(format!(
            "the key file's type is '{}', not 'service_account'",
            file.kind
        ));
    }
    if !file.token_uri.starts_with("https://") {
        return Err(format!(
            "the key file's token_uri '{}' is not an https URL",
            file.token_uri
        ));
    }
    Ok(file)
}

/// The RS256 JWT a service account key signs for the JWT bearer grant (RFC 7523), valid an hour.
fn sign_assertion(file: &ServiceAccountKeyFile) -> Result<zeroize::Zeroizing<String>, String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(file.private_key.as_bytes())
        .map_err(|_| "the key file's private_key is not a PEM private key".to_owned())?;
    let pair = match &der {
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => {
            aws_lc_rs::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
        }
        rustls_pki_types::PrivateKeyDer::Pkcs1(k) => {
            aws_lc_rs::signature::RsaKeyPair::from_der(k.secret_pkcs1_der())
        }
        _ => return Err("the key file's private_key is not an RSA key".into()),
    }
    .map_err(|_| "the key file's private_key is not a usable RSA key".to_owned())?;
    let iat = crate::aws::wall_clock()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": file.private_key_id});
    let claims = json!({
        "iss": file.client_email,
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": file.token_uri,
        "iat": iat,
        "exp": iat + 3600,
    });
    let signing_input = format!("{}.{}", b64(&header), b64(&claims));
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the assertion with the key file's private_key failed".to_owned())?;
    Ok(zeroize::Zeroizing::new(format!(
        "{signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&signature)
    )))
}

/// A Google OAuth access token (federated or a service account's).
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    /// Seconds the token lives from issue, as the cloud said.
    pub expires_in: Option<u64>,
    /// RFC 3339 expiry, when the cloud gave one (generateAccessToken does).
    pub expire_time: Option<String>,
}

#[derive(Clone)]
pub struct GcpClient {
    transport: Transport,
    sts: String,
    iam: String,
    secret_manager: String,
    vertex: String,
    /// Set when the endpoints file redirects Google's token endpoint; else the key's token_uri.
    oauth2: Option<String>,
}

impl GcpClient {
    pub(crate) fn new(transport: Transport, endpoints: &EndpointsFile) -> GcpClient {
        GcpClient {
            transport,
            sts: endpoints.gcp_sts(),
            iam: endpoints.gcp_iam_credentials(),
            secret_manager: endpoints.gcp_secret_manager(),
            vertex: endpoints.gcp_vertex(),
            oauth2: endpoints.gcp_oauth2(),
        }
    }

    /// Exchanges Keyward's JWT for a federated access token at STS.
    pub async fn exchange(
        &self,
        audience: &str,
        subject_token: &str,
        deadline: &Deadline,
    ) -> Result<AccessToken, CloudError> {
        let step = Step::GcpStsExchange;
        let url = format!("{}/v1/token", self.sts);
        let presented = Presented::from_jwt(subject_token);
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    Ok(self.transport.http().post(&url).form(&[
                        ("grant_type", TOKEN_EXCHANGE),
                        ("audience", audience),
                        ("scope", CLOUD_PLATFORM_SCOPE),
                        ("requested_token_type", ACCESS_TOKEN_TYPE),
                        ("subject_token", subject_token),
                        ("subject_token_type", JWT_TYPE),
                    ]))
                },
                |a| refusal(step, a, presented.clone()),
            )
            .await?;
        #[derive(Deserialize)]
        struct Exchanged {
            access_token: String,
            expires_in: Option<u64>,
        }
        let body: Exchanged = answer.json(step)?;
        Ok(AccessToken {
            token: Secret::new(body.access_token),
            expires_in: body.expires_in,
            expire_time: None,
        })
    }

    /// The static path: signs a JWT with the service account key and trades it at Google's
    /// token endpoint (RFC 7523 JWT bearer grant) for a cloud-platform access token.
    pub async fn service_account_token(
        &self,
        key_file: &Secret,
        deadline: &Deadline,
    ) -> Result<AccessToken, CloudError> {
        let step = Step::GcpServiceAccountKey;
        let file = parse_key_file(key_file.expose())
            .map_err(|detail| CloudError::InvalidArgument { step, detail })?;
        let assertion =
            sign_assertion(&file).map_err(|detail| CloudError::InvalidArgument { step, detail })?;
        let url = match &self.oauth2 {
            Some(base) => format!("{base}/token"),
            None => file.token_uri.clone(),
        };
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    Ok(self.transport.http().post(&url).form(&[
                        ("grant_type", JWT_BEARER),
                        ("assertion", assertion.as_str()),
                    ]))
                },
                |a| refusal(step, a, None),
            )
            .await?;
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            expires_in: Option<u64>,
        }
        let body: Granted = answer.json(step)?;
        Ok(AccessToken {
            token: Secret::new(body.access_token),
            expires_in: body.expires_in,
            expire_time: None,
        })
    }

    /// Impersonates `service_account` with a federated token (needs
    /// `roles/iam.workloadIdentityUser` on it).
    pub async fn generate_access_token(
        &self,
        federated: &AccessToken,
        service_account: &str,
        lifetime: Duration,
        deadline: &Deadline,
    ) -> Result<AccessToken, CloudError> {
        let step = Step::GcpImpersonation;
        if service_account.is_empty() || service_account.contains('/') {
            return Err(CloudError::InvalidArgument {
                step,
                detail: format!(
                    "'{service_account}' is not a service account email (name@project.iam.gserviceaccount.com)"
                ),
            });
        }
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
            self.iam
        );
        let body = json!({
            "scope": [CLOUD_PLATFORM_SCOPE],
            "lifetime": format!("{}s", lifetime.as_secs()),
        });
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    Ok(self
                        .transport
                        .http()
                        .post(&url)
                        .bearer_auth(federated.token.expose())
                        .json(&body))
                },
                |a| refusal(step, a, None),
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Generated {
            access_token: String,
            expire_time: Option<String>,
        }
        let body: Generated = answer.json(step)?;
        Ok(AccessToken {
            token: Secret::new(body.access_token),
            expires_in: None,
            expire_time: body.expire_time,
        })
    }

    /// Reads one version (`latest` or a number) of a secret; the payload's CRC32C is checked.
    pub async fn access_secret(
        &self,
        token: &AccessToken,
        project: &str,
        name: &str,
        version: &str,
        deadline: &Deadline,
    ) -> Result<Secret, CloudError> {
        let step = Step::GcpSecretAccess;
        for (what, value) in [
            ("project", project),
            ("secret name", name),
            ("version", version),
        ] {
            if value.is_empty() || value.contains(['/', '?', '#']) {
                return Err(CloudError::InvalidArgument {
                    step,
                    detail: format!("the {what} '{value}' is empty or contains '/', '?' or '#'"),
                });
            }
        }
        let url = format!(
            "{}/v1/projects/{project}/secrets/{name}/versions/{version}:access",
            self.secret_manager
        );
        let answer = self
            .transport
            .get_with_bearer(step, deadline, &url, token.token.expose(), |a| {
                refusal(step, a, None)
            })
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            data: String,
            data_crc32c: Option<String>,
        }
        #[derive(Deserialize)]
        struct Accessed {
            payload: Payload,
        }
        let body: Accessed = answer.json(step)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body.payload.data.as_bytes())
            .map_err(|e| answer.unexpected(step, format!("payload.data is not base64: {e}")))?;
        if let Some(expected) = body.payload.data_crc32c {
            let actual = crc32c::crc32c(&bytes);
            if expected.parse::<u32>().ok() != Some(actual) {
                return Err(answer.unexpected(
                    step,
                    "the payload's CRC32C does not match its data (corrupted in transit)",
                ));
            }
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| answer.unexpected(step, "the secret's payload is not UTF-8 text"))?;
        Ok(Secret::new(text))
    }

    /// Secret names in `project` starting with `prefix`, all pages.
    pub async fn list_secrets(
        &self,
        token: &AccessToken,
        project: &str,
        prefix: &str,
        deadline: &Deadline,
    ) -> Result<Vec<String>, CloudError> {
        let step = Step::GcpSecretList;
        let url = format!("{}/v1/projects/{project}/secrets", self.secret_manager);
        let mut names = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("pageSize", "250".to_owned())];
            if !prefix.is_empty() {
                query.push(("filter", format!("name:{prefix}")));
            }
            if let Some(t) = &page_token {
                query.push(("pageToken", t.clone()));
            }
            let answer = self
                .transport
                .call(
                    step,
                    deadline,
                    || {
                        Ok(self
                            .transport
                            .http()
                            .get(&url)
                            .query(&query)
                            .bearer_auth(token.token.expose()))
                    },
                    |a| refusal(step, a, None),
                )
                .await?;
            #[derive(Deserialize)]
            struct Item {
                name: String,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Page {
                #[serde(default)]
                secrets: Vec<Item>,
                next_page_token: Option<String>,
            }
            let page: Page = answer.json(step)?;
            // `name:` filters match anywhere in the name; autocomplete wants a prefix.
            names.extend(
                page.secrets
                    .into_iter()
                    .filter_map(|s| s.name.rsplit('/').next().map(str::to_owned))
                    .filter(|n| n.starts_with(prefix)),
            );
            match page.next_page_token {
                Some(t) if !t.is_empty() => page_token = Some(t),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }

    /// Calls Vertex `generateContent` with `prompt` and returns the first candidate's text.
    pub async fn generate_content(
        &self,
        token: &AccessToken,
        project: &str,
        location: &str,
        model: &str,
        prompt: &str,
        deadline: &Deadline,
    ) -> Result<String, CloudError> {
        let step = Step::GcpVertex;
        let url = format!(
            "{}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent",
            self.vertex
        );
        let body = json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]});
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    Ok(self
                        .transport
                        .http()
                        .post(&url)
                        .bearer_auth(token.token.expose())
                        .json(&body))
                },
                |a| refusal(step, a, None),
            )
            .await?;
        let body: Value = answer.json(step)?;
        body["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| answer.unexpected(step, "no candidates[0].content.parts[0].text"))
    }
}

/// Reads either GCP error shape: OAuth (`{"error": "<code>", "error_description"}`, STS) or
/// Google API (`{"error": {"code", "message", "status"}}`).
fn refusal(step: Step, answer: &Answer, presented: Option<Presented>) -> Refusal {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let (code, message) = match &body["error"] {
        Value::String(code) => (
            code.clone(),
            body["error_description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        Value::Object(error) => (
            error
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => (format!("HTTP {}", answer.status), answer.text()),
    };
    let cause = cause(step, &code, &message);
    Refusal::new(step, answer.status, code, message, cause, presented)
}

fn cause(step: Step, code: &str, message: &str) -> Cause {
    match (step, code) {
        (Step::GcpStsExchange, "unauthorized_client")
            if message.contains("attribute condition") =>
        {
            Cause::AttributeConditionRejected
        }
        (Step::GcpStsExchange, "invalid_target") => Cause::ProviderNotFound,
        (Step::GcpStsExchange, "invalid_grant") => sts_invalid_grant(message),
        (Step::GcpStsExchange, "invalid_request" | "unsupported_grant_type") => Cause::BadRequest,
        (Step::GcpServiceAccountKey, "invalid_grant") if message.contains("account not found") => {
            Cause::ServiceAccountNotFound
        }
        (Step::GcpServiceAccountKey, "invalid_grant") if message.contains("timeframe") => {
            Cause::TokenExpired
        }
        (Step::GcpServiceAccountKey, "invalid_grant") => Cause::ServiceAccountKeyRejected,
        (Step::GcpServiceAccountKey, _) => Cause::BadRequest,
        (_, "UNAUTHENTICATED") => Cause::SessionCredentialsRejected,
        (Step::GcpImpersonation, "PERMISSION_DENIED" | "NOT_FOUND") => {
            Cause::MissingWorkloadIdentityUser
        }
        (Step::GcpVertex, "PERMISSION_DENIED") => Cause::MissingAiplatformUser,
        (Step::GcpSecretAccess, "PERMISSION_DENIED") => Cause::MissingSecretAccessor,
        (Step::GcpSecretAccess, "NOT_FOUND") => Cause::SecretNotFound,
        (Step::GcpSecretList, "PERMISSION_DENIED") => Cause::MissingSecretLister,
        (_, "INVALID_ARGUMENT") => Cause::BadRequest,
        _ => Cause::Other,
    }
}

/// STS says `INVALID_ARGUMENT: …` for many JWT problems; its detail tells them apart.
fn sts_invalid_grant(message: &str) -> Cause {
    let m = message.to_ascii_lowercase();
    if m.contains("failed to fetch jwks") {
        Cause::IssuerUnreachable
    } else if m.contains("audience") {
        Cause::AudienceMismatch
    } else if m.contains("short-lived") || m.contains("timeframe") || m.contains("expired") {
        Cause::TokenExpired
    } else if m.contains("signature") || m.contains("kid") {
        Cause::UnknownSigningKey
    } else if m.contains("issuer") {
        Cause::IssuerMismatch
    } else if m.contains("invalid jwt") {
        // The reference table: issuer mismatch or a stale JWKS cache, undistinguished by GCP.
        Cause::IssuerMismatch
    } else {
        Cause::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_descriptions_map_to_causes() {
        let cases = [
            (
                "unauthorized_client",
                "PERMISSION_DENIED: The given credential is rejected by the attribute condition.",
                Cause::AttributeConditionRejected,
            ),
            (
                "invalid_grant",
                "INVALID_ARGUMENT: The audience in ID Token [x] does not match the expected audience.",
                Cause::AudienceMismatch,
            ),
            (
                "invalid_grant",
                "INVALID_ARGUMENT: Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
                Cause::TokenExpired,
            ),
            (
                "invalid_grant",
                "INVALID_ARGUMENT: Invalid JWT: the issuer 'a' does not match the provider's issuer URI 'b'.",
                Cause::IssuerMismatch,
            ),
            (
                "invalid_grant",
                "INVALID_ARGUMENT: Invalid JWT signature: no key.",
                Cause::UnknownSigningKey,
            ),
            (
                "invalid_grant",
                "INVALID_ARGUMENT: Failed to fetch JWKS from issuer https://x: refused",
                Cause::IssuerUnreachable,
            ),
            (
                "invalid_target",
                "The target service indicated by the \"audience\" parameters is invalid.",
                Cause::ProviderNotFound,
            ),
        ];
        for (code, message, expected) in cases {
            assert_eq!(
                cause(Step::GcpStsExchange, code, message),
                expected,
                "{message}"
            );
        }
        assert_eq!(
            cause(Step::GcpImpersonation, "PERMISSION_DENIED", ""),
            Cause::MissingWorkloadIdentityUser
        );
        assert_eq!(
            cause(Step::GcpVertex, "PERMISSION_DENIED", ""),
            Cause::MissingAiplatformUser
        );
        assert_eq!(
            cause(Step::GcpSecretList, "PERMISSION_DENIED", ""),
            Cause::MissingSecretLister
        );
        assert_eq!(
            cause(Step::GcpSecretAccess, "NOT_FOUND", ""),
            Cause::SecretNotFound
        );
    }

    #[test]
    fn audience_accepts_the_resource_name_or_the_full_audience() {
        let name = "projects/1/locations/global/workloadIdentityPools/p/providers/x";
        assert_eq!(audience_for(name), format!("//iam.googleapis.com/{name}"));
        assert_eq!(audience_for(&audience_for(name)), audience_for(name));
    }
}
