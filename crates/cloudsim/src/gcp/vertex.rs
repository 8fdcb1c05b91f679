//! A Vertex AI `generateContent` stand-in: it checks what Vertex checks (the caller's role, the
//! request's contents) and answers with a canned candidate naming the caller.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::gcp::access::{authenticated, has_any, project_matches, roles_of};
use crate::gcp::errors::{api_error, json_body};
use crate::sim::{Grant, Sim};
use crate::wire::{Req, json_response};

/// `…/v1/projects/<p>/locations/<loc>/publishers/google/models/<model>:<method>`
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let path = &req.path;
    let segs: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    match segs.as_slice() {
        [
            "projects",
            project,
            "locations",
            location,
            "publishers",
            "google",
            "models",
            model,
        ] => match model.strip_suffix(":generateContent") {
            Some(model) => generate_content(sim, req, project, location, model).await,
            None => api_error(
                StatusCode::NOT_FOUND,
                format!("cloudsim's Vertex stand-in only serves :generateContent, not {path}."),
                None,
            ),
        },
        _ => api_error(
            StatusCode::NOT_FOUND,
            format!("No Vertex method at {path}."),
            None,
        ),
    }
}

/// `POST /v1/projects/<p>/locations/<loc>/publishers/google/models/<model>:generateContent`
async fn generate_content(
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
    let body = match json_body(req) {
        Ok(v) => v,
        Err(r) => return r,
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
