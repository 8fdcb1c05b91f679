//! `keyward gateway` (SPEC §9): an L7 reverse proxy in front of LLM APIs, MCP servers and
//! internal APIs. Every request passes one ordered phase function (`pipeline`):
//! identity → body (when read) → policy → (approval, next issue) → credential injection →
//! upstream → (masking, recording, next issue) → audit.
//!
//! Modules: `pipeline` (the phases), `listener` (TLS, HTTP/1.1 and HTTP/2), `upstream` (pooled
//! clients), `table` (route matching, swapped per generation), `reload` (file and database
//! sources), `audit` (batched events), `admin` (`/healthz`, `/metrics`), `error` (what callers
//! are told), `body`, `settings`; `identity/` and `credentials/` hold the real phases.

pub mod admin;
pub mod approval;
mod approval_admission;
pub mod audit;
pub mod body;
pub mod credentials;
pub mod error;
pub mod identity;
pub mod listener;
pub mod masking;
pub mod phases;
pub mod pipeline;
pub mod recording;
pub mod reload;
pub mod route_metrics;
pub mod settings;
pub mod table;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keyward_server::clock::Clock;
use keyward_store::Store;

use crate::credentials::Injector;
use crate::identity::Verifier;
use crate::pipeline::Gateway;
use crate::reload::{GatewayRouteRow, Reloader, RouteRows};
use crate::settings::{GatewaySettings, Ready, TlsMode};
use crate::table::{RouteTable, Snapshot};
use crate::upstream::UpstreamClients;

