//! `keyward gateway`: the enforcement point in front of LLM APIs, MCP servers and internal APIs
//! (SPEC §9), and `keyward gateway check --config F`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand};
use keyward_gateway::credentials::CredentialSettings;
use keyward_gateway::identity::{IdentitySettings, IdpSettings};
use keyward_gateway::settings::{GatewaySettings, Ready, TlsMode};

use crate::common_args::StorageArgs;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    #[command(flatten)]
    pub run: GatewayRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Validate a route file and its policies; exits non-zero with the message a reload would log.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The route file (TOML) to validate.
    #[arg(long, env = "KEYWARD_GATEWAY_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct GatewayRunArgs {
    /// Address the gateway listens on for callers.
    #[arg(long, env = "KEYWARD_GATEWAY_LISTEN", default_value = "127.0.0.1:8444")]
    pub listen: SocketAddr,
    /// Serve plain HTTP (only behind a TLS-terminating proxy or on loopback).
    #[arg(long, env = "KEYWARD_GATEWAY_HTTP", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub http: bool,
    /// PEM certificate chain to serve instead of one from the data directory's local CA.
    #[arg(long, env = "KEYWARD_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KEYWARD_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Route file (TOML), watched and reloaded on change and on SIGHUP; without it routes come
    /// from the database (managed through /api/v1/gateway/routes).
    #[arg(long, env = "KEYWARD_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: `text` for people, `json` (one object a line) for log pipelines.
    #[arg(long, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = super::serve::LogFormat::Text)]
    pub log_format: super::serve::LogFormat,
    /// Address of the admin listener (/metrics and /healthz, plain HTTP).
    #[arg(
        long,
        env = "KEYWARD_GATEWAY_ADMIN_LISTEN",
        default_value = "127.0.0.1:9444"
    )]
    pub admin_listen: SocketAddr,
    /// Threads serving requests, each running its own event loop (default: one per core).
    #[arg(long, env = "KEYWARD_GATEWAY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Keyward's URL: workload tokens are checked against its JWKS; credentials are had through it.
    #[arg(long, env = "KEYWARD_PLATFORM_URL")]
    pub platform_url: Option<url::Url>,
    /// A CA certificate Keyward's TLS chains to (default: the data directory's tls/ca.pem).
    #[arg(long, env = "KEYWARD_PLATFORM_CA")]
    pub platform_ca: Option<PathBuf>,
    /// The audience (`aud`) workload tokens must carry to be accepted here.
    #[arg(
        long,
        env = "KEYWARD_GATEWAY_AUDIENCE",
        default_value = "keyward-gateway"
    )]
    pub audience: String,
    /// Issuer of the organization IdP's access tokens (accepting them needs --idp-audience).
    #[arg(long, env = "KEYWARD_GATEWAY_IDP_ISSUER", requires = "idp_audience")]
    pub idp_issuer: Option<String>,
    /// The audience the IdP's access tokens must carry.
    #[arg(long, env = "KEYWARD_GATEWAY_IDP_AUDIENCE", requires = "idp_issuer")]
    pub idp_audience: Option<String>,
    /// The IdP's JWKS URL (default: from the issuer's discovery document).
    #[arg(long, env = "KEYWARD_GATEWAY_IDP_JWKS_URL")]
    pub idp_jwks_url: Option<url::Url>,
    /// The claim holding a person's groups.
    #[arg(
        long,
        env = "KEYWARD_GATEWAY_IDP_GROUPS_CLAIM",
        default_value = "groups"
    )]
    pub idp_groups_claim: String,
    /// A CA certificate the IdP's TLS chains to.
    #[arg(long, env = "KEYWARD_GATEWAY_IDP_CA")]
    pub idp_ca: Option<PathBuf>,
    /// An endpoints file (`keyward cloudsim --print-json`): cloud token calls go there.
    #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
    pub cloud_endpoints: Option<PathBuf>,
    #[command(flatten)]
    pub recordings: crate::common_args::RecordingsArgs,
    /// A file holding seconds to add to the gateway's clock; end-to-end tests move time with it.
    #[arg(long, env = "KEYWARD_TEST_CLOCK_FILE", hide = true)]
    pub test_clock_file: Option<PathBuf>,
}

pub async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(GatewayCommand::Check(check)) => Ok(check_file(&check)),
        None => serve(args.run).await,
    }
}

fn check_file(args: &CheckArgs) -> ExitCode {
    match keyward_gateway::check(&args.config) {
        Ok(routes) => {
            println!("ok: {routes} routes");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn settings(args: GatewayRunArgs) -> GatewaySettings {
    let tls = match (args.http, args.tls_cert, args.tls_key) {
        (true, _, _) => TlsMode::Plain,
        (false, Some(cert), Some(key)) => TlsMode::Files { cert, key },
        _ => TlsMode::SelfSigned,
    };
    // The platform's CA defaults to the one in the shared data directory, when there is one.
    let platform_ca = args.platform_ca.or_else(|| {
        let ca = args.storage.data_dir.join("tls").join("ca.pem");
        ca.is_file().then_some(ca)
    });
    let idp = match (args.idp_issuer, args.idp_audience) {
        (Some(issuer), Some(audience)) => Some(IdpSettings {
            issuer,
            audience,
            jwks_url: args.idp_jwks_url,
            groups_claim: args.idp_groups_claim,
            ca_file: args.idp_ca,
        }),
        _ => None,
    };
    GatewaySettings {
        listen: args.listen,
        admin_listen: args.admin_listen,
        workers: args.workers.map(usize::from),
        tls,
        data_dir: args.storage.data_dir,
        database_url: args.storage.database_url,
        master_key: args.storage.master_key,
        recordings: args.recordings.recordings,
        config: args.config,
        identity: IdentitySettings {
            platform_url: args.platform_url.clone(),
            platform_ca: platform_ca.clone(),
            workload_audience: args.audience,
            idp,
        },
        credentials: CredentialSettings {
            platform_url: args.platform_url,
            platform_ca,
            cloud_endpoints: args.cloud_endpoints,
        },
        test_clock_file: args.test_clock_file,
    }
}

async fn serve(args: GatewayRunArgs) -> anyhow::Result<ExitCode> {
    super::serve::init_logging(args.log_format);
    keyward_gateway::run(settings(args), print_ready, super::serve::shutdown_signal())
        .await
        .context("keyward gateway failed")?;
    Ok(ExitCode::SUCCESS)
}

/// The ready line on stdout (scripts and tests parse it), then the CA to trust.
fn print_ready(ready: &Ready) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", ready.line());
    if let Some(ca) = &ready.ca_file {
        let _ = writeln!(out, "TLS CA certificate: {}", ca.display());
    }
    let _ = out.flush();
}
