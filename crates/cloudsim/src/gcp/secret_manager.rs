//! Secret Manager: list a project's secrets and access a secret version, allowed by project or
//! per-secret role bindings.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::gcp::access::{authenticated, has_any, project_matches, roles_of};
use crate::gcp::errors::api_error;
use crate::sim::{Grant, Mutable, Sim};
use crate::state::GcpState;
use crate::wire::{Req, json_response};

/// `…/v1/projects/<project>/secrets[…]`
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let path = &req.path;
    let rest = path.trim_start_matches("/v1/projects/");
    match rest.split_once("/secrets") {
        Some((project, rest)) => secret_manager(sim, req, project, rest).await,
        None => api_error(
            StatusCode::NOT_FOUND,
            format!("No Secret Manager method at {path}."),
            None,
        ),
    }
}

/// Secret Manager: `…/secrets` (list) and `…/secrets/<name>/versions/<v>:access`.
async fn secret_manager(sim: &Sim, req: &Req, project: &str, rest: &str) -> Response {
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

fn sim_start(m: &Mutable) -> i64 {
    m.gcp_secrets
        .values()
        .filter_map(|v| v.first())
        .map(|v| v.created)
        .min()
        .unwrap_or(0)
}
