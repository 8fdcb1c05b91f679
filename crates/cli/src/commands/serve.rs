//! `keyward serve`: the platform itself, configured from flags and the environment.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use keyward_server::Banner;
use keyward_server::config::RawServerConfig;

use crate::common_args::{RecordingsArgs, RotationArgs, StorageArgs, parse_duration};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: String,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub recordings: RecordingsArgs,
    /// The URL people and clouds reach this server at (default: https://<listen address>).
    #[arg(long, env = "KEYWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, env = "KEYWARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KEYWARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy).
    #[arg(long, env = "KEYWARD_HTTP", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub http: bool,
    /// Issuer URL in workload tokens and discovery (default: the public URL).
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Headless first start: the organization to create.
    #[arg(long, env = "KEYWARD_BOOTSTRAP_ORG")]
    pub bootstrap_org: Option<String>,
    /// Headless first start: the owner's email.
    #[arg(long, env = "KEYWARD_BOOTSTRAP_ADMIN_EMAIL")]
    pub bootstrap_admin_email: Option<String>,
    /// Headless first start: the owner's personal access token (>= 32 characters), stored hashed.
    #[arg(long, env = "KEYWARD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// An endpoints file (`keyward cloudsim --print-json`): the server's cloud calls go there.
    #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
    pub cloud_endpoints: Option<PathBuf>,
    /// How long a CLI device login waits for approval (default 10m; AUTH_PROVIDER=local).
    #[arg(long, env = "KEYWARD_DEVICE_CODE_TTL", value_parser = parse_duration)]
    pub device_code_ttl: Option<i64>,
    /// The polling interval the device flow asks CLIs for (default 5s).
    #[arg(long, env = "KEYWARD_DEVICE_INTERVAL", value_parser = parse_duration)]
    pub device_interval: Option<i64>,
    /// Proxies whose X-Forwarded-For names the client, as IPs or CIDRs, comma-separated
    /// (default: none, the connecting address is the client).
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// The longest wait repeated failed sign-ins impose on an account or address (default 5m).
    #[arg(long, env = "KEYWARD_LOGIN_BACKOFF_MAX", value_parser = parse_duration)]
    pub login_backoff_max: Option<i64>,
    /// The longest lifetime a personal access token may be given (default 90d).
    #[arg(long, env = "KEYWARD_MAX_PAT_TTL", value_parser = parse_duration)]
    pub max_pat_ttl: Option<i64>,
    /// A file holding seconds to add to the server's clock; end-to-end tests move time with it.
    #[arg(long, env = "KEYWARD_TEST_CLOCK_FILE", hide = true)]
    pub test_clock_file: Option<std::path::PathBuf>,
    /// Log lines on stderr: `text` for people, `json` (one object a line) for log pipelines.
    #[arg(long, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Who may read /metrics: `loopback` (clients on this host, after --trusted-proxies),
    /// `token` (the bearer KEYWARD_METRICS_TOKEN) or `public` (default loopback).
    #[arg(long, env = "KEYWARD_METRICS_ACCESS")]
    pub metrics_access: Option<String>,
    /// The bearer /metrics requires with --metrics-access token (at least 24 characters).
    #[arg(long, env = "KEYWARD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// The format of log lines on stderr (`--log-format`, `KEYWARD_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub(crate) fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    // Logs on stderr; stdout carries only the banner, so scripts can read it.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Each request's lines carry its span (request_id, method, route): nested under "span" in
    // JSON, as a `request{…}:` prefix in text.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

pub(crate) fn raw_rotation(r: &RotationArgs, raw: &mut RawServerConfig) {
    raw.token_ttl = r.token_ttl;
    raw.key_rotation_interval = r.key_rotation_interval;
    raw.key_publish_lead = r.key_publish_lead;
    raw.jwks_cache_age = r.jwks_cache_age;
    raw.allow_short_durations = r.allow_short_durations;
    raw.oidc_private_key = r.oidc_private_key.clone();
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let mut raw = RawServerConfig {
        listen: Some(args.listen),
        data_dir: Some(args.storage.data_dir),
        database_url: args.storage.database_url,
        master_key: args.storage.master_key,
        public_url: args.public_url,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        http: args.http,
        oidc_issuer: args.oidc_issuer,
        bootstrap_org: args.bootstrap_org,
        bootstrap_admin_email: args.bootstrap_admin_email,
        bootstrap_token: args.bootstrap_token,
        cloud_endpoints: args.cloud_endpoints,
        // Only the provider variables the SSO documentation names and Keyward's own SSO and SAML
        // settings, nothing else of the environment.
        auth_env: keyward_server::config::provider::ENV_VARS
            .iter()
            .chain(keyward_server::config::sso::ENV_VARS)
            .filter_map(|var| std::env::var(var).ok().map(|v| ((*var).to_owned(), v)))
            .collect(),
        device_code_ttl: args.device_code_ttl,
        device_interval: args.device_interval,
        trusted_proxies: args.trusted_proxies,
        login_backoff_max: args.login_backoff_max,
        max_pat_ttl: args.max_pat_ttl,
        test_clock_file: args.test_clock_file,
        recordings: args.recordings.recordings,
        metrics_access: args.metrics_access,
        metrics_token: args.metrics_token,
        ..Default::default()
    };
    raw_rotation(&args.rotation, &mut raw);
    let config = raw.validate().context("invalid server settings")?;
    keyward_server::serve(config, print_banner, shutdown_signal())
        .await
        .context("keyward serve failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Printed to the console, never to the log: the setup link is a secret.
fn print_banner(banner: &Banner) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Keyward is listening on {}", banner.url);
    let _ = writeln!(out, "Database: {}", banner.backend);
    match &banner.issuer {
        Some(issuer) => {
            let _ = writeln!(out, "Workload OIDC issuer: {issuer}");
        }
        None => {
            let _ = writeln!(
                out,
                "Workload OIDC issuer: NOT SET (listening on all interfaces: set OIDC_ISSUER)"
            );
        }
    }
    if let Some(ca) = &banner.ca_file {
        let _ = writeln!(out, "TLS CA certificate: {}", ca.display());
        let _ = writeln!(
            out,
            "  try: curl --cacert {} {}/healthz",
            ca.display(),
            banner.url
        );
    }
    if let Some(link) = &banner.setup_link {
        let _ = writeln!(out, "First login (one-time setup link, valid 24 h): {link}");
    }
    if let Some(org) = &banner.bootstrapped_org {
        let _ = writeln!(out, "Bootstrapped organization: {org}");
        let _ = writeln!(
            out,
            "First login: {} (use the KEYWARD_BOOTSTRAP_TOKEN as a bearer token)",
            banner.url
        );
    }
    if banner.bootstrap_ignored {
        let _ = writeln!(
            out,
            "KEYWARD_BOOTSTRAP_* ignored: this installation already has an owner (bootstrap runs only on an empty database). Sign in with the owner's existing token, or start with a fresh --data-dir to bootstrap anew."
        );
    }
    // The last banner line: scripts wait for it.
    let _ = writeln!(out, "Ready.");
    let _ = out.flush();
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
