//! GCP: STS token exchange, IAM Credentials `generateAccessToken`, Secret Manager access/list and
//! a Vertex `generateContent` stand-in, with GCP's checks and error shapes (docs/cloud-wire.md).

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::condition::Vars;
use crate::jwt::{FetchError, JwtError, TimeError, TimeRules, Unverified, check_times};
use crate::sim::{Grant, Req, Sim, form_get, json_response};
use crate::state::{GcpProvider, GcpState};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
];
const ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
const TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: true,
    max_lifetime: Some(3600),
};
const ACCESS_TOKEN_SECS: i64 = 3600;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `aud` Google's token endpoint accepts in a service account's assertion.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SA_TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: true,
    max_lifetime: Some(3600),
};

/// The public half of a service account key, as IAM keeps it.
#[derive(Clone, Debug)]
pub struct ServiceAccountKey {
    pub email: String,
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description.into()}),
    )
}

/// Google API error body: `{"error": {"code", "message", "status"}}`.
pub fn api_error(
    status: StatusCode,
    message: impl Into<String>,
    permission: Option<&str>,
) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "UNAVAILABLE",
    };
    let mut error = json!({"code": status.as_u16(), "message": message.into(), "status": name});
    if let Some(permission) = permission {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": permission}
        }]);
    }
    json_response(status, json!({ "error": error }))
}

fn unauthenticated() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        None,
    )
}

fn provider_audience(gcp: &GcpState, p: &GcpProvider) -> String {
    format!(
        "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
        gcp.project_number.get_ref(),
        p.pool.get_ref(),
        p.id.get_ref()
    )
}

pub async fn sts_token(sim: &Sim, req: &Req) -> Response {
    let form = req.form();
    let field = |k: &str| form_get(&form, k);
    if field("grant_type") != Some(TOKEN_EXCHANGE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type must be {TOKEN_EXCHANGE}"),
        );
    }
    for required in [
        "audience",
        "subject_token",
        "subject_token_type",
        "requested_token_type",
    ] {
        if field(required).is_none() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("Missing required parameter: {required}"),
            );
        }
    }
    if !SUBJECT_TYPES.contains(&field("subject_token_type").unwrap_or_default()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid value for \"subject_token_type\": OIDC providers accept urn:ietf:params:oauth:token-type:jwt or id_token.",
        );
    }
    if field("requested_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Invalid value for \"requested_token_type\": expected {ACCESS_TOKEN_TYPE}."),
        );
    }
    let audience = field("audience").unwrap_or_default();
    let Some(gcp) = &sim.state.file.gcp else {
        return invalid_target();
    };
    let Some((index, provider)) = gcp.providers.iter().enumerate().find(|(_, p)| {
        provider_audience(gcp, p) == audience
            || format!("https:{}", provider_audience(gcp, p)) == audience
    }) else {
        return invalid_target();
    };
    if provider.disabled {
        return invalid_target();
    }
    let token = match Unverified::parse(field("subject_token").unwrap_or_default()) {
        Ok(t) => t,
        Err(e) => return invalid_jwt(format!("Invalid JWT: {e}.")),
    };
    let issuer = provider.issuer.get_ref();
    if token.str_claim("iss") != Some(issuer.as_str()) {
        return invalid_jwt(format!(
            "Invalid JWT: the issuer '{}' does not match the provider's issuer URI '{issuer}'.",
            token.str_claim("iss").unwrap_or("(none)")
        ));
    }
    let own = provider_audience(gcp, provider);
    let accepted: Vec<String> = if provider.allowed_audiences.is_empty() {
        vec![own.clone(), format!("https:{own}")]
    } else {
        provider
            .allowed_audiences
            .iter()
            .map(|a| a.get_ref().clone())
            .collect()
    };
    let auds = token.audiences();
    if !auds.iter().any(|a| accepted.contains(a)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            format!(
                "INVALID_ARGUMENT: The audience in ID Token [{}] does not match the expected audience.",
                auds.join(", ")
            ),
        );
    }
    if let Err(e) = sim.keys.verify(&token, issuer, ALGS).await {
        return match e {
            JwtError::Fetch(FetchError::Unavailable(detail)) => api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Failed to fetch JWKS from issuer {issuer}: {detail}"),
                None,
            ),
            JwtError::Fetch(FetchError::Broken(detail)) => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                format!("INVALID_ARGUMENT: Failed to fetch JWKS from issuer {issuer}: {detail}"),
            ),
            other => invalid_jwt(format!("Invalid JWT signature: {other}.")),
        };
    }
    if let Err(e) = check_times(&token, sim.now(), &TIME) {
        let detail = match e {
            TimeError::Expired { .. } => "the token has expired",
            TimeError::NotYetValid { .. } | TimeError::IssuedInFuture { .. } => {
                "the token is not valid yet"
            }
            TimeError::Missing(_) => "iat and exp are required",
            TimeError::TooLong { .. } => "the token lives longer than 60 minutes",
        };
        return invalid_jwt(format!(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim. ({detail})"
        ));
    }
    let (mapping, condition) = &sim.state.gcp_rules[index];
    let mapped = match mapping.apply(&token.claims) {
        Ok(m) => m,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                format!("INVALID_ARGUMENT: The attribute mapping could not be evaluated: {e}."),
            );
        }
    };
    let subject = match mapped.google.get("subject").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.len() <= 127 => s.to_owned(),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "INVALID_ARGUMENT: The mapped attribute 'google.subject' must be a non-empty string of at most 127 bytes.",
            );
        }
    };
    if let Some(condition) = condition {
        let vars = Vars {
            assertion: &token.claims,
            google: &mapped.google,
            attribute: &mapped.attribute,
        };
        if condition.eval(&vars) != Ok(true) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "PERMISSION_DENIED: The given credential is rejected by the attribute condition.",
            );
        }
    }
    let access = sim.issue(
        Grant::GcpFederated {
            project_number: gcp.project_number.get_ref().clone(),
            pool: provider.pool.get_ref().clone(),
            subject,
            attributes: mapped.attribute,
            exp: sim.now() + ACCESS_TOKEN_SECS,
        },
        "ya29.d.sim-",
    );
    json_response(
        StatusCode::OK,
        json!({"access_token": access, "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECS}),
    )
}

fn invalid_target() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
    )
}

