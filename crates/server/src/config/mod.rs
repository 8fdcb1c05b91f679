//! Validated server settings. The CLI parses flags and environment variables into
//! [`RawServerConfig`]; [`RawServerConfig::validate`] turns that into a [`ServerConfig`] or an
//! error that names the setting at fault.

pub mod metrics_access;
pub mod provider;
pub mod sso;

use std::net::SocketAddr;
use std::path::PathBuf;

use keyward_jose::RotationPolicy;
use thiserror::Error;

use provider::{AuthProvider, ProviderError};

/// Shortest and longest workload token lifetimes (SPEC §3).
pub const TOKEN_TTL_RANGE: std::ops::RangeInclusive<i64> = 300..=3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// A CA and server certificate generated in the data directory.
    SelfSigned,
    /// Operator-supplied PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP behind a TLS-terminating proxy.
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    pub org: String,
    pub admin_email: String,
    pub token: String,
}

/// Settings as given, before validation. Every field maps to a flag and an environment variable.
#[derive(Clone, Debug, Default)]
pub struct RawServerConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub http: bool,
    pub oidc_issuer: Option<String>,
    pub oidc_private_key: Option<String>,
    pub master_key: Option<String>,
    pub token_ttl: Option<i64>,
    pub key_rotation_interval: Option<i64>,
    pub key_publish_lead: Option<i64>,
    pub jwks_cache_age: Option<i64>,
    pub allow_short_durations: bool,
    pub bootstrap_org: Option<String>,
    pub bootstrap_admin_email: Option<String>,
    pub bootstrap_token: Option<String>,
    /// `KEYWARD_CLOUD_ENDPOINTS`: where the server's own cloud calls go (Test Connection, redeploy).
    pub cloud_endpoints: Option<PathBuf>,
    /// `AUTH_PROVIDER` and the provider variables (names in
    /// [`provider::ENV_VARS`]) as found in the environment.
    pub auth_env: std::collections::BTreeMap<String, String>,
    /// `KEYWARD_DEVICE_CODE_TTL`: how long a device authorization waits for approval (seconds).
    pub device_code_ttl: Option<i64>,
    /// `KEYWARD_DEVICE_INTERVAL`: the polling interval the device flow asks for (seconds).
    pub device_interval: Option<i64>,
    /// `KEYWARD_TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` names the client (CIDRs or
    /// addresses, comma-separated; default none).
    pub trusted_proxies: Option<String>,
    /// `KEYWARD_LOGIN_BACKOFF_MAX`: the longest wait failed sign-ins impose (seconds).
    pub login_backoff_max: Option<i64>,
    /// `KEYWARD_MAX_PAT_TTL`: the longest lifetime a personal access token may be given.
    pub max_pat_ttl: Option<i64>,
    /// `KEYWARD_TEST_CLOCK_FILE`: a file holding seconds to add to the wall clock (tests only).
    pub test_clock_file: Option<PathBuf>,
    /// `KEYWARD_RECORDINGS`: where the gateway's session recordings are (a directory,
    /// `file:///…` or `s3://…`; `off`; unset is `<data-dir>/sessions`). Shared with
    /// `keyward gateway`, which writes them; the server reads them.
    pub recordings: Option<String>,
    /// `KEYWARD_METRICS_ACCESS`: who may read `/metrics` (`loopback`, `token`, `public`).
    pub metrics_access: Option<String>,
    /// `KEYWARD_METRICS_TOKEN`: the bearer `/metrics` asks for under `token` access.
    pub metrics_token: Option<String>,
}

/// The CLI device flow of the `local` provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSettings {
    pub code_ttl: i64,
    pub interval: i64,
}

