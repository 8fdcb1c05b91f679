//! `keyward cloudsim`: a local simulator of the GCP, Entra/Key Vault and AWS endpoints that
//! workload identity federation talks to. It validates the way the clouds do and answers with
//! their error shapes, so Keyward and the clouds' official SDKs can be tested offline.
//! All clouds share one HTTPS origin on loopback; paths below it are the real ones.

// Handlers return the cloud's error response as their `Err`; it is built once per request and
// never travels far, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod aws;
pub mod azure;
pub mod clock;
pub mod condition;
pub mod demo;
pub mod gcp;
pub mod jwt;
pub mod sim;
pub mod state;
pub mod tls;
pub mod version;
pub mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use keyward_core::endpoints::{AwsEndpoints, AzureEndpoints, EndpointsFile, GcpEndpoints};
use serde_json::json;
use thiserror::Error;

use crate::sim::{Injected, Sim};
use crate::state::{State, StateError};
use crate::wire::{Req, dropped, injected_failure, json_response};

pub use crate::sim::Fault;

const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum CloudsimError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(
        "cloudsim listens on loopback only; {0} is not a loopback address (use 127.0.0.1:<port>)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the issuer CA {path}: {detail}")]
    IssuerCa { path: PathBuf, detail: String },
    #[error("cannot build the HTTPS client that fetches issuers' keys: {0}")]
    Client(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the cloud side comes from.
pub enum World {
    /// A state file the user wrote.
    File(PathBuf),
    /// The ready-made world of `--demo` for one issuer and organization; with `automation`,
    /// its trust names that automation's finer subject instead of the organization's.
    Demo {
        issuer: String,
        org: uuid::Uuid,
        automation: Option<uuid::Uuid>,
    },
}

pub struct Options {
    pub world: World,
    pub listen: SocketAddr,
    /// Holds the simulator's CA (`cloudsim-ca.pem`, key 0600).
    pub data_dir: PathBuf,
    /// Extra CA to trust when fetching issuers' discovery and JWKS (Keyward's self-signed CA).
    pub issuer_ca: Option<PathBuf>,
}

/// What a running simulator tells its caller once it listens.
pub struct Ready {
    pub addr: SocketAddr,
    pub endpoints: EndpointsFile,
}

/// Loads the world, listens, calls `on_ready`, and serves until `shutdown` resolves.
pub async fn run(
    opts: Options,
    on_ready: impl FnOnce(&Ready) -> Result<(), CloudsimError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CloudsimError> {
    if !opts.listen.ip().is_loopback() {
        return Err(CloudsimError::NotLoopback(opts.listen));
    }
    let state = match &opts.world {
        World::File(path) => State::load(path)?,
        World::Demo {
            issuer,
            org,
            automation,
        } => State::parse(
            "--demo",
            &demo::state_toml(
                issuer,
                &org.to_string(),
                automation.map(|a| a.to_string()).as_deref(),
            ),
        )?,
    };
    let now = clock::wall();
    let ca = tls::ensure_ca(&opts.data_dir, now)?;
    let tls_config = tls::server_config(&ca, now)?;
    let http = issuer_client(opts.issuer_ca.as_deref())?;

    let listener =
        std::net::TcpListener::bind(opts.listen).map_err(|source| CloudsimError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| CloudsimError::Listen {
            addr: opts.listen,
            source,
        })?;
    let base = format!("https://{addr}");
    // Every Key Vault gets an origin of its own, as real vaults have hosts of their own.
    let mut vaults = Vec::new();
    for name in state
        .file
        .azure
        .iter()
        .flat_map(|a| a.vaults.iter().map(|v| v.name.get_ref().clone()))
    {
        let want = SocketAddr::new(opts.listen.ip(), 0);
        let vault_listener = std::net::TcpListener::bind(want)
            .map_err(|source| CloudsimError::Listen { addr: want, source })?;
        let vault_addr = vault_listener
            .local_addr()
            .map_err(|source| CloudsimError::Listen { addr: want, source })?;
        vaults.push((name, vault_listener, vault_addr));
    }
    let vault_origins = vaults
        .iter()
        .map(|(name, _, a)| (name.clone(), format!("https://{a}")))
        .collect();
    let sim = Arc::new(Sim::new(
        state,
        jwt::KeyCache::new(http),
        base.clone(),
        vault_origins,
        now.unix_timestamp(),
    ));
    let endpoints = endpoints_file(&sim, &ca.pem_path);
    on_ready(&Ready { addr, endpoints })?;

    let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls_config);
    let mut handles = Vec::new();
    for (name, vault_listener, vault_addr) in vaults {
        let app = Router::new()
            .fallback(dispatch_vault)
            .with_state((sim.clone(), Arc::<str>::from(name)));
        let handle = axum_server::Handle::new();
        handles.push(handle.clone());
        let server = serve_on(vault_listener, vault_addr, tls.clone(), handle)?;
        tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!(addr = %vault_addr, error = %e, "a Key Vault listener stopped");
            }
        });
    }
    let handle = axum_server::Handle::new();
    handles.push(handle.clone());
    tokio::spawn(async move {
        shutdown.await;
        for h in handles {
            h.graceful_shutdown(Some(Duration::from_secs(2)));
        }
    });
    let app = Router::new().fallback(dispatch).with_state(sim);
    serve_on(listener, addr, tls, handle)?
        .serve(app.into_make_service())
        .await
        .map_err(|source| CloudsimError::Listen { addr, source })
}