pub use crate::error::GatewayError;

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Storage(#[from] keyward_server::ServeError),
    /// The first configuration did not load (the same message a refused reload logs).
    #[error("{0}")]
    Config(String),
    #[error("identity: {0}")]
    Identity(#[from] identity::IdentityError),
    #[error("credentials: {0}")]
    Credentials(#[from] credentials::CredentialError),
    #[error("TLS: {0}")]
    Tls(#[from] keyward_server::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Validates a route file without serving it (`keyward gateway check`): `Ok(number of routes)`
/// or the same message a refused reload logs. The organization is resolved only when serving.
pub fn check(path: &Path) -> Result<usize, String> {
    reload::load_file(path).map(|l| l.routes.len())
}

/// The stored routes, read through the platform's store.
struct StoreRoutes(Arc<dyn Store>);

#[async_trait]
impl RouteRows for StoreRoutes {
    async fn all_gateway_routes(&self) -> Result<Vec<GatewayRouteRow>, String> {
        let rows = self
            .0
            .all_gateway_routes()
            .await
            .map_err(|e| format!("cannot read the stored gateway routes: {e}"))?;
        Ok(rows
            .into_iter()
            .map(|r| GatewayRouteRow {
                id: r.id.to_string(),
                org_id: r.org_id,
                name: r.name,
                spec: r.spec,
                updated_at: r.updated_at,
            })
            .collect())
    }
}

fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    let listen = |source| StartError::Listen { addr, source };
    let std = std::net::TcpListener::bind(addr).map_err(listen)?;
    std.set_nonblocking(true).map_err(listen)?;
    tokio::net::TcpListener::from_std(std).map_err(listen)
}

fn shown(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Runs the gateway until `shutdown` resolves, then drains connections and flushes the audit
/// events. `on_ready` receives the addresses once both listeners are bound and routes loaded.
pub async fn run(
    settings: GatewaySettings,
    on_ready: impl FnOnce(&Ready),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // The recorder first: counters from startup on (the first load) must be kept.
    let _ = admin::metrics_handle();
    let (store, master) = keyward_server::open_storage(
        &settings.data_dir,
        settings.database_url.as_deref(),
        settings.master_key.as_deref(),
    )
    .await?;
    let clock = match &settings.test_clock_file {
        Some(path) => {
            tracing::warn!(file = %path.display(), "KEYWARD_TEST_CLOCK_FILE is set: the gateway's clock is shifted by that file; never set it outside tests");
            Clock::offset_by_file(path.clone())
        }
        None => Clock::system(),
    };

    // Routes first: a gateway that cannot load its first configuration must not start.
    let table = Arc::new(RouteTable::new(Snapshot::empty()));
    let reloader = Arc::new(Reloader {
        table: table.clone(),
        clients: Arc::new(UpstreamClients::default()),
    });
    let rows: Arc<dyn RouteRows> = Arc::new(StoreRoutes(store.clone()));
    let stored = match &settings.config {
        Some(path) => {
            reloader
                .reload_file(path, store.as_ref())
                .await
                .map_err(StartError::Config)?;
            None
        }
        None => {
            let current = rows
                .all_gateway_routes()
                .await
                .map_err(StartError::Config)?;
            reloader
                .install_rows(&current)
                .map_err(StartError::Config)?;
            Some(reload::stamp(&current))
        }
    };
    reload::record(
        &Ok(1),
        settings.config.as_ref().map_or("database", |_| "file"),
    );

    let identity = Arc::new(Verifier::new(settings.identity.clone(), store.clone()).await?);
    let injector = Arc::new(Injector::with_store(
        settings.credentials.clone(),
        store.clone(),
    )?);

    let (audit, audit_rx) = audit::channel(audit::QUEUE);
    let writer = tokio::spawn(audit::write_batches(
        store.clone(),
        master.audit_key(),
        audit_rx,
    ));

    // Before the listener exists: no response may leave ahead of the values it must mask.
    masking::load_static_values(store.as_ref(), &master, table.masking_orgs()).await;
    let routes = table.clone();
    tokio::spawn(masking::refresh_static_values(
        store.clone(),
        master.clone(),
        move || routes.masking_orgs(),
    ));

    let listener = bind(settings.listen)?;
    let admin_listener = bind(settings.admin_listen)?;
    let bound = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.listen,
        source,
    })?;
    let admin_bound = admin_listener
        .local_addr()
        .map_err(|source| StartError::Listen {
            addr: settings.admin_listen,
            source,
        })?;
    let tls_files = match &settings.tls {
        TlsMode::Plain => None,
        TlsMode::Files { cert, key } => Some(keyward_server::tls::TlsFiles {
            ca: None,
            cert: cert.clone(),
            key: key.clone(),
        }),
        TlsMode::SelfSigned => {
            let hosts = if bound.ip().is_unspecified() {
                Vec::new()
            } else {
                vec![bound.ip().to_string()]
            };
            // Clients check the certificate against their wall clocks, not a test's shifted one.
            Some(keyward_server::tls::ensure_self_signed_named(
                &settings.data_dir,
                "gateway",
                &hosts,
                Clock::system().now(),
            )?)
        }
    };
    let rustls = tls_files
        .as_ref()
        .map(keyward_server::tls::server_config)
        .transpose()?;

    // Approvals: their state is the platform's (any replica releases a held request); their
    // transitions go into the same audit chain; the webhook (if set) announces new requests.
    let webhook = keyward_server::domain::approval_webhook::ApprovalWebhook::from_env()
        .map_err(|e| StartError::Config(format!("approval webhook: {e}")))?;
    let approvals = Arc::new(approval::ApprovalGate::new(
        keyward_server::domain::approval_service::Approvals::new(
            store.clone(),
            keyward_server::audit::Auditor::with_clock(
                store.clone(),
                master.audit_key(),
                clock.clone(),
            ),
            webhook,
        ),
        store.clone(),
        clock.clone(),
    ));
    let expiry = tokio::spawn({
        let approvals = approvals.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                approvals.expire_due().await;
            }
        }
    });

    let recordings = keyward_recording::Storage::from_setting(
        settings.recordings.as_deref(),
        &settings.data_dir,
    )
    .map_err(|e| StartError::Config(format!("recordings: {e}")))?
    .map(|storage| Arc::new(recording::Recordings::new(storage)));
    match &recordings {
        Some(r) => tracing::info!(store = %r.describe(), "recording gateway sessions"),
        None => tracing::warn!("session recording is off (--recordings off)"),
    }
    let recordings_left = recordings.clone();
    let gateway = Arc::new(Gateway {
        table: table.clone(),
        identity,
        credentials: injector,
        approvals,
        recordings,
        audit,
        clock,
    });

    let watcher = match settings.config.clone() {
        Some(path) => tokio::spawn(reload::watch_file(
            reloader.clone(),
            path,
            store.clone(),
            reload::hangup_signal(),
        )),
        None => tokio::spawn(reload::watch_rows(reloader.clone(), rows, stored)),
    };

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        table.clone(),
        store.clone(),
        async move {
            let _ = admin_stopped.await;
        },
    ));

    let scheme = if rustls.is_some() { "https" } else { "http" };
    let ready = Ready {
        url: format!("{scheme}://{}", shown(bound)),
        admin_url: format!("http://{}", shown(admin_bound)),
        ca_file: tls_files
            .as_ref()
            .and_then(|t| t.ca.clone())
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
        routes: table.load().routes.len(),
    };
    tracing::info!(url = %ready.url, admin = %ready.admin_url, routes = ready.routes, backend = store.backend(), "keyward gateway is serving");
    on_ready(&ready);

    let workers = settings.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    listener::serve_per_core(listener, rustls, gateway, shutdown, workers)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;

    // Segments of the last requests are still being written (on this runtime); their audit
    // events follow them.
    if let Some(recordings) = &recordings_left {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while recordings.closing() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    watcher.abort();
    expiry.abort();
    let _ = stop_admin.send(());
    let _ = admin.await;
    // Every sender is gone once the connections are: the writer drains the queue and ends.
    if tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .is_err()
    {
        tracing::error!("gateway audit events still queued at exit were not written");
    }
    Ok(())
}