#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// Where people reach this server; `None` when it cannot be known (listening on all
    /// interfaces with no `KEYWARD_PUBLIC_URL`).
    pub public_url: Option<String>,
    pub tls: TlsMode,
    /// `OIDC_ISSUER`, or the public URL.
    pub issuer: Option<String>,
    pub oidc_private_key: Option<String>,
    pub master_key: Option<String>,
    pub token_ttl: i64,
    pub rotation: RotationPolicy,
    pub bootstrap: Option<Bootstrap>,
    /// Some but not all `KEYWARD_BOOTSTRAP_*` are set: the missing ones. Only an error on a store
    /// without an owner (where a bootstrap would run); a leftover variable after setup is ignored.
    pub bootstrap_missing: Option<String>,
    pub max_body_bytes: usize,
    pub cloud_endpoints: Option<PathBuf>,
    /// Who signs people in (`AUTH_PROVIDER`).
    pub auth: AuthProvider,
    pub device: DeviceSettings,
    /// `KEYWARD_SSO_*` and `SAML_*`.
    pub sso: sso::SsoSettings,
    /// `KEYWARD_TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<crate::proxies::Cidr>,
    /// `KEYWARD_LOGIN_BACKOFF_MAX`: the cap of the exponential backoff after failed sign-ins.
    pub login_backoff_max: i64,
    /// `KEYWARD_MAX_PAT_TTL` (seconds): personal access tokens must expire within it.
    pub max_pat_ttl: i64,
    /// `KEYWARD_TEST_CLOCK_FILE`: end-to-end tests move the server's time through this file.
    pub test_clock_file: Option<PathBuf>,
    /// `KEYWARD_RECORDINGS`: the gateway's session recordings; `None` when recording is off.
    /// One organization's sessions are `within(<org id>)`.
    pub recordings: Option<keyward_recording::Storage>,
    /// `KEYWARD_METRICS_ACCESS` with its token.
    pub metrics_access: metrics_access::MetricsAccess,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets (private key, master key, bootstrap token, database password) stay out.
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("tls", &self.tls)
            .field("issuer", &self.issuer)
            .field("token_ttl", &self.token_ttl)
            .field("rotation", &self.rotation)
            .field("auth", &self.auth.name())
            .field("device", &self.device)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("login_backoff_max", &self.login_backoff_max)
            .field("max_pat_ttl", &self.max_pat_ttl)
            .field(
                "recordings",
                &self
                    .recordings
                    .as_ref()
                    .map(keyward_recording::Storage::describe),
            )
            .field("metrics_access", &self.metrics_access)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--listen / KEYWARD_LISTEN: {value:?} is not an address like 127.0.0.1:8443")]
    Listen { value: String },
    #[error("--tls-cert and --tls-key must be given together")]
    TlsPair,
    #[error("--http cannot be combined with --tls-cert/--tls-key")]
    HttpWithTls,
    #[error("{setting}: {reason}")]
    Url {
        setting: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Sso(String),
    #[error("{setting}: {value} is outside the allowed range {min}..={max} seconds")]
    Range {
        setting: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error(
        "headless bootstrap needs KEYWARD_BOOTSTRAP_ORG, KEYWARD_BOOTSTRAP_ADMIN_EMAIL and KEYWARD_BOOTSTRAP_TOKEN together; missing: {missing}"
    )]
    BootstrapPartial { missing: String },
    #[error(
        "KEYWARD_BOOTSTRAP_TOKEN must be at least 32 characters of letters, digits, '-', '_' or '.'"
    )]
    BootstrapToken,
    #[error("KEYWARD_BOOTSTRAP_ADMIN_EMAIL: {value:?} is not an email address")]
    BootstrapEmail { value: String },
    #[error("KEYWARD_BOOTSTRAP_ORG: {0}")]
    BootstrapOrg(String),
    #[error("--trusted-proxies / KEYWARD_TRUSTED_PROXIES: {0}")]
    TrustedProxies(String),
    #[error("--recordings / KEYWARD_RECORDINGS: {0}")]
    Recordings(String),
    #[error("{0}")]
    MetricsAccess(String),
    #[error(transparent)]
    Auth(#[from] ProviderError),
}

