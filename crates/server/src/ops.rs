//! Operations endpoints: liveness, readiness and Prometheus metrics. Request counting is in
//! [`crate::request_id`], the outermost layer.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::client_addr::ClientAddr;
use crate::config::metrics_access::Refusal;
use crate::error::ApiError;
use crate::state::AppState;

/// Latency buckets in seconds (the gateway's, for one dashboard): API calls take milliseconds,
/// cloud calls with retries take seconds.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide metrics recorder (a global by nature), installed once.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Only an empty bucket list is refused; BUCKETS is not empty.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            install_recorder(builder)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets (the exporter's own default).
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs `builder`'s recorder as the process's and keeps it drained. A recorder from
/// `build_recorder` holds every histogram sample until someone renders `/metrics`; unscraped,
/// that grew the heap by some 30 bytes a request (the soak benchmark: 13 MB in 10 minutes).
/// The upkeep thread folds them into the buckets every few seconds instead. Another recorder
/// may already be installed (tests embedding the app); ours then renders empty, which is
/// harmless.
pub fn install_recorder(builder: PrometheusBuilder) -> PrometheusHandle {
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        // Nothing records into it, so there is nothing to drain.
        return handle;
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms are drained only when /metrics is scraped");
    }
    handle
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// How long `/readyz` waits for the database: a probe must answer before its own timeout, and a
/// database that takes longer is not one to send traffic to.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready when the database answers and a key can sign.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let database = matches!(
        tokio::time::timeout(READY_DB_TIMEOUT, app.store.ping()).await,
        Ok(Ok(()))
    );
    let signer = app.keyring.signer(app.clock.now()).is_some();
    let ok = database && signer;
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unreachable" },
        "signing_key": if signer { "ok" } else { "missing" },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The Prometheus text, to whoever `KEYWARD_METRICS_ACCESS` lets in; the gauges that describe
/// the present (pool, key ages) are computed at the scrape, so none goes stale.
pub async fn metrics(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(refusal) = app.config.metrics_access.admit(client, authorization) {
        return refused(refusal).into_response();
    }
    let mut text = app.metrics.render();
    scrape_gauges(&app, &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotLoopback => ApiError::Forbidden {
            code: "metrics_loopback_only",
            message: "/metrics answers only clients on the server's own host (KEYWARD_METRICS_ACCESS=loopback); scrape from there, or set KEYWARD_METRICS_ACCESS=token with KEYWARD_METRICS_TOKEN".into(),
        },
        Refusal::MissingToken => ApiError::Unauthenticated {
            code: "metrics_token_required",
            message: "/metrics needs 'Authorization: Bearer <KEYWARD_METRICS_TOKEN>' (KEYWARD_METRICS_ACCESS=token)".into(),
        },
        Refusal::WrongToken => ApiError::Unauthenticated {
            code: "metrics_token_invalid",
            message: "the bearer is not this server's KEYWARD_METRICS_TOKEN".into(),
        },
    }
}

/// Database pool use and signing-key ages, appended in the exposition format.
fn scrape_gauges(app: &AppState, out: &mut String) {
    use std::fmt::Write;
    let pool = app.store.pool_stats();
    let _ = writeln!(
        out,
        "# HELP keyward_db_pool_connections Database connections by state.\n\
         # TYPE keyward_db_pool_connections gauge\n\
         keyward_db_pool_connections{{state=\"idle\"}} {}\n\
         keyward_db_pool_connections{{state=\"in_use\"}} {}\n\
         # HELP keyward_db_pool_max_connections The pool's connection limit.\n\
         # TYPE keyward_db_pool_max_connections gauge\n\
         keyward_db_pool_max_connections {}",
        pool.idle,
        pool.size.saturating_sub(pool.idle),
        pool.max
    );
    let now = app.clock.now();
    let _ = writeln!(
        out,
        "# HELP keyward_signing_key_age_seconds Seconds since each signing key was published.\n\
         # TYPE keyward_signing_key_age_seconds gauge"
    );
    for (row, phase) in app.keyring.list(now) {
        // kids are generated (or a fingerprint of the operator's key): no quoting needed, but
        // a stray quote or backslash must not break the exposition.
        let kid: String = row
            .kid
            .chars()
            .filter(|c| !matches!(c, '"' | '\\' | '\n'))
            .collect();
        let _ = writeln!(
            out,
            "keyward_signing_key_age_seconds{{kid=\"{kid}\",state=\"{}\"}} {}",
            phase.as_str(),
            (now - row.published_at).max(0)
        );
    }
}