fn invalid_jwt(detail: String) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        format!("INVALID_ARGUMENT: {detail}"),
    )
}

/// Whether an IAM member string names the caller behind `grant`.
fn member_matches(member: &str, grant: &Grant) -> bool {
    match grant {
        Grant::GcpServiceAccount { email, .. } => {
            member.strip_prefix("serviceAccount:") == Some(email.as_str())
        }
        Grant::GcpFederated {
            project_number,
            pool,
            subject,
            attributes,
            ..
        } => {
            let pool_prefix =
                format!("projects/{project_number}/locations/global/workloadIdentityPools/{pool}/");
            if let Some(rest) = member.strip_prefix("principalSet://iam.googleapis.com/") {
                let Some(rest) = rest.strip_prefix(&pool_prefix) else {
                    return false;
                };
                if rest == "*" {
                    return true;
                }
                let Some((name, value)) = rest
                    .strip_prefix("attribute.")
                    .and_then(|r| r.split_once('/'))
                else {
                    return false;
                };
                attributes.get(name).and_then(Value::as_str) == Some(value)
            } else if let Some(rest) = member.strip_prefix("principal://iam.googleapis.com/") {
                rest.strip_prefix(&pool_prefix)
                    .and_then(|r| r.strip_prefix("subject/"))
                    == Some(subject.as_str())
            } else {
                false
            }
        }
        Grant::Entra { .. } => false,
    }
}

/// Roles the caller holds on the project (`secret: None`) or on one secret (which includes the
/// project's).
fn roles_of(gcp: &GcpState, grant: &Grant, secret: Option<&str>) -> Vec<String> {
    let mut roles: Vec<String> = gcp
        .bindings
        .iter()
        .filter(|b| member_matches(b.member.get_ref(), grant))
        .filter(|b| match &b.secret {
            None => true,
            Some(s) => Some(s.get_ref().as_str()) == secret,
        })
        .map(|b| b.role.get_ref().clone())
        .collect();
    if let Grant::GcpServiceAccount { email, .. } = grant
        && let Some(sa) = gcp
            .service_accounts
            .iter()
            .find(|sa| sa.email.get_ref() == email)
    {
        roles.extend(sa.roles.iter().map(|r| r.get_ref().clone()));
    }
    roles
}