fn serve_on(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: axum_server::tls_rustls::RustlsConfig,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<
    axum_server::Server<
        SocketAddr,
        axum_server::tls_rustls::RustlsAcceptor<axum_server::accept::NoDelayAcceptor>,
    >,
    CloudsimError,
> {
    listener
        .set_nonblocking(true)
        .map_err(|source| CloudsimError::Listen { addr, source })?;
    // TCP_NODELAY, or two-segment answers wait 40 ms for the client's delayed ACK.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .acceptor(axum_server::accept::NoDelayAcceptor);
    Ok(axum_server::from_tcp(listener)
        .map_err(|source| CloudsimError::Listen { addr, source })?
        .acceptor(acceptor)
        .handle(handle))
}

fn issuer_client(ca: Option<&std::path::Path>) -> Result<reqwest::Client, CloudsimError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(3));
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| CloudsimError::IssuerCa {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CloudsimError::IssuerCa {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(CloudsimError::IssuerCa {
                path: path.to_owned(),
                detail: "no PEM certificate in it".into(),
            });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| CloudsimError::Client(e.to_string()))
}

/// The SPEC §10 endpoints file for this simulator: every URL is this origin, and the first
/// provider, service account, app, vault and role declared describe the setup.
pub fn endpoints_file(sim: &Sim, ca_file: &std::path::Path) -> EndpointsFile {
    let base = sim.base.clone();
    let m = sim.lock();
    let latest = |versions: &Vec<version::Version>| {
        versions.last().map(|v| v.value.clone()).unwrap_or_default()
    };
    let gcp = sim.state.file.gcp.as_ref().map(|g| GcpEndpoints {
        sts_url: Some(base.clone()),
        iam_credentials_url: Some(base.clone()),
        secret_manager_url: Some(base.clone()),
        vertex_url: Some(base.clone()),
        oauth2_url: Some(base.clone()),
        provider: g.providers.first().map(|p| {
            format!(
                "projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
                g.project_number.get_ref(),
                p.pool.get_ref(),
                p.id.get_ref()
            )
        }),
        project_number: Some(g.project_number.get_ref().clone()),
        project_id: Some(g.project_id.get_ref().clone()),
        service_account: g
            .service_accounts
            .first()
            .map(|s| s.email.get_ref().clone()),
        secrets: m
            .gcp_secrets
            .iter()
            .map(|(k, v)| (k.clone(), latest(v)))
            .collect(),
    });
    let azure = sim.state.file.azure.as_ref().map(|a| {
        let vault = a.vaults.first().map(|v| v.name.get_ref().clone());
        AzureEndpoints {
            authority_host: Some(base.clone()),
            tenant_id: a
                .apps
                .first()
                .map(|x| x.tenant.get_ref().clone())
                .or_else(|| a.tenants.first().map(|t| t.get_ref().clone())),
            client_id: a.apps.first().map(|x| x.client_id.get_ref().clone()),
            vault_url: vault.as_ref().map(|v| sim.vault_url(v)),
            vaults: a
                .vaults
                .iter()
                .map(|v| {
                    let name = v.name.get_ref().clone();
                    let url = sim.vault_url(&name);
                    (name, url)
                })
                .collect(),
            secrets: m
                .azure_secrets
                .iter()
                .filter(|((v, _), _)| Some(v) == vault.as_ref())
                .map(|((_, name), versions)| (name.clone(), latest(versions)))
                .collect::<BTreeMap<_, _>>(),
        }
    });
    let aws = sim.state.file.aws.as_ref().map(|a| AwsEndpoints {
        sts_url: Some(base.clone()),
        secrets_manager_url: Some(base.clone()),
        role_arn: a.roles.first().map(|r| {
            format!(
                "arn:aws:iam::{}:role/{}",
                a.account_id.get_ref(),
                r.name.get_ref()
            )
        }),
        region: Some(a.region.get_ref().clone()),
        secrets: m
            .aws_secrets
            .iter()
            .map(|(k, v)| (k.clone(), latest(&v.versions)))
            .collect(),
    });
    EndpointsFile {
        ca_file: Some(ca_file.display().to_string()),
        admin_token: Some(sim.admin_token.clone()),
        gcp,
        azure,
        aws,
    }
}

