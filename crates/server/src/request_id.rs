//! The outermost layer of every request: its id (`X-Request-Id`, taken from the caller when
//! well-formed, else a new UUID), the span every log line of the request carries it in, the one
//! access log line, the HTTP metrics by route template, and the id in every JSON error body so a
//! caller's bug report points at the server's log lines.

use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Error bodies are a few hundred bytes; anything larger (or of unknown length) is passed on
/// untouched rather than buffered.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The id of the request being served, in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// An incoming id is kept only if it cannot smuggle anything into a log line or header: up to
/// 128 characters of letters, digits and `-_.:`.
fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub fn incoming_or_new(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// A bounded method label: a client may send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = incoming_or_new(req.headers());
    let method = method_label(req.method());
    // The template (`/api/v1/automations/{id}`), never the path: ids in paths would make a
    // series per resource. Unmatched paths share the empty route, as in the gateway's metrics.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method, route = %route);
    let response = next.run(req).instrument(span.clone()).await;
    let mut response = with_id_in_body(response, &id).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("keyward_http_requests_total", &labels).increment(1);
    metrics::histogram!("keyward_http_request_duration_seconds", &labels).record(seconds);
    span.in_scope(|| {
        tracing::info!(
            request_id = %id,
            status,
            duration_ms = (seconds * 1000.0 * 1000.0).round() / 1000.0,
            "request"
        );
    });
    response
}

/// Adds `"request_id"` to an error answer shaped like our error body (`error` and `message`),
/// leaving every other answer — OAuth errors, pages, successes — byte for byte as it was.
async fn with_id_in_body(response: Response, id: &str) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= MAX_ERROR_BODY);
    if !(response.status().is_client_error() || response.status().is_server_error())
        || !is_json
        || !small
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY as usize).await {
        Ok(bytes) => bytes,
        // The size was known and within the limit, so this is a body that failed while being
        // produced; the answer stays an error, now without its body.
        Err(e) => {
            tracing::warn!(error = %e, "error body could not be read to add the request id");
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::empty());
        }
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map))
            if map.get("error").is_some_and(|v| v.is_string())
                && map.get("message").is_some_and(|v| v.is_string())
                && !map.contains_key("request_id") =>
        {
            map.insert(
                "request_id".into(),
                serde_json::Value::String(id.to_owned()),
            );
            match serde_json::to_vec(&map) {
                Ok(text) => {
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Body::from(text)
                }
                Err(_) => Body::from(bytes),
            }
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_taken_from_the_caller() {
        assert!(well_formed("0f9e-abc_1.2:3"));
        assert!(!well_formed(""));
        assert!(!well_formed("a b"));
        assert!(!well_formed("line\nbreak"));
        assert!(!well_formed(&"x".repeat(129)));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static("trace-42"));
        assert_eq!(incoming_or_new(&headers), "trace-42");
        headers.insert(HEADER, HeaderValue::from_static("bad id"));
        let fresh = incoming_or_new(&headers);
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
    }

    #[tokio::test]
    async fn error_bodies_get_the_id_and_other_answers_stay_as_they_were() {
        let error = Response::builder()
            .status(404)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"error":"not_found","message":"route not found"}"#,
            ))
            .unwrap();
        let out = with_id_in_body(error, "rid-1").await;
        let bytes = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["request_id"], "rid-1");
        assert_eq!(body["error"], "not_found");

        let oauth = r#"{"error":"authorization_pending","error_description":"wait"}"#;
        let answer = Response::builder()
            .status(400)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(oauth))
            .unwrap();
        let out = with_id_in_body(answer, "rid-2").await;
        let bytes = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        assert_eq!(bytes, oauth.as_bytes());

        let ok = r#"{"error":"x","message":"y"}"#;
        let answer = Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(ok))
            .unwrap();
        let out = with_id_in_body(answer, "rid-3").await;
        let bytes = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        assert_eq!(bytes, ok.as_bytes());
    }
}