fn has_any(roles: &[String], wanted: &[&str]) -> bool {
    roles
        .iter()
        .any(|r| wanted.contains(&r.as_str()) || r == "roles/owner")
}

fn authenticated(sim: &Sim, req: &Req) -> Result<Grant, Response> {
    let token = req.bearer().ok_or_else(|| {
        api_error(
            StatusCode::UNAUTHORIZED,
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
        )
    })?;
    match sim.grant(token) {
        Some(g @ (Grant::GcpFederated { .. } | Grant::GcpServiceAccount { .. })) => Ok(g),
        _ => Err(unauthenticated()),
    }
}

/// `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`
pub async fn generate_access_token(sim: &Sim, req: &Req, email: &str) -> Response {
    let grant = match authenticated(sim, req) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let denied = || {
        api_error(
            StatusCode::FORBIDDEN,
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
            Some("iam.serviceAccounts.getAccessToken"),
        )
    };
    let Some(gcp) = &sim.state.file.gcp else {
        return denied();
    };
    let Some(sa) = gcp
        .service_accounts
        .iter()
        .find(|sa| sa.email.get_ref() == email)
    else {
        return denied();
    };
    let allowed = match &grant {
        Grant::GcpServiceAccount { email: own, .. } => own == email,
        federated => sa
            .workload_identity_users
            .iter()
            .any(|m| member_matches(m.get_ref(), federated)),
    };
    if !allowed {
        return denied();
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid JSON payload received. {e}"),
                None,
            );
        }
    };
    let scopes_ok = body
        .get("scope")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty() && s.iter().all(Value::is_string));
    if !scopes_ok {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Request contains an invalid argument: scope must be a non-empty list of OAuth scopes.",
            None,
        );
    }
    let lifetime = match body.get("lifetime").and_then(Value::as_str) {
        None => ACCESS_TOKEN_SECS,
        Some(text) => match text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()) {
            Some(secs) if (1.0..=3600.0).contains(&secs) => secs as i64,
            _ => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Request contains an invalid argument: lifetime '{text}' must be between 1s and 3600s."
                    ),
                    None,
                );
            }
        },
    };
    let exp = sim.now() + lifetime;
    let token = sim.issue(
        Grant::GcpServiceAccount {
            email: email.to_owned(),
            exp,
        },
        "ya29.c.sim-",
    );
    json_response(
        StatusCode::OK,
        json!({"accessToken": token, "expireTime": rfc3339(exp)}),
    )
}

fn project_matches(gcp: &GcpState, project: &str) -> bool {
    project == gcp.project_id.get_ref() || project == gcp.project_number.get_ref()
}

/// Secret Manager: `…/secrets` (list) and `…/secrets/<name>/versions/<v>:access`.
pub async fn secret_manager(sim: &Sim, req: &Req, project: &str, rest: &str) -> Response {
    let grant = match authenticated(sim, req) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let Some(gcp) = &sim.state.file.gcp else {
        return api_error(StatusCode::NOT_FOUND, "Project not found.", None);
    };
    if rest.is_empty() {
        return list_secrets(sim, req, gcp, &grant, project);
    }
    let Some((name, version)) = rest
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix(":access"))
        .and_then(|r| r.split_once("/versions/"))
    else {
        return api_error(
            StatusCode::NOT_FOUND,
            format!(
                "The requested URL /v1/projects/{project}/secrets{rest} was not found on this server."
            ),
            None,
        );
    };
    let resource = format!("projects/{project}/secrets/{name}/versions/{version}");
    if !project_matches(gcp, project)
        || !has_any(
            &roles_of(gcp, &grant, Some(name)),
            &[
                "roles/secretmanager.secretAccessor",
                "roles/secretmanager.admin",
            ],
        )
    {
        return api_error(
            StatusCode::FORBIDDEN,
            format!(
                "Permission 'secretmanager.versions.access' denied for resource '{resource}' (or it may not exist)."
            ),
            Some("secretmanager.versions.access"),
        );
    }
    let number = gcp.project_number.get_ref();
    let m = sim.lock();
    let Some(versions) = m.gcp_secrets.get(name) else {
        return api_error(
            StatusCode::NOT_FOUND,
            format!("Secret [projects/{number}/secrets/{name}] not found or has no versions."),
            None,
        );
    };
    let chosen = if version == "latest" {
        versions.last()
    } else {
        versions.iter().find(|v| v.id == version)
    };
    let Some(v) = chosen else {
        return api_error(
            StatusCode::NOT_FOUND,
            format!(
                "Secret Version [projects/{number}/secrets/{name}/versions/{version}] not found."
            ),
            None,
        );
    };
    json_response(
        StatusCode::OK,
        json!({
            "name": format!("projects/{number}/secrets/{name}/versions/{}", v.id),
            "payload": {"data": STANDARD.encode(v.value.as_bytes()), "dataCrc32c": crc32c::crc32c(v.value.as_bytes()).to_string()}
        }),
    )
}

