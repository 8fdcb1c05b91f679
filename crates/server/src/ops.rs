//! Operations endpoints: liveness, readiness, Prometheus metrics, and request counting.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::state::AppState;

/// The process-wide metrics recorder (a global by nature), installed once.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding the app); ours then
            // renders empty, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and a key can sign.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let database = app.store.ping().await;
    let signer = app.keyring.signer(app.clock.now()).is_some();
    let ok = database.is_ok() && signer;
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "signing_key": if signer { "ok" } else { "missing" },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

pub async fn count_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("keyward_http_requests_total", "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("keyward_http_request_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    response
}
