//! AWS: STS `AssumeRoleWithWebIdentity` and `GetCallerIdentity` (query protocol, XML answers)
//! and Secrets Manager (JSON 1.1 protocol), with SigV4 checked on every signed call and IAM trust
//! and identity policies evaluated as AWS does for these actions.

use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::jwt::{FetchError, JwtError, TimeRules, Unverified, check_times};
use crate::sigv4::{self, SigError};
use crate::sim::{
    AwsSession, Req, Sim, Version, form_get, json_response, random_string, random_upper,
    xml_response,
};
use crate::state::{AwsPolicyStatement, AwsRole, AwsState, provider_host};

const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
const TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: false,
    max_lifetime: None,
};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub fn error_xml(code: &str, message: &str, kind: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{STS_NS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        esc(code),
        esc(message),
        uuid::Uuid::new_v4()
    )
}

fn sts_error(status: StatusCode, code: &str, message: impl AsRef<str>) -> Response {
    xml_response(
        status,
        error_xml(
            code,
            message.as_ref(),
            if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
        ),
    )
}

/// `POST /` with a form body (`Action=…`): the STS query protocol.
pub async fn sts(sim: &Sim, req: &Req) -> Response {
    let form = req.form();
    if form_get(&form, "Version").is_some_and(|v| v != "2011-06-15") {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "Could not find operation for version",
        );
    }
    match form_get(&form, "Action") {
        Some("AssumeRoleWithWebIdentity") => assume_role_with_web_identity(sim, &form).await,
        Some("GetCallerIdentity") => get_caller_identity(sim, req),
        Some("AssumeRole") => assume_role(sim, req, &form),
        Some(other) => sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        ),
        None => sts_error(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action"),
    }
}

async fn assume_role_with_web_identity(sim: &Sim, form: &[(String, String)]) -> Response {
    let Some(aws) = &sim.state.file.aws else {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    };
    let (Some(role_arn), Some(session), Some(web_token)) = (
        form_get(form, "RoleArn"),
        form_get(form, "RoleSessionName"),
        form_get(form, "WebIdentityToken"),
    ) else {
        let missing = ["RoleArn", "RoleSessionName", "WebIdentityToken"]
            .into_iter()
            .find(|k| form_get(form, k).is_none())
            .unwrap_or("RoleArn");
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(missing)
            ),
        );
    };
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if !session_ok {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!(
                "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            ),
        );
    }
    let duration = match form_get(form, "DurationSeconds").map(str::parse::<i64>) {
        None => 3600,
        Some(Ok(d)) if (900..=43200).contains(&d) => d,
        Some(_) => {
            return sts_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200",
            );
        }
    };
    let token = match Unverified::parse(web_token) {
        Ok(t) => t,
        Err(_) => {
            return sts_error(
                StatusCode::BAD_REQUEST,
                "InvalidIdentityToken",
                "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
            );
        }
    };
    let iss = token.str_claim("iss").unwrap_or_default().to_owned();
    let Some(provider) = aws
        .oidc_providers
        .iter()
        .find(|p| p.url.get_ref().trim_end_matches('/') == iss.trim_end_matches('/'))
    else {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            format!("No OpenIDConnect provider found in your account for {iss}"),
        );
    };
    let auds = token.audiences();
    if !provider
        .client_ids
        .iter()
        .any(|c| auds.contains(c.get_ref()))
    {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "Incorrect token audience",
        );
    }
    if let Err(e) = sim.keys.verify(&token, provider.url.get_ref(), ALGS).await {
        return match e {
            JwtError::Fetch(FetchError::Unavailable(_)) => sts_error(
                StatusCode::BAD_REQUEST,
                "IDPCommunicationError",
                "The request could not be fulfilled because the identity provider (IDP) that was asked to verify the incoming identity token could not be reached. This is often a transient error caused by network conditions. Retry the request a limited number of times and wait between attempts to be notified of your identity providers status.",
            ),
            JwtError::Algorithm(alg) => sts_error(
                StatusCode::BAD_REQUEST,
                "InvalidIdentityToken",
                format!("Unsupported signing algorithm {alg}"),
            ),
            JwtError::Signature { .. } => sts_error(
                StatusCode::BAD_REQUEST,
                "InvalidIdentityToken",
                "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.",
            ),
            _ => sts_error(
                StatusCode::BAD_REQUEST,
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
            ),
        };
    }
    let now = sim.now();
    if let Err(crate::jwt::TimeError::Expired { exp })
    | Err(crate::jwt::TimeError::NotYetValid { nbf: exp }) = check_times(&token, now, &TIME)
    {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time {exp}"
            ),
        );
    }
    let host = provider_host(provider.url.get_ref());
    let Some(role) = find_role(aws, role_arn) else {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    };
    if !trusts(aws, role, host, &token) {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    }
    let akid = format!("ASIA{}", random_upper(16));
    let secret = random_string(40);
    let session_token = format!("IQoJb3JpZ2luX2VjE{}", random_string(120));
    let exp = now + duration;
    let role_name = role.name.get_ref().clone();
    sim.lock().aws_sessions.insert(
        akid.clone(),
        AwsSession {
            secret_access_key: secret.clone(),
            session_token: session_token.clone(),
            role: role_name.clone(),
            session_name: session.to_owned(),
            exp,
            user: false,
        },
    );
    let acct = aws.account_id.get_ref();
    let sub = token.str_claim("sub").unwrap_or_default();
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{STS_NS}\">\n  <AssumeRoleWithWebIdentityResult>\n    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    <Audience>{}</Audience>\n    <AssumedRoleUser>\n      <Arn>arn:aws:sts::{acct}:assumed-role/{}/{}</Arn>\n      <AssumedRoleId>{}:{}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      <SessionToken>{session_token}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n    <Provider>arn:aws:iam::{acct}:oidc-provider/{}</Provider>\n  </AssumeRoleWithWebIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleWithWebIdentityResponse>\n",
        esc(sub),
        esc(&auds.join(",")),
        esc(&role_name),
        esc(session),
        role_id(acct, &role_name),
        esc(session),
        rfc3339(exp),
        esc(host),
        uuid::Uuid::new_v4()
    );
    xml_response(StatusCode::OK, body)
}