/// Which simulated endpoint a request is for, by method, path and headers as the real hosts
/// would see them.
fn route(req: &Req) -> Option<&'static str> {
    let p = req.path.as_str();
    if p.starts_with("/_cloudsim/") {
        return Some("admin");
    }
    if req.method == "POST" && p == "/" {
        return Some(if req.header("x-amz-target").is_some() {
            "aws.secretsmanager"
        } else {
            "aws.sts"
        });
    }
    if p == "/v1/token" {
        return Some("gcp.sts");
    }
    if p == "/token" {
        return Some("gcp.oauth2");
    }
    if p.starts_with("/v1/projects/-/serviceAccounts/") {
        return Some("gcp.iam");
    }
    if p.starts_with("/v1/projects/") {
        return Some(if p.contains("/locations/") {
            "gcp.vertex"
        } else {
            "gcp.secretmanager"
        });
    }
    if p.starts_with("/vaults/") {
        return Some("azure.keyvault");
    }
    if p.starts_with("/openai/deployments/") {
        return Some("azure.openai");
    }
    if p.starts_with("/model/") {
        return Some("aws.bedrock");
    }
    if p.ends_with("/oauth2/v2.0/token") {
        return Some("azure.token");
    }
    if p.ends_with("/v2.0/.well-known/openid-configuration") || p == "/common/discovery/instance" {
        return Some("azure.discovery");
    }
    None
}

async fn dispatch(AxumState(sim): AxumState<Arc<Sim>>, request: Request<Body>) -> Response {
    serve_request(sim, None, request).await
}

/// A vault's own origin: `/secrets/…` here is `/vaults/<name>/secrets/…` on the main origin.
async fn dispatch_vault(
    AxumState((sim, vault)): AxumState<(Arc<Sim>, Arc<str>)>,
    request: Request<Body>,
) -> Response {
    serve_request(sim, Some(&vault), request).await
}

async fn serve_request(sim: Arc<Sim>, vault: Option<&str>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "request body larger than 1 MiB"}),
            );
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let path = match vault {
        None => parts.uri.path().to_owned(),
        Some(vault) if parts.uri.path().starts_with("/secrets") => {
            format!("/vaults/{vault}{}", parts.uri.path())
        }
        Some(vault) => {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": {"code": "NotFound", "message": format!("This origin is the Key Vault '{vault}'; its API is under /secrets, not {}.", parts.uri.path())}}),
            );
        }
    };
    let req = Req {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
    };
    let Some(endpoint) = route(&req) else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "message": format!("cloudsim does not simulate {} {}", req.method, req.path)}),
        );
    };
    if endpoint == "admin" {
        if !admin::authorized(&sim, &req) {
            return admin::unauthorized();
        }
        return admin::handle(&sim, &req).await;
    }
    let (latency, injected) = sim.count_and_fault(endpoint);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match injected {
        Injected::Drop => return dropped(),
        Injected::Fail {
            status,
            retry_after,
        } => return injected_failure(endpoint, status, retry_after),
        Injected::None => {}
    }
    match endpoint {
        "gcp.sts" => gcp::sts::token(&sim, &req).await,
        "gcp.oauth2" => gcp::oauth2::token(&sim, &req).await,
        "gcp.iam" => gcp::iam_credentials::serve(&sim, &req).await,
        "gcp.secretmanager" => gcp::secret_manager::serve(&sim, &req).await,
        "gcp.vertex" => gcp::vertex::serve(&sim, &req).await,
        "azure.keyvault" => azure::key_vault::serve(&sim, &req).await,
        "azure.token" => azure::entra::token_endpoint(&sim, &req).await,
        "azure.discovery" => azure::entra::discovery(&sim, &req),
        "aws.sts" => aws::sts::serve(&sim, &req).await,
        "aws.secretsmanager" => aws::secrets_manager::serve(&sim, &req).await,
        "azure.openai" => azure::openai::serve(&sim, &req).await,
        "aws.bedrock" => aws::bedrock::serve(&sim, &req).await,
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}