const DAY: i64 = 24 * 3600;
/// Personal access tokens live at most 90 days unless the operator says otherwise.
pub const DEFAULT_MAX_PAT_TTL: i64 = 90 * DAY;

impl RawServerConfig {
    pub fn validate(self) -> Result<ServerConfig, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8443".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Listen {
            value: listen_text.clone(),
        })?;

        let tls = match (self.tls_cert, self.tls_key, self.http) {
            (Some(_), Some(_), true) | (Some(_), None, true) | (None, Some(_), true) => {
                return Err(ConfigError::HttpWithTls);
            }
            (None, None, true) => TlsMode::Plain,
            (Some(cert), Some(key), false) => TlsMode::Files { cert, key },
            (None, None, false) => TlsMode::SelfSigned,
            _ => return Err(ConfigError::TlsPair),
        };

        let public_url = self
            .public_url
            .map(|u| normalize_url("--public-url / KEYWARD_PUBLIC_URL", &u))
            .transpose()?;
        let issuer = self
            .oidc_issuer
            .map(|u| normalize_url("OIDC_ISSUER", &u))
            .transpose()?;

        let short = self.allow_short_durations;
        let ttl_range = if short { 1..=3600 } else { TOKEN_TTL_RANGE };
        let token_ttl = check_range(
            "KEYWARD_TOKEN_TTL",
            self.token_ttl.unwrap_or(3600),
            ttl_range,
        )?;
        let lead_min = if short { 1 } else { DAY };
        let rotation = RotationPolicy {
            interval: check_range(
                "KEYWARD_KEY_ROTATION_INTERVAL",
                self.key_rotation_interval.unwrap_or(30 * DAY),
                if short {
                    1..=365 * DAY
                } else {
                    DAY..=365 * DAY
                },
            )?,
            publish_lead: check_range(
                "KEYWARD_KEY_PUBLISH_LEAD",
                self.key_publish_lead.unwrap_or(DAY),
                lead_min..=30 * DAY,
            )?,
            max_token_ttl: token_ttl,
            jwks_cache_age: check_range(
                "KEYWARD_JWKS_CACHE_AGE",
                self.jwks_cache_age.unwrap_or(3600),
                if short { 0..=3600 } else { 60..=3600 },
            )?,
            automatic: self.oidc_private_key.is_none(),
        };

        let mut bootstrap_missing = None;
        let bootstrap = match (
            self.bootstrap_org,
            self.bootstrap_admin_email,
            self.bootstrap_token,
        ) {
            (None, None, None) => None,
            (Some(org), Some(email), Some(token)) => {
                keyward_core::names::validate_display_name("name", &org)
                    .map_err(|e| ConfigError::BootstrapOrg(e.to_string()))?;
                if !looks_like_email(&email) {
                    return Err(ConfigError::BootstrapEmail { value: email });
                }
                let token_ok = token.len() >= 32
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !token_ok {
                    return Err(ConfigError::BootstrapToken);
                }
                Some(Bootstrap {
                    org,
                    admin_email: email,
                    token,
                })
            }
            (org, email, token) => {
                let missing: Vec<&str> = [
                    (org.is_none(), "KEYWARD_BOOTSTRAP_ORG"),
                    (email.is_none(), "KEYWARD_BOOTSTRAP_ADMIN_EMAIL"),
                    (token.is_none(), "KEYWARD_BOOTSTRAP_TOKEN"),
                ]
                .into_iter()
                .filter_map(|(absent, name)| absent.then_some(name))
                .collect();
                bootstrap_missing = Some(missing.join(", "));
                None
            }
        };

        let auth = AuthProvider::from_env(&self.auth_env)?;
        let sso = sso::SsoSettings::from_env(&self.auth_env, &auth).map_err(ConfigError::Sso)?;
        let device = DeviceSettings {
            code_ttl: check_range(
                "KEYWARD_DEVICE_CODE_TTL",
                self.device_code_ttl.unwrap_or(600),
                if short { 1..=3600 } else { 60..=3600 },
            )?,
            interval: check_range(
                "KEYWARD_DEVICE_INTERVAL",
                self.device_interval.unwrap_or(5),
                if short { 1..=60 } else { 5..=60 },
            )?,
        };

        let trusted_proxies =
            crate::proxies::parse_list(self.trusted_proxies.as_deref().unwrap_or(""))
                .map_err(ConfigError::TrustedProxies)?;
        let login_backoff_max = check_range(
            "KEYWARD_LOGIN_BACKOFF_MAX",
            self.login_backoff_max.unwrap_or(300),
            if short { 1..=3600 } else { 10..=3600 },
        )?;
        let max_pat_ttl = check_range(
            "KEYWARD_MAX_PAT_TTL",
            self.max_pat_ttl.unwrap_or(DEFAULT_MAX_PAT_TTL),
            if short {
                1..=10 * 365 * DAY
            } else {
                DAY..=10 * 365 * DAY
            },
        )?;

        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("keyward-data"));
        // Opening parses the URL (and, for S3, takes the AWS_* credentials); no I/O happens yet.
        let recordings =
            keyward_recording::Storage::from_setting(self.recordings.as_deref(), &data_dir)
                .map_err(|e| ConfigError::Recordings(e.to_string()))?;
        let metrics_access = metrics_access::MetricsAccess::from_settings(
            self.metrics_access.as_deref(),
            self.metrics_token.as_deref(),
        )
        .map_err(ConfigError::MetricsAccess)?;
        Ok(ServerConfig {
            listen,
            data_dir,
            database_url: self.database_url.filter(|u| !u.is_empty()),
            public_url,
            tls,
            issuer,
            oidc_private_key: self.oidc_private_key.filter(|k| !k.trim().is_empty()),
            master_key: self.master_key.filter(|k| !k.is_empty()),
            token_ttl,
            rotation,
            bootstrap,
            bootstrap_missing,
            max_body_bytes: 64 * 1024,
            cloud_endpoints: self.cloud_endpoints,
            auth,
            device,
            sso,
            trusted_proxies,
            login_backoff_max,
            max_pat_ttl,
            test_clock_file: self.test_clock_file,
            recordings,
            metrics_access,
        })
    }
}