/// `AssumeRole`, signed with an IAM user's key (or a session's): the role's trust policy must
/// name the caller (or the account root), the `sts:ExternalId` condition must hold, and the
/// caller's own policies must allow `sts:AssumeRole` on the role.
fn assume_role(sim: &Sim, req: &Req, form: &[(String, String)]) -> Response {
    let session = match signed_session(sim, req, "sts", None) {
        Ok(s) => s,
        Err((code, message)) => return sts_error(StatusCode::FORBIDDEN, code, message),
    };
    let Some(aws) = &sim.state.file.aws else {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRole",
        );
    };
    let (Some(role_arn), Some(session_name)) =
        (form_get(form, "RoleArn"), form_get(form, "RoleSessionName"))
    else {
        let missing = if form_get(form, "RoleArn").is_none() {
            "roleArn"
        } else {
            "roleSessionName"
        };
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!(
                "1 validation error detected: Value null at '{missing}' failed to satisfy constraint: Member must not be null"
            ),
        );
    };
    let session_ok = (2..=64).contains(&session_name.len())
        && session_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if !session_ok {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!(
                "1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            ),
        );
    }
    let acct = aws.account_id.get_ref();
    let caller = caller_arn(acct, &session);
    let denied = || {
        sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ),
        )
    };
    let Some(role) = find_role(aws, role_arn) else {
        return denied();
    };
    let own_policies = if session.user {
        aws.users
            .iter()
            .find(|u| u.name.get_ref() == &session.role)
            .map(|u| &u.policies)
    } else {
        aws.roles
            .iter()
            .find(|r| r.name.get_ref() == &session.role)
            .map(|r| &r.policies)
    };
    if !own_policies.is_some_and(|p| allowed(p, "sts:AssumeRole", role_arn)) {
        return denied();
    }
    let root = format!("arn:aws:iam::{acct}:root");
    let principal_ok = role
        .trust
        .aws
        .iter()
        .any(|p| p.get_ref() == &caller || p.get_ref() == &root);
    let external_id = form_get(form, "ExternalId");
    let condition_ok = role
        .trust
        .string_equals
        .iter()
        .all(|(k, v)| k == "sts:ExternalId" && external_id.is_some_and(|x| x == v.get_ref()))
        && role.trust.string_like.iter().all(|(k, v)| {
            k == "sts:ExternalId" && external_id.is_some_and(|x| glob(v.get_ref(), x))
        });
    if !(principal_ok && condition_ok) {
        return denied();
    }
    let duration: i64 = match form_get(form, "DurationSeconds").map(str::parse) {
        None => 3600,
        Some(Ok(d)) if (900..=43200).contains(&d) => d,
        Some(_) => {
            return sts_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200",
            );
        }
    };
    let now = sim.now();
    let akid = format!("ASIA{}", random_upper(16));
    let secret = random_string(40);
    let session_token = format!("IQoJb3JpZ2luX2VjE{}", random_string(120));
    let exp = now + duration;
    let role_name = role.name.get_ref().clone();
    sim.lock().aws_sessions.insert(
        akid.clone(),
        AwsSession {
            secret_access_key: secret.clone(),
            session_token: session_token.clone(),
            role: role_name.clone(),
            session_name: session_name.to_owned(),
            exp,
            user: false,
        },
    );
    let body = format!(
        "<AssumeRoleResponse xmlns=\"{STS_NS}\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <Arn>arn:aws:sts::{acct}:assumed-role/{}/{}</Arn>\n      <AssumedRoleId>{}:{}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      <SessionToken>{session_token}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
        esc(&role_name),
        esc(session_name),
        role_id(acct, &role_name),
        esc(session_name),
        rfc3339(exp),
        uuid::Uuid::new_v4()
    );
    xml_response(StatusCode::OK, body)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn role_id(acct: &str, role: &str) -> String {
    format!(
        "AROA{}",
        hex::encode_upper(
            &aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                format!("{acct}/{role}").as_bytes()
            )
            .as_ref()[..8]
        )
    )
}