fn list_secrets(sim: &Sim, req: &Req, gcp: &GcpState, grant: &Grant, project: &str) -> Response {
    if !project_matches(gcp, project)
        || !has_any(
            &roles_of(gcp, grant, None),
            &["roles/secretmanager.viewer", "roles/secretmanager.admin"],
        )
    {
        return api_error(
            StatusCode::FORBIDDEN,
            format!(
                "Permission 'secretmanager.secrets.list' denied for resource 'projects/{project}' (or it may not exist)."
            ),
            Some("secretmanager.secrets.list"),
        );
    }
    let filter = req
        .query("filter")
        .and_then(|f| f.strip_prefix("name:"))
        .unwrap_or("");
    let page_size = req
        .query("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(25000);
    let start = req
        .query("pageToken")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let number = gcp.project_number.get_ref();
    let m = sim.lock();
    let names: Vec<&String> = m
        .gcp_secrets
        .keys()
        .filter(|n| n.contains(filter))
        .collect();
    let page: Vec<Value> = names
        .iter()
        .skip(start)
        .take(page_size)
        .map(|n| json!({"name": format!("projects/{number}/secrets/{n}"), "replication": {"automatic": {}}, "createTime": rfc3339(sim_start(&m))}))
        .collect();
    let mut body = json!({"secrets": page, "totalSize": names.len()});
    if start + page_size < names.len() {
        body["nextPageToken"] = json!((start + page_size).to_string());
    }
    json_response(StatusCode::OK, body)
}

fn sim_start(m: &crate::sim::Mutable) -> i64 {
    m.gcp_secrets
        .values()
        .filter_map(|v| v.first())
        .map(|v| v.created)
        .min()
        .unwrap_or(0)
}

/// `POST /v1/projects/<p>/locations/<loc>/publishers/google/models/<model>:generateContent`
pub async fn generate_content(
    sim: &Sim,
    req: &Req,
    project: &str,
    location: &str,
    model: &str,
) -> Response {
    let grant = match authenticated(sim, req) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let resource = format!(
        "//aiplatform.googleapis.com/projects/{project}/locations/{location}/publishers/google/models/{model}"
    );
    let allowed = sim.state.file.gcp.as_ref().is_some_and(|gcp| {
        project_matches(gcp, project)
            && has_any(
                &roles_of(gcp, &grant, None),
                &["roles/aiplatform.user", "roles/aiplatform.admin"],
            )
    });
    if !allowed {
        return api_error(
            StatusCode::FORBIDDEN,
            format!(
                "Permission 'aiplatform.endpoints.predict' denied on resource '{resource}' (or it may not exist)."
            ),
            Some("aiplatform.endpoints.predict"),
        );
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid JSON payload received. {e}"),
                None,
            );
        }
    };
    if body
        .get("contents")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Unable to submit request because it has an empty contents field.",
            None,
        );
    }
    let who = match &grant {
        Grant::GcpServiceAccount { email, .. } => email.clone(),
        Grant::GcpFederated { subject, .. } => subject.clone(),
        Grant::Entra { .. } => String::new(),
    };
    json_response(
        StatusCode::OK,
        json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": format!("cloudsim {model} in {location} answered {who}")}]}, "finishReason": "STOP"}],
            "modelVersion": model
        }),
    )
}

