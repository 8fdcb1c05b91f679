//! The admin listener, apart from the data path so it is never exposed with it: `/healthz` (200
//! and the configuration generation: the process serves), `/readyz` (200 while the database
//! answers, 503 naming it when not: a load balancer sends no traffic to a gateway whose every
//! authorization, approval and audit write would fail) and `/metrics` (Prometheus text).
//!
//! Metrics: `keyward_gateway_requests_total{route,decision,status}`,
//! `keyward_gateway_request_duration_seconds{route}` (histogram, until the response headers),
//! `keyward_gateway_upstream_errors_total{route,kind}`,
//! `keyward_gateway_config_reloads_total{result}`, `keyward_gateway_audit_queue_full_total`,
//! `keyward_audit_events_total{type}`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyward_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::table::RouteTable;

/// Latency buckets in seconds: the gateway's own cost is sub-millisecond, upstreams take seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder, installed once.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(
                Matcher::Full("keyward_gateway_request_duration_seconds".into()),
                &BUCKETS,
            ) {
                Ok(b) => b,
                // Only an empty bucket list fails; BUCKETS is not empty.
                Err(_) => PrometheusBuilder::new(),
            };
            keyward_server::ops::install_recorder(builder)
        })
        .clone()
}

/// How long `/readyz` waits for the database: a probe must answer before its own timeout (3 s in
/// the Helm chart), and a database that takes longer is not one to send traffic through.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin listener reads to answer.
#[derive(Clone)]
struct Admin {
    table: Arc<RouteTable>,
    store: Arc<dyn Store>,
    metrics: PrometheusHandle,
}

async fn readyz(admin: &Admin) -> (StatusCode, String) {
    let database = matches!(
        tokio::time::timeout(READY_DB_TIMEOUT, admin.store.ping()).await,
        Ok(Ok(()))
    );
    let snapshot = admin.table.load();
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if database { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unreachable" },
        "generation": snapshot.generation,
        "routes": snapshot.routes.len(),
    });
    (status, body.to_string())
}

async fn answer(request: Request<Incoming>, admin: Admin) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz" => {
            let snapshot = admin.table.load();
            (
                StatusCode::OK,
                "application/json",
                serde_json::json!({
                    "status": "ok",
                    "generation": snapshot.generation,
                    "routes": snapshot.routes.len(),
                })
                .to_string(),
            )
        }
        "/readyz" => {
            let (status, body) = readyz(&admin).await;
            (status, "application/json", body)
        }
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            admin.metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":"not_found","message":"the admin listener serves /healthz, /readyz and /metrics"}"#
                .to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    table: Arc<RouteTable>,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()>,
) {
    let admin = Admin {
        table,
        store,
        metrics: metrics_handle(),
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "the admin listener could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(answer(request, admin).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