fn find_role<'a>(aws: &'a AwsState, arn: &str) -> Option<&'a AwsRole> {
    let prefix = format!("arn:aws:iam::{}:role/", aws.account_id.get_ref());
    let name = arn.strip_prefix(&prefix)?;
    let name = name.rsplit('/').next()?;
    aws.roles.iter().find(|r| r.name.get_ref() == name)
}

/// The role's trust policy: the federated principal must be this provider, and every condition
/// on `<host>:sub` / `<host>:aud` must hold.
fn trusts(aws: &AwsState, role: &AwsRole, host: &str, token: &Unverified) -> bool {
    let principal = format!(
        "arn:aws:iam::{}:oidc-provider/{host}",
        aws.account_id.get_ref()
    );
    if role.trust.federated.as_ref().map(|f| f.get_ref()) != Some(&principal) {
        return false;
    }
    let claim = |key: &str| -> Option<Vec<String>> {
        let name = key.strip_prefix(host)?.strip_prefix(':')?;
        Some(match name {
            "aud" => token.audiences(),
            "sub" => token
                .str_claim("sub")
                .map(|s| vec![s.to_owned()])
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    };
    let equals = role
        .trust
        .string_equals
        .iter()
        .all(|(k, v)| claim(k).is_some_and(|vals| vals.iter().any(|x| x == v.get_ref())));
    let like = role
        .trust
        .string_like
        .iter()
        .all(|(k, v)| claim(k).is_some_and(|vals| vals.iter().any(|x| glob(v.get_ref(), x))));
    equals && like
}

/// IAM wildcard match: `*` any run, `?` one character; case-sensitive as resource ARNs are.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The caller's ARN as AWS prints it in errors and GetCallerIdentity.
fn caller_arn(account: &str, session: &AwsSession) -> String {
    if session.user {
        format!("arn:aws:iam::{account}:user/{}", session.role)
    } else {
        format!(
            "arn:aws:sts::{account}:assumed-role/{}/{}",
            session.role, session.session_name
        )
    }
}

fn allowed(policies: &[AwsPolicyStatement], action: &str, resource: &str) -> bool {
    policies.iter().any(|st| {
        st.actions.iter().any(|a| {
            glob(
                &a.get_ref().to_ascii_lowercase(),
                &action.to_ascii_lowercase(),
            )
        }) && st.resources.iter().any(|r| glob(r.get_ref(), resource))
    })
}

/// A SigV4-authenticated caller: the session behind its access key.
fn signed_session(
    sim: &Sim,
    req: &Req,
    service: &str,
    region: Option<&str>,
) -> Result<AwsSession, (&'static str, String)> {
    let parsed = sigv4::parse_authorization(req).map_err(|e| sig_error(e, service))?;
    if parsed.service != service {
        return Err((
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    if let Some(region) = region
        && parsed.region != region
    {
        return Err((
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                parsed.region
            ),
        ));
    }
    let now = sim.now();
    // An assumed role's session, else an IAM user's long-lived key (never expires, no token).
    let user = || {
        sim.state.file.aws.as_ref().and_then(|a| {
            a.users
                .iter()
                .find(|u| u.access_key_id.get_ref() == &parsed.access_key_id)
                .map(|u| AwsSession {
                    secret_access_key: u.secret_access_key.get_ref().clone(),
                    session_token: String::new(),
                    role: u.name.get_ref().clone(),
                    session_name: String::new(),
                    exp: i64::MAX,
                    user: true,
                })
        })
    };
    let session = sim
        .lock()
        .aws_sessions
        .get(&parsed.access_key_id)
        .cloned()
        .or_else(user)
        .ok_or_else(|| sig_error(SigError::UnknownKey, service))?;
    let presented = req.header("x-amz-security-token").unwrap_or_default();
    if !constant_eq(presented, &session.session_token) {
        return Err(sig_error(SigError::UnknownKey, service));
    }
    sigv4::verify(req, &parsed, &session.secret_access_key, now)
        .map_err(|e| sig_error(e, service))?;
    if session.exp <= now {
        return Err((
            "ExpiredTokenException",
            "The security token included in the request is expired".into(),
        ));
    }
    Ok(session)
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn sig_error(e: SigError, service: &str) -> (&'static str, String) {
    let sts = service == "sts";
    match e {
        SigError::Missing(m) => (if sts { "MissingAuthenticationToken" } else { "MissingAuthenticationTokenException" }, m),
        SigError::Scope(m) => (if sts { "SignatureDoesNotMatch" } else { "InvalidSignatureException" }, m),
        SigError::Expired(m) => (if sts { "SignatureDoesNotMatch" } else { "InvalidSignatureException" }, m),
        SigError::UnknownKey => (
            if sts { "InvalidClientTokenId" } else { "UnrecognizedClientException" },
            "The security token included in the request is invalid.".into(),
        ),
        SigError::Mismatch => (
            if sts { "SignatureDoesNotMatch" } else { "InvalidSignatureException" },
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        ),
    }
}

fn get_caller_identity(sim: &Sim, req: &Req) -> Response {
    let session = match signed_session(sim, req, "sts", None) {
        Ok(s) => s,
        Err((code, message)) => return sts_error(StatusCode::FORBIDDEN, code, message),
    };
    let acct = sim
        .state
        .file
        .aws
        .as_ref()
        .map(|a| a.account_id.get_ref().clone())
        .unwrap_or_default();
    xml_response(
        StatusCode::OK,
        format!(
            "<GetCallerIdentityResponse xmlns=\"{STS_NS}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{acct}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
            esc(&caller_arn(&acct, &session)),
            if session.user {
                format!(
                    "AIDA{}",
                    role_id(&acct, &session.role).trim_start_matches("AROA")
                )
            } else {
                format!(
                    "{}:{}",
                    role_id(&acct, &session.role),
                    esc(&session.session_name)
                )
            },
            uuid::Uuid::new_v4()
        ),
    )
}

fn sm_error(code: &str, message: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"__type": code, "message": message.into()}),
    )
}

/// `POST /` with `X-Amz-Target: secretsmanager.<Op>`.
pub async fn secrets_manager(sim: &Sim, req: &Req) -> Response {
    let Some(aws) = &sim.state.file.aws else {
        return sm_error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let session = match signed_session(sim, req, "secretsmanager", Some(aws.region.get_ref())) {
        Ok(s) => s,
        Err((code, message)) => return sm_error(code, message),
    };
    let op = req
        .header("x-amz-target")
        .and_then(|t| t.strip_prefix("secretsmanager."))
        .unwrap_or_default()
        .to_owned();
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            return sm_error(
                "SerializationException",
                "The request body is not valid JSON.",
            );
        }
    };
    let policies: &[AwsPolicyStatement] = if session.user {
        match aws.users.iter().find(|u| u.name.get_ref() == &session.role) {
            Some(user) => &user.policies,
            None => {
                return sm_error(
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                );
            }
        }
    } else {
        match aws.roles.iter().find(|r| r.name.get_ref() == &session.role) {
            Some(role) => &role.policies,
            None => {
                return sm_error(
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                );
            }
        }
    };
    let caller = caller_arn(aws.account_id.get_ref(), &session);
    let deny = |action: &str, resource: &str| {
        sm_error(
            "AccessDeniedException",
            format!(
                "User: {caller} is not authorized to perform: secretsmanager:{action} on resource: {resource} because no identity-based policy allows the secretsmanager:{action} action"
            ),
        )
    };
    match op.as_str() {
        "GetSecretValue" => {
            let Some(id) = body.get("SecretId").and_then(Value::as_str) else {
                return sm_error("InvalidParameterException", "SecretId is required.");
            };
            let m = sim.lock();
            let found = find_secret(&m.aws_secrets, id);
            // IAM judges a missing secret by the ARN its name would have, so a role allowed
            // `secret:*` learns it is missing while a narrower one is denied.
            let resource = match found {
                Some((_, s)) => s.arn.clone(),
                None if id.starts_with("arn:") => id.to_owned(),
                None => format!(
                    "arn:aws:secretsmanager:{}:{}:secret:{id}",
                    aws.region.get_ref(),
                    aws.account_id.get_ref()
                ),
            };
            if !allowed(policies, "secretsmanager:GetSecretValue", &resource) {
                return deny("GetSecretValue", &resource);
            }
            let Some((name, secret)) = found else {
                return sm_error(
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret.",
                );
            };
            let wanted = body.get("VersionId").and_then(Value::as_str);
            let version = match wanted {
                None => secret.versions.last(),
                Some(v) => secret.versions.iter().find(|x| x.id == v),
            };
            let Some(version) = version else {
                return sm_error(
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret value for VersionId.",
                );
            };
            json_response(
                StatusCode::OK,
                json!({"ARN": secret.arn, "Name": name, "VersionId": version.id, "SecretString": version.value,
                       "VersionStages": ["AWSCURRENT"], "CreatedDate": version.created as f64}),
            )
        }
        "ListSecrets" => {
            if !allowed(policies, "secretsmanager:ListSecrets", "*") {
                return deny("ListSecrets", "*");
            }
            let prefix = body
                .get("Filters")
                .and_then(Value::as_array)
                .and_then(|fs| {
                    fs.iter()
                        .find(|f| f.get("Key").and_then(Value::as_str) == Some("name"))
                })
                .and_then(|f| f.get("Values")?.as_array()?.first()?.as_str())
                .unwrap_or("")
                .to_owned();
            let max = body
                .get("MaxResults")
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .clamp(1, 100) as usize;
            let start = body
                .get("NextToken")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(0);
            let m = sim.lock();
            let all: Vec<(&String, &crate::sim::AwsSecret)> = m
                .aws_secrets
                .iter()
                .filter(|(n, _)| n.starts_with(&prefix))
                .collect();
            let list: Vec<Value> = all
                .iter()
                .skip(start)
                .take(max)
                .map(|(n, s)| json!({"ARN": s.arn, "Name": n, "LastChangedDate": s.versions.last().map(|v| v.created).unwrap_or(0) as f64}))
                .collect();
            let mut out = json!({"SecretList": list});
            if start + max < all.len() {
                out["NextToken"] = json!((start + max).to_string());
            }
            json_response(StatusCode::OK, out)
        }
        "PutSecretValue" => {
            let (Some(id), Some(value)) = (
                body.get("SecretId").and_then(Value::as_str),
                body.get("SecretString").and_then(Value::as_str),
            ) else {
                return sm_error(
                    "InvalidParameterException",
                    "SecretId and SecretString are required.",
                );
            };
            let resource = find_secret(&sim.lock().aws_secrets, id)
                .map(|(_, s)| s.arn.clone())
                .unwrap_or_else(|| id.to_owned());
            if !allowed(policies, "secretsmanager:PutSecretValue", &resource) {
                return deny("PutSecretValue", &resource);
            }
            match put_value(sim, id, value.to_owned(), false) {
                Some((arn, name, version)) => json_response(
                    StatusCode::OK,
                    json!({"ARN": arn, "Name": name, "VersionId": version.id, "VersionStages": ["AWSCURRENT"]}),
                ),
                None => sm_error(
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret.",
                ),
            }
        }
        other => sm_error(
            "UnknownOperationException",
            format!("Unknown operation {other}"),
        ),
    }
}

fn find_secret<'a>(
    secrets: &'a std::collections::BTreeMap<String, crate::sim::AwsSecret>,
    id: &str,
) -> Option<(&'a String, &'a crate::sim::AwsSecret)> {
    secrets.iter().find(|(name, s)| {
        name.as_str() == id
            || s.arn == id
            || s.arn
                .rsplit_once('-')
                .is_some_and(|(partial, _)| partial == id)
    })
}

