//! Azure OpenAI chat completions for Entra callers: `POST /openai/deployments/<deployment>/
//! chat/completions?api-version=…` with a bearer token Entra issued for
//! `https://cognitiveservices.azure.com` in the resource's tenant, and an Azure OpenAI data-plane
//! role for the calling app. Checked as strictly as Key Vault checks its callers; the answer is a
//! canned completion naming the caller.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::sim::{Grant, Sim, random_string};
use crate::wire::{Req, json_response};

pub const RESOURCE: &str = "https://cognitiveservices.azure.com";
/// Roles that carry the `…/deployments/chat/completions/action` data action.
pub const ROLES: &[&str] = &[
    "Cognitive Services OpenAI User",
    "Cognitive Services OpenAI Contributor",
    "Cognitive Services User",
];
const DATA_ACTION: &str =
    "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action";

fn error(status: StatusCode, code: &str, message: String) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "401",
        format!(
            "Unauthorized. Access token is missing, invalid, audience is incorrect ({RESOURCE}), or have expired."
        ),
    )
}

/// `/openai/deployments/<deployment>/chat/completions`
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let rest = req.path.trim_start_matches("/openai/deployments/");
    let segments: Vec<&str> = rest.split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", [deployment, "chat", "completions"]) => chat(sim, req, deployment),
        _ => error(
            StatusCode::NOT_FOUND,
            "404",
            format!(
                "Resource not found (cloudsim's Azure OpenAI serves POST /openai/deployments/<deployment>/chat/completions, not {} {}).",
                req.method, req.path
            ),
        ),
    }
}

fn chat(sim: &Sim, req: &Req, deployment: &str) -> Response {
    let Some(resource) = sim
        .state
        .file
        .azure
        .as_ref()
        .and_then(|a| a.openai.as_ref())
    else {
        return error(
            StatusCode::NOT_FOUND,
            "404",
            "Resource not found (this simulated world declares no [azure.openai]).".into(),
        );
    };
    if req.query("api-version").is_none_or(str::is_empty) {
        return error(StatusCode::NOT_FOUND, "404", "Resource not found".into());
    }
    if req.header("api-key").is_some() {
        // The simulated resource has no keys: Entra ID only (disableLocalAuth).
        return error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.".into(),
        );
    }
    let Some(token) = req.bearer() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to missing subscription key or Entra ID token. Make sure to include subscription key or Entra ID token when making requests to the API.".into(),
        );
    };
    let Some(Grant::Entra {
        tenant,
        client_id,
        resource: audience,
        ..
    }) = sim.grant(token)
    else {
        return unauthorized();
    };
    // Audience and issuer, as Key Vault checks them: a token for another resource or another
    // tenant is refused even though Entra issued it.
    if audience != RESOURCE || tenant != *resource.tenant.get_ref() {
        return unauthorized();
    }
    let granted = resource.role_assignments.iter().any(|ra| {
        ra.principal.get_ref() == &client_id && ROLES.contains(&ra.role.get_ref().as_str())
    });
    if !granted {
        return error(
            StatusCode::UNAUTHORIZED,
            "PermissionDenied",
            format!(
                "The principal `{client_id}` lacks the required data action `{DATA_ACTION}` to perform `POST /openai/deployments/{{deployment-id}}/chat/completions` operation."
            ),
        );
    }
    if !resource
        .deployments
        .iter()
        .any(|d| d.get_ref() == deployment)
    {
        return error(
            StatusCode::NOT_FOUND,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.".into(),
        );
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("The request body is not valid JSON: {e}"),
            );
        }
    };
    if body
        .get("messages")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "'messages' is a required property and must be a non-empty array.".into(),
        );
    }
    json_response(
        StatusCode::OK,
        json!({
            "id": format!("chatcmpl-sim{}", random_string(20)),
            "object": "chat.completion",
            "created": sim.now(),
            "model": deployment,
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": format!("cloudsim {deployment} answered {client_id}")}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }),
    )
}
