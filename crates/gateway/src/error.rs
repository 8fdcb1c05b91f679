//! What the caller is told when the gateway refuses or fails a request: one enum, one place that
//! maps it to a status and the API's JSON error body (`{"error", "message", "policy_ids"?}`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::body::GatewayBody;

/// Every way a request ends without the upstream's answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route matches the host and path.
    #[error("no gateway route matches {host}{path}; check the route's host and path_prefix")]
    NoRoute { host: String, path: String },
    /// The caller could not be identified; the text names the failed check, never the token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A policy (or the route's `no_match`) denied the request.
    #[error("{message}")]
    Forbidden {
        message: String,
        policy_ids: Vec<String>,
    },
    /// A permitting policy asks for a human's approval and none lets this request through
    /// (denied, expired, still pending, or none could be asked for).
    #[error("{message}")]
    ApprovalRequired {
        message: String,
        policy_ids: Vec<String>,
        approval_id: Option<String>,
        /// The approval's state (`pending`, `denied`, `expired`, `revoked`).
        state: Option<&'static str>,
    },
    /// Approval needs a reason (`X-Keyward-Approval-Reason`) and the request has none, or an
    /// unusable one.
    #[error("{0}")]
    ReasonRequired(String),
    /// Too many requests of the route, or of the caller, are waiting for approval.
    #[error("{0}")]
    TooManyPending(String),
    /// The body is over the route's inspection limit and the route needs to read it.
    #[error(
        "the request body is larger than route {route}'s inspection limit of {limit} bytes, which its policy or credential needs to read; send a smaller body or raise inspect_limit"
    )]
    PayloadTooLarge { route: String, limit: usize },
    /// The request body could not be read from the caller.
    #[error("the request body could not be read: {0}")]
    BadRequest(String),
    /// The route's credential could not be had (the text names the credential and the fix).
    #[error("{0}")]
    CredentialUnavailable(String),
    /// The upstream refused, reset or failed the request.
    #[error("{0}")]
    BadGateway(String),
    /// The upstream did not answer within the route's timeout.
    #[error("{0}")]
    GatewayTimeout(String),
    /// Identity or another dependency is down; not the caller's fault.
    #[error("{0}")]
    Unavailable(String),
}

impl GatewayError {
    /// The status and the stable code (`error` field) of this refusal.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            GatewayError::NoRoute { .. } => (StatusCode::NOT_FOUND, "no_route"),
            GatewayError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            GatewayError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            GatewayError::ApprovalRequired { .. } => (StatusCode::FORBIDDEN, "approval_required"),
            GatewayError::ReasonRequired(_) => {
                (StatusCode::PRECONDITION_REQUIRED, "reason_required")
            }
            GatewayError::TooManyPending(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_pending"),
            GatewayError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            GatewayError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            GatewayError::CredentialUnavailable(_) => {
                (StatusCode::BAD_GATEWAY, "credential_unavailable")
            }
            GatewayError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            GatewayError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
            GatewayError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    /// The ids of the policies that decided a refusal, when a policy did.
    pub fn policy_ids(&self) -> &[String] {
        match self {
            GatewayError::Forbidden { policy_ids, .. }
            | GatewayError::ApprovalRequired { policy_ids, .. } => policy_ids,
            _ => &[],
        }
    }

    /// The response the caller receives.
    pub fn into_response(self) -> Response<GatewayBody> {
        let (status, code) = self.status_and_code();
        let mut body = json!({"error": code, "message": self.to_string()});
        if matches!(
            self,
            GatewayError::Forbidden { .. } | GatewayError::ApprovalRequired { .. }
        ) {
            body["policy_ids"] = json!(self.policy_ids());
        }
        if let GatewayError::ApprovalRequired {
            approval_id, state, ..
        } = &self
        {
            if let Some(id) = approval_id {
                body["approval_id"] = json!(id);
            }
            if let Some(state) = state {
                body["approval_state"] = json!(state);
            }
        }
        let bytes = Bytes::from(body.to_string());
        let mut response = Response::new(GatewayBody::full(bytes));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_json(response: Response<GatewayBody>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn forbidden_names_the_deciding_policies() {
        let response = GatewayError::Forbidden {
            message: "denied by policy deny-delete".into(),
            policy_ids: vec!["deny-delete".into()],
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = body_json(response).await;
        assert_eq!(body["error"], "forbidden");
        assert_eq!(body["policy_ids"], json!(["deny-delete"]));
    }

    #[tokio::test]
    async fn every_code_has_its_status() {
        let cases = [
            (
                GatewayError::NoRoute {
                    host: "h".into(),
                    path: "/p".into(),
                },
                404,
                "no_route",
            ),
            (
                GatewayError::Unauthenticated("x".into()),
                401,
                "unauthenticated",
            ),
            (
                GatewayError::PayloadTooLarge {
                    route: "r".into(),
                    limit: 1,
                },
                413,
                "payload_too_large",
            ),
            (GatewayError::BadGateway("x".into()), 502, "bad_gateway"),
            (
                GatewayError::GatewayTimeout("x".into()),
                504,
                "gateway_timeout",
            ),
            (
                GatewayError::CredentialUnavailable("x".into()),
                502,
                "credential_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            let body = body_json(response).await;
            assert_eq!(body["error"], code);
            assert!(body.get("policy_ids").is_none());
        }
    }
}