/// Adds a version; with `create`, an unknown name becomes a new secret (the admin endpoint).
pub fn put_value(
    sim: &Sim,
    id: &str,
    value: String,
    create: bool,
) -> Option<(String, String, Version)> {
    let aws = sim.state.file.aws.as_ref()?;
    let now = sim.now();
    let version = Version {
        id: uuid::Uuid::new_v4().to_string(),
        value,
        created: now,
    };
    let mut m = sim.lock();
    let name = match find_secret(&m.aws_secrets, id) {
        Some((name, _)) => name.clone(),
        None if create => {
            let arn = format!(
                "arn:aws:secretsmanager:{}:{}:secret:{id}-{}",
                aws.region.get_ref(),
                aws.account_id.get_ref(),
                random_string(6)
            );
            m.aws_secrets.insert(
                id.to_owned(),
                crate::sim::AwsSecret {
                    arn,
                    versions: Vec::new(),
                },
            );
            id.to_owned()
        }
        None => return None,
    };
    let secret = m.aws_secrets.get_mut(&name)?;
    secret.versions.push(version.clone());
    Some((secret.arn.clone(), name, version))
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn iam_globs() {
        assert!(glob(
            "arn:aws:secretsmanager:us-east-1:1:secret:demo-*",
            "arn:aws:secretsmanager:us-east-1:1:secret:demo-key-AbC123"
        ));
        assert!(!glob(
            "arn:aws:secretsmanager:us-east-1:1:secret:demo-*",
            "arn:aws:secretsmanager:us-east-1:1:secret:prod-key-AbC123"
        ));
        assert!(glob("*", "*"));
        assert!(
            !glob("arn:aws:secretsmanager:*", "*"),
            "ListSecrets needs Resource \"*\""
        );
        assert!(glob("organization:?bc", "organization:abc"));
    }
}