impl ServerConfig {
    /// Settings for in-process tests: plain HTTP, fast rotation, a temporary data directory.
    pub fn for_test(data_dir: PathBuf) -> Self {
        RawServerConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir),
            http: true,
            public_url: Some("http://127.0.0.1:1".into()),
            allow_short_durations: true,
            ..Default::default()
        }
        .validate()
        .unwrap_or_else(|e| panic!("test config is valid: {e}"))
    }

    /// The public URL once the real listening address is known (port 0 is resolved by then).
    pub fn resolve_public_url(&mut self, bound: SocketAddr) {
        if self.public_url.is_none() && !bound.ip().is_unspecified() {
            let scheme = if self.tls == TlsMode::Plain {
                "http"
            } else {
                "https"
            };
            self.public_url = Some(format!("{scheme}://{bound}"));
        }
        if self.issuer.is_none() {
            self.issuer = self.public_url.clone();
        }
    }
}

fn check_range(
    setting: &'static str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Range {
            setting,
            value,
            min: *range.start(),
            max: *range.end(),
        })
    }
}

fn looks_like_email(value: &str) -> bool {
    let mut parts = value.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
    )
}

/// Issuer and public URLs: `https://host[:port][/path]`, no query or fragment, no trailing slash.
/// Plain `http` is accepted only for loopback hosts (local tests behind no proxy); the clouds
/// fetch discovery over HTTPS only.
fn normalize_url(setting: &'static str, value: &str) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::Url {
        setting,
        reason: format!("{value:?} {reason}"),
    };
    let value = value.trim().trim_end_matches('/');
    let rest = if let Some(rest) = value.strip_prefix("https://") {
        rest
    } else if let Some(rest) = value.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if !matches!(host, "127.0.0.1" | "localhost" | "[") && !rest.starts_with("[::1]") {
            return Err(bad(
                "must use https:// (plain http is only allowed for loopback addresses)",
            ));
        }
        rest
    } else {
        return Err(bad("must start with https://"));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        return Err(bad(
            "must be a URL like https://keyward.example.com, without query or fragment",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_https_on_8443_with_production_rotation() {
        let cfg = RawServerConfig::default().validate().unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(cfg.tls, TlsMode::SelfSigned);
        assert_eq!(cfg.token_ttl, 3600);
        assert_eq!(cfg.rotation, RotationPolicy::production());
    }

    #[test]
    fn bad_settings_name_themselves() {
        let err = RawServerConfig {
            oidc_issuer: Some("ftp://x".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().starts_with("OIDC_ISSUER"));
        let err = RawServerConfig {
            token_ttl: Some(10),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("KEYWARD_TOKEN_TTL"));
        // A partial set is refused when the bootstrap would run (no owner yet), not here.
        let partial = RawServerConfig {
            bootstrap_org: Some("Acme".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(partial.bootstrap.is_none());
        let err = ConfigError::BootstrapPartial {
            missing: partial.bootstrap_missing.unwrap(),
        };
        assert_eq!(
            err.to_string(),
            "headless bootstrap needs KEYWARD_BOOTSTRAP_ORG, KEYWARD_BOOTSTRAP_ADMIN_EMAIL and KEYWARD_BOOTSTRAP_TOKEN together; missing: KEYWARD_BOOTSTRAP_ADMIN_EMAIL, KEYWARD_BOOTSTRAP_TOKEN"
        );
        assert_eq!(
            RawServerConfig {
                tls_cert: Some("c".into()),
                ..Default::default()
            }
            .validate()
            .unwrap_err(),
            ConfigError::TlsPair
        );
    }

    #[test]
    fn trusted_proxies_default_to_none_and_bad_entries_name_the_setting() {
        let cfg = RawServerConfig::default().validate().unwrap();
        assert!(cfg.trusted_proxies.is_empty());
        assert_eq!(cfg.login_backoff_max, 300);
        let cfg = RawServerConfig {
            trusted_proxies: Some("10.0.0.0/8, 192.0.2.1".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(cfg.trusted_proxies.len(), 2);
        let err = RawServerConfig {
            trusted_proxies: Some("10.0.0.0/8,proxy.example".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--trusted-proxies / KEYWARD_TRUSTED_PROXIES: \"proxy.example\""),
            "{err}"
        );
    }

    #[test]
    fn issuer_urls_are_normalized() {
        assert_eq!(
            normalize_url("OIDC_ISSUER", "https://kw.example.com/").unwrap(),
            "https://kw.example.com"
        );
        assert!(normalize_url("OIDC_ISSUER", "http://kw.example.com").is_err());
        assert!(normalize_url("OIDC_ISSUER", "http://127.0.0.1:8080").is_ok());
        assert!(normalize_url("OIDC_ISSUER", "https://kw.example.com/?a=b").is_err());
    }

    #[test]
    fn an_unspecified_listen_address_leaves_the_issuer_undetermined() {
        let mut cfg = RawServerConfig {
            listen: Some("0.0.0.0:8443".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        cfg.resolve_public_url("0.0.0.0:8443".parse().unwrap());
        assert_eq!(cfg.issuer, None);
        let mut cfg = RawServerConfig::default().validate().unwrap();
        cfg.resolve_public_url("127.0.0.1:8443".parse().unwrap());
        assert_eq!(cfg.issuer.as_deref(), Some("https://127.0.0.1:8443"));
    }
}
