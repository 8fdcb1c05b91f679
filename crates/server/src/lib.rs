//! The Keyward platform server: the workload OIDC issuer, the HTTP API with its authorization
//! layer, the audit log, TLS and operations endpoints.

pub mod api;
pub mod audit;
pub mod auth;
pub mod caller;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod console;
pub mod domain;
pub mod error;
pub mod headers;
pub mod issuer;
pub mod keyring;
pub mod needs;
pub mod openapi;
pub mod ops;
pub mod people;
pub mod proxies;
pub mod rbac;
pub mod request_guards;
pub mod request_id;
pub mod reserved_env;
pub mod routes;
pub mod state;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keyward_store::Store;
use keyward_store::crypto::{CryptoError, MasterKey};
use thiserror::Error;

use crate::audit::Auditor;
use crate::clock::Clock;
use crate::config::{ServerConfig, TlsMode};
use crate::keyring::{Keyring, KeyringError};
use crate::state::AppState;

pub use routes::app;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("{0}")]
    Clouds(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key: {0}")]
    MasterKey(#[from] CryptoError),
    #[error("master key: {0}")]
    MasterKeyState(#[from] keyward_store::master_keys::AdmitError),
    #[error("database: {0}")]
    Store(#[from] keyward_store::StoreError),
    #[error("signing keys: {0}")]
    Keyring(#[from] KeyringError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("single sign-on: {0}")]
    Sso(String),
    #[error("headless bootstrap failed: {0}")]
    Bootstrap(String),
    #[error("the server stopped with an error: {0}")]
    Serve(std::io::Error),
}

/// What a starting server tells its operator.
#[derive(Clone, Debug)]
pub struct Banner {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    /// The one-time owner setup link (first start without bootstrap variables).
    pub setup_link: Option<String>,
    /// The organization created by the headless bootstrap, on that first start.
    pub bootstrapped_org: Option<keyward_core::OrgId>,
    /// `KEYWARD_BOOTSTRAP_*` were set on an installation that already has an owner.
    pub bootstrap_ignored: bool,
    pub issuer: Option<String>,
    pub backend: &'static str,
}

/// The data directory (0700), the master key and the migrated store.
pub async fn open_storage(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    master_key: Option<&str>,
) -> Result<(Arc<dyn Store>, Arc<MasterKey>), ServeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| ServeError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
    let mut master = MasterKey::load_or_create(master_key, data_dir)?;
    let store = keyward_store::open(database_url, data_dir).await?;
    // A retired key, or an unfinished rotation, is refused before anything is read or sealed.
    keyward_store::master_keys::admit(store.as_ref(), &mut master).await?;
    Ok((store, Arc::new(master)))
}

/// Runs the server until `shutdown` resolves, then drains connections. `on_ready` receives
/// the banner once the listener is bound and keys are loaded.
pub async fn serve(
    mut config: ServerConfig,
    on_ready: impl FnOnce(&Banner),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (store, master) = open_storage(
        &config.data_dir,
        config.database_url.as_deref(),
        config.master_key.as_deref(),
    )
    .await?;
    let clock = match &config.test_clock_file {
        Some(path) => {
            // Whoever can write the file can stretch every token's lifetime: say so loudly.
            tracing::warn!(
                file = %path.display(),
                "KEYWARD_TEST_CLOCK_FILE is set: the server's clock is shifted by that file; never set it outside tests"
            );
            Clock::offset_by_file(path.clone())
        }
        None => Clock::system(),
    };
    let audit = Auditor::with_clock(store.clone(), master.audit_key(), clock.clone());
    audit::seal_unkeyed(
        store.as_ref(),
        &master.audit_key(),
        &audit,
        &config.data_dir,
    )
    .await?;

    let keyring = Arc::new(Keyring::new(store.clone(), master.clone(), config.rotation));
    if let Some(pem) = &config.oidc_private_key {
        keyring.import_configured(pem, clock.now(), &audit).await?;
    }
    first_keys(&keyring, &audit, &clock).await?;

    let first = first_owner(&config, store.as_ref(), &audit, clock.now()).await?;
    reserved_env::report(store.as_ref()).await;

    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    config.resolve_public_url(bound);

    let tls_files = match &config.tls {
        TlsMode::Plain => None,
        TlsMode::Files { cert, key } => Some(tls::TlsFiles {
            ca: None,
            cert: cert.clone(),
            key: key.clone(),
        }),
        TlsMode::SelfSigned => {
            let mut hosts = Vec::new();
            if !bound.ip().is_unspecified() {
                hosts.push(bound.ip().to_string());
            }
            for url in [&config.public_url, &config.issuer].into_iter().flatten() {
                if let Some(host) = url_host(url) {
                    hosts.push(host);
                }
            }
            // Clients check the certificate against their own wall clocks, not a test's shifted one.
            Some(tls::ensure_self_signed(
                &config.data_dir,
                &hosts,
                Clock::system().now(),
            )?)
        }
    };

    // Load the certificates before announcing anything: a bad file must stop startup.
    let rustls = tls_files.as_ref().map(tls::server_config).transpose()?;

    let shown_host = if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    };
    let scheme = if tls_files.is_some() { "https" } else { "http" };
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{shown_host}"));
    let banner = Banner {
        setup_link: match &first {
            FirstOwner::SetupLink(s) => Some(format!("{url}/setup#token={s}")),
            _ => None,
        },
        bootstrap_ignored: matches!(
            first,
            FirstOwner::Exists {
                bootstrap_ignored: true
            }
        ),
        url,
        ca_file: tls_files
            .as_ref()
            .and_then(|t| t.ca.clone())
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
        bootstrapped_org: match first {
            FirstOwner::Bootstrapped(org) => Some(org),
            _ => None,
        },
        issuer: config.issuer.clone(),
        backend: store.backend(),
    };

    // The file may appear later (a simulator started after the server); a bad one stops startup.
    if let Some(path) = &config.cloud_endpoints
        && path.exists()
    {
        keyward_cloud::Clouds::from_file(path)
            .map_err(|e| ServeError::Clouds(format!("KEYWARD_CLOUD_ENDPOINTS: {e}")))?;
    }
    let cloud_endpoints = config.cloud_endpoints.clone();
    // After the public URL is known: it is in the callback and ACS URLs.
    let sso = Arc::new(people::clients::Sso::build(&config).map_err(ServeError::Sso)?);
    let config = Arc::new(config);
    let state = AppState {
        cloud_endpoints,
        store: store.clone(),
        config: config.clone(),
        keyring: keyring.clone(),
        master,
        audit: audit.clone(),
        metrics: ops::metrics_handle(),
        sso,
        clock: clock.clone(),
    };
    let rotation = tokio::spawn(rotation_loop(keyring.clone(), audit.clone(), clock.clone()));

    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining connections");
        drain.graceful_shutdown(Some(Duration::from_secs(10)));
    });

    tracing::info!(url = %banner.url, backend = banner.backend, issuer = banner.issuer.as_deref(), "keyward is serving");
    on_ready(&banner);
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = match rustls {
        // TCP_NODELAY: without it a response written in two segments waits for the client's
        // delayed ACK, adding 40 ms to a request (measured with bench/run.sh).
        Some(rustls) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(rustls);
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                .acceptor(axum_server::accept::NoDelayAcceptor);
            axum_server::from_tcp(listener)
                .map_err(ServeError::Serve)?
                .acceptor(acceptor)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .map_err(ServeError::Serve)?
                .acceptor(axum_server::accept::NoDelayAcceptor)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    rotation.abort();
    result.map_err(ServeError::Serve)
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split("://").nth(1)?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Runs the schedule until a key can sign. Another replica may hold the lease and be generating
/// the first key; then this one waits for it to appear.
async fn first_keys(keyring: &Keyring, audit: &Auditor, clock: &Clock) -> Result<(), ServeError> {
    for _ in 0..120 {
        keyring.tick(clock.now(), audit).await?;
        if keyring.signer(clock.now()).is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ServeError::Keyring(KeyringError::Key(
        keyward_jose::KeyError::Generation,
    )))
}

async fn rotation_loop(keyring: Arc<Keyring>, audit: Auditor, clock: Clock) {
    let mut interval = tokio::time::interval(keyring.tick_period());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = keyring.tick(clock.now(), &audit).await {
            tracing::error!(error = %e, "signing key rotation failed; retrying at the next tick");
        }
    }
}

/// How the installation got (or will get) its owner, on this start.
enum FirstOwner {
    /// An owner exists; `bootstrap_ignored` when `KEYWARD_BOOTSTRAP_*` were set anyway.
    Exists {
        bootstrap_ignored: bool,
    },
    Bootstrapped(keyward_core::OrgId),
    /// The one-time setup secret.
    SetupLink(String),
}

/// On a store with no people yet: the headless bootstrap, or a one-time setup link.
async fn first_owner(
    config: &ServerConfig,
    store: &dyn Store,
    audit: &Auditor,
    now: i64,
) -> Result<FirstOwner, ServeError> {
    if store.user_count().await? > 0 {
        return Ok(FirstOwner::Exists {
            bootstrap_ignored: config.bootstrap.is_some() || config.bootstrap_missing.is_some(),
        });
    }
    if let Some(missing) = &config.bootstrap_missing {
        return Err(ServeError::Bootstrap(
            config::ConfigError::BootstrapPartial {
                missing: missing.clone(),
            }
            .to_string(),
        ));
    }
    match &config.bootstrap {
        Some(b) => {
            let (org, _, _) =
                api::setup::create_owner(store, audit, &b.org, &b.admin_email, Some(&b.token), now)
                    .await
                    .map_err(|e| ServeError::Bootstrap(format!("{e:?}")))?;
            Ok(FirstOwner::Bootstrapped(org.uuid))
        }
        None => {
            let secret = api::setup::issue_setup_token(store, audit, now)
                .await
                .map_err(|e| ServeError::Bootstrap(format!("{e:?}")))?;
            Ok(FirstOwner::SetupLink(secret))
        }
    }
}
