//! GCP's two error shapes: OAuth's `{"error", "error_description"}` from the token endpoints and
//! the Google API body `{"error": {"code", "message", "status"}}` from everything else.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::wire::{Req, json_response};

pub fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
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

pub fn unauthenticated() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        None,
    )
}

/// The request's JSON body, or Google's answer to a payload that is not JSON.
pub fn json_body(req: &Req) -> Result<Value, Response> {
    serde_json::from_slice(&req.body).map_err(|e| {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid JSON payload received. {e}"),
            None,
        )
    })
}
