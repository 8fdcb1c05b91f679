//! Who a GCP bearer token stands for and which roles IAM gives it: members (service accounts and
//! workload identity principals), project and per-secret bindings.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::gcp::errors::{api_error, unauthenticated};
use crate::sim::{Grant, Sim};
use crate::state::GcpState;
use crate::wire::Req;

/// How long an access token from any of GCP's token endpoints lives.
pub const ACCESS_TOKEN_SECS: i64 = 3600;

/// Whether an IAM member string names the caller behind `grant`.
pub fn member_matches(member: &str, grant: &Grant) -> bool {
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
pub fn roles_of(gcp: &GcpState, grant: &Grant, secret: Option<&str>) -> Vec<String> {
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

pub fn has_any(roles: &[String], wanted: &[&str]) -> bool {
    roles
        .iter()
        .any(|r| wanted.contains(&r.as_str()) || r == "roles/owner")
}

pub fn authenticated(sim: &Sim, req: &Req) -> Result<Grant, Response> {
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

pub fn project_matches(gcp: &GcpState, project: &str) -> bool {
    project == gcp.project_id.get_ref() || project == gcp.project_number.get_ref()
}
