//! Guards every route runs before its handler: paths must decode to UTF-8, and request bodies
//! are read whole (up to the route's limit) before the handler sees them.
//!
//! Reading the body first matters over HTTP/2: a handler that ignores its body (the kickoff)
//! would otherwise answer while the client is still uploading, and a body just over the limit
//! would be cut off mid-stream. Both end in RST_STREAM, which some clients report as a framing
//! error or wait on. A small overflow is read and dropped so the client finishes sending and
//! gets the 413 cleanly; only a body far over the limit is cut short.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::error::ApiError;

/// Bytes read and dropped past a route's limit, so the client can finish its upload and read
/// the 413; beyond this the stream is reset after the answer.
const DRAIN_BYTES: usize = 2 * 1024 * 1024;
/// How long a body may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths that do not decode to UTF-8 (`/api/v1/automations/%ff`) are the client's mistake: one
/// 400 for every route, before an extractor turns them into a 500 and an ERROR log line that
/// anyone with a token could repeat at will.
pub async fn reject_undecodable_path(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .is_err()
    {
        return ApiError::Invalid {
            code: "invalid_path",
            message: "the request path has percent-escapes that do not decode to UTF-8 text; ids and names are UTF-8".into(),
            field: None,
        }
        .into_response();
    }
    next.run(req).await
}

fn too_large(limit: usize) -> Response {
    ApiError::TooLarge {
        message: format!(
            "the request body is larger than this endpoint accepts ({} KiB at most)",
            limit / 1024
        ),
    }
    .into_response()
}

/// Reads the whole body (at most `limit` bytes) before the handler runs.
pub async fn read_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_BYTES)) {
        return too_large(limit);
    }
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut total = 0usize;
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return ApiError::Invalid {
                    code: "body_timeout",
                    message: format!(
                        "the request body did not arrive within {} s",
                        READ_TIMEOUT.as_secs()
                    ),
                    field: None,
                }
                .into_response();
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return ApiError::Invalid {
                    code: "invalid_body",
                    message: format!("the request body could not be read: {e}"),
                    field: None,
                }
                .into_response();
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total <= limit {
            kept.extend_from_slice(&data);
        } else if total > limit.saturating_add(DRAIN_BYTES) {
            return too_large(limit);
        }
    }
    if total > limit {
        return too_large(limit);
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}
