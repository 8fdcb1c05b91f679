//! IAM Credentials: `generateAccessToken` for a service account, by itself or by a federated
//! principal that holds `roles/iam.workloadIdentityUser` on it.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::gcp::access::{ACCESS_TOKEN_SECS, authenticated, member_matches};
use crate::gcp::errors::{api_error, json_body};
use crate::sim::{Grant, Sim};
use crate::wire::{Req, json_response};

/// `…/v1/projects/-/serviceAccounts/<email>:<method>`
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let path = &req.path;
    let rest = path.trim_start_matches("/v1/projects/-/serviceAccounts/");
    match rest.strip_suffix(":generateAccessToken") {
        Some(email) => {
            let email = percent_encoding::percent_decode_str(email)
                .decode_utf8_lossy()
                .into_owned();
            generate_access_token(sim, req, &email).await
        }
        None => api_error(
            StatusCode::NOT_FOUND,
            format!("No IAM Credentials method at {path}."),
            None,
        ),
    }
}

/// `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`
async fn generate_access_token(sim: &Sim, req: &Req, email: &str) -> Response {
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
    let body = match json_body(req) {
        Ok(v) => v,
        Err(r) => return r,
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
    let exp = sim.now() + sim.lifetime(lifetime);
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