/// Creates a key for a declared service account, as `gcloud iam service-accounts keys create`
/// does: the answer is the key file (JSON with the PKCS#8 private key); only the public half
/// stays here. Its `token_uri` is this simulator's token endpoint.
pub fn create_key(sim: &Sim, email: &str) -> Response {
    let Some(gcp) = &sim.state.file.gcp else {
        return api_error(StatusCode::NOT_FOUND, "this world declares no [gcp]", None);
    };
    if !gcp
        .service_accounts
        .iter()
        .any(|sa| sa.email.get_ref() == email)
    {
        return api_error(
            StatusCode::NOT_FOUND,
            format!(
                "Service account projects/{}/serviceAccounts/{email} does not exist.",
                gcp.project_id.get_ref()
            ),
            None,
        );
    }
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let pair = match aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048) {
        Ok(p) => p,
        Err(_) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "RSA key generation failed",
                None,
            );
        }
    };
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = match pair.as_der() {
        Ok(d) => d,
        Err(_) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "PKCS#8 encoding failed",
                None,
            );
        }
    };
    let public = pair.public_key();
    let key_id = hex::encode(rand::random::<[u8; 20]>());
    sim.lock().gcp_keys.insert(
        key_id.clone(),
        ServiceAccountKey {
            email: email.to_owned(),
            modulus: public.modulus().big_endian_without_leading_zero().to_vec(),
            exponent: public.exponent().big_endian_without_leading_zero().to_vec(),
        },
    );
    let body = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let client_id: String = (0..21)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "type": "service_account",
            "project_id": gcp.project_id.get_ref(),
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", sim.base),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!("https://www.googleapis.com/robot/v1/metadata/x509/{}", email.replace('@', "%40")),
            "universe_domain": "googleapis.com",
        }),
    )
}

/// Deletes a key: assertions signed with it stop working at once, as in IAM.
pub fn delete_key(sim: &Sim, key_id: &str) -> Response {
    match sim.lock().gcp_keys.remove(key_id) {
        Some(_) => json_response(StatusCode::OK, json!({})),
        None => api_error(
            StatusCode::NOT_FOUND,
            format!("Service account key {key_id} does not exist."),
            None,
        ),
    }
}

/// `POST /token` (oauth2.googleapis.com): the JWT bearer grant a service account key signs.
pub async fn oauth2_token(sim: &Sim, req: &Req) -> Response {
    let form = req.form();
    let field = |k: &str| form_get(&form, k);
    match field("grant_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("Invalid grant_type: {other}"),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            );
        }
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let invalid_grant =
        |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d.to_owned());
    let token = match Unverified::parse(assertion) {
        Ok(t) => t,
        Err(_) => {
            return invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
    };
    let email = token.str_claim("iss").unwrap_or_default().to_owned();
    let known = sim.state.file.gcp.as_ref().is_some_and(|g| {
        g.service_accounts
            .iter()
            .any(|sa| sa.email.get_ref() == &email)
    });
    if !known {
        return invalid_grant("Invalid grant: account not found");
    }
    let key = token
        .kid
        .as_deref()
        .and_then(|kid| sim.lock().gcp_keys.get(kid).cloned())
        .filter(|k| k.email == email);
    match key {
        Some(k) if token.verify_rs256(&k.modulus, &k.exponent) => {}
        _ => return invalid_grant("Invalid JWT Signature."),
    }
    let own = format!("{}/token", sim.base);
    let auds = token.audiences();
    if !auds.iter().any(|a| a == GOOGLE_TOKEN_URI || a == &own) {
        return invalid_grant(&format!(
            "Invalid JWT: Failed audience check. The expected value was {GOOGLE_TOKEN_URI} but the actual value was {}",
            auds.join(",")
        ));
    }
    if check_times(&token, sim.now(), &SA_TIME).is_err() {
        return invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if token.str_claim("scope").is_none_or(str::is_empty) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let exp = sim.now() + ACCESS_TOKEN_SECS;
    let access = sim.issue(Grant::GcpServiceAccount { email, exp }, "ya29.c.sim-");
    json_response(
        StatusCode::OK,
        json!({"access_token": access, "expires_in": ACCESS_TOKEN_SECS - 1, "token_type": "Bearer"}),
    )
}
