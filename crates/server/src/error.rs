//! The one API error type and the one place that turns it into a status and a JSON body
//! `{"error": "<snake_code>", "message": "…", "field"?: "…"}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::api::v1::ErrorBody;
use keyward_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// 401: no credentials, or unusable ones.
    Unauthenticated { code: &'static str, message: String },
    /// 403: authenticated, but not allowed.
    Forbidden { code: &'static str, message: String },
    /// 404: absent, or belongs to another organization (never told apart).
    NotFound { what: &'static str },
    /// 409
    Conflict {
        field: &'static str,
        message: String,
    },
    /// 413
    TooLarge { message: String },
    /// 415
    UnsupportedMediaType { message: String },
    /// 429: too many attempts in the current window; the message says when to retry. Answers
    /// `Retry-After: 60` (one window); [`ApiError::Throttled`] knows the exact wait.
    TooManyRequests { message: String },
    /// 429 with the seconds until the next attempt is allowed, sent as `Retry-After`.
    Throttled { message: String, retry_after: u64 },
    /// 503: too many password hashes in progress; retry after `retry_after` seconds.
    Busy { retry_after: u64 },
    /// 503: a setting or dependency is missing; the message says which.
    Unavailable { code: &'static str, message: String },
    /// 500: the detail is logged, the caller gets a generic message.
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "invalid_field",
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn not_found(what: &'static str) -> Self {
        ApiError::NotFound { what }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }

    /// The `error` code of the body this error answers with (also a metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. }
            | ApiError::Unauthenticated { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::TooManyRequests { .. } | ApiError::Throttled { .. } => "too_many_attempts",
            ApiError::Busy { .. } => "server_busy",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The status and the message people may read (an internal error's detail is logged, not
    /// returned): for the console's error pages.
    pub fn status_and_message(self) -> (StatusCode, String) {
        let (status, body) = self.parts();
        (status, body.message)
    }

    /// The `Retry-After` seconds this error answers with, if any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { .. } => Some(DEFAULT_RETRY_AFTER),
            ApiError::Throttled { retry_after, .. } | ApiError::Busy { retry_after } => {
                Some((*retry_after).max(1))
            }
            ApiError::Unavailable { code, .. } if *code == DATABASE_UNAVAILABLE => {
                Some(DATABASE_RETRY_AFTER)
            }
            _ => None,
        }
    }

    fn parts(self) -> (StatusCode, ErrorBody) {
        let body = |error: &str, message: String, field: Option<&str>| ErrorBody {
            error: error.to_owned(),
            message,
            field: field.map(str::to_owned),
            request_id: None,
        };
        match self {
            ApiError::Invalid {
                code,
                message,
                field,
            } => (StatusCode::BAD_REQUEST, body(code, message, field)),
            ApiError::Unauthenticated { code, message } => {
                (StatusCode::UNAUTHORIZED, body(code, message, None))
            }
            ApiError::Forbidden { code, message } => {
                (StatusCode::FORBIDDEN, body(code, message, None))
            }
            ApiError::NotFound { what } => (
                StatusCode::NOT_FOUND,
                body("not_found", format!("{what} not found"), None),
            ),
            ApiError::Conflict { field, message } => {
                (StatusCode::CONFLICT, body("conflict", message, Some(field)))
            }
            ApiError::TooLarge { message } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body("body_too_large", message, None),
            ),
            ApiError::UnsupportedMediaType { message } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body("unsupported_media_type", message, None),
            ),
            ApiError::TooManyRequests { message } => (
                StatusCode::TOO_MANY_REQUESTS,
                body("too_many_attempts", message, None),
            ),
            ApiError::Throttled { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                body("too_many_attempts", message, None),
            ),
            ApiError::Busy { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    "server_busy",
                    format!(
                        "the server is checking too many passwords at once; retry in {retry_after} seconds"
                    ),
                    None,
                ),
            ),
            ApiError::Unavailable { code, message } => {
                (StatusCode::SERVICE_UNAVAILABLE, body(code, message, None))
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body(
                        "internal",
                        "an internal error occurred; the server log has the details".to_owned(),
                        None,
                    ),
                )
            }
        }
    }
}

/// `Retry-After` of a plain [`ApiError::TooManyRequests`]: its windows are a minute or more.
const DEFAULT_RETRY_AFTER: u64 = 60;

/// The `error` code of a 503 answered while the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

/// `Retry-After` of [`DATABASE_UNAVAILABLE`]: a restarting database is usually back in seconds,
/// and the pool reconnects by itself.
const DATABASE_RETRY_AFTER: u64 = 2;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let (status, body) = self.parts();
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            set_retry_after(&mut response, secs);
        }
        response
    }
}

/// Every 429 and 503-busy says when to come back (RFC 9110 §10.2.3), in whole seconds.
pub fn set_retry_after(response: &mut Response, secs: u64) {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(secs.max(1)),
    );
}

/// Maps a store error, naming what was not found.
pub fn or_not_found(what: &'static str) -> impl FnOnce(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound { what: "resource" },
            StoreError::Conflict { field } => ApiError::Conflict {
                field,
                message: format!("{field} is already taken"),
            },
            StoreError::InUse => ApiError::Conflict {
                field: "id",
                message: "it is still in use by another resource; detach it there first".into(),
            },
            StoreError::LastOwner => ApiError::Conflict {
                field: "role",
                message: "this change would leave the organization without an owner; make someone else owner first".into(),
            },
            // A database restart is the operator's to fix and the caller's to wait out: 503 with
            // Retry-After, not a 500 (or a refused credential) the client would not retry.
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the database is unavailable");
                ApiError::Unavailable {
                    code: DATABASE_UNAVAILABLE,
                    message: "the database is unavailable (restarting or unreachable); retry in a few seconds".into(),
                }
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `Json` whose rejections answer with our error body: unknown fields and syntax errors are 400,
/// a missing content type 415, an oversized body 413 — never 500.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType {
                    message: "send the body as JSON with 'Content-Type: application/json'".into(),
                },
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::TooLarge {
                        message: "the request body is larger than this endpoint accepts".into(),
                    }
                }
                JsonRejection::JsonDataError(e) => ApiError::Invalid {
                    code: "invalid_body",
                    message: format!(
                        "the JSON body does not fit this endpoint: {}",
                        e.body_text()
                    ),
                    field: None,
                },
                JsonRejection::JsonSyntaxError(e) => ApiError::Invalid {
                    code: "invalid_json",
                    message: format!("the body is not valid JSON: {}", e.body_text()),
                    field: None,
                },
                other => ApiError::Invalid {
                    code: "invalid_body",
                    message: other.body_text(),
                    field: None,
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: StoreError) -> (u16, Option<String>, &'static str) {
        let error = ApiError::from(e);
        let code = error.code();
        let response = error.into_response();
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), retry_after, code)
    }

    #[test]
    fn an_unreachable_database_is_a_503_to_retry_not_a_500() {
        let refused: StoreError = StoreError::Database(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        );
        for e in [refused, StoreError::Unavailable("audit batch".into())] {
            assert_eq!(answer(e), (503, Some("2".into()), DATABASE_UNAVAILABLE));
        }
        let (status, retry_after, _) = answer(StoreError::Corrupt("a row".into()));
        assert_eq!((status, retry_after), (500, None));
    }
}
