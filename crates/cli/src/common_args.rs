//! Argument groups shared by several commands (how to reach Keyward, where the data lives, how
//! to print) and their value parsers. A leaf: it imports no command.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, ValueEnum};

/// How an administrator reaches Keyward's API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Keyward's URL.
    #[arg(
        long,
        env = "KEYWARD_URL",
        default_value = "https://127.0.0.1:8443",
        global = true,
        help_heading = "Connection options"
    )]
    pub url: String,
    /// A personal access token (kwp_…). Prefer KEYWARD_TOKEN or --token-file: a flag is
    /// visible in the process list.
    #[arg(
        long,
        env = "KEYWARD_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = "Connection options"
    )]
    pub token: Option<String>,
    /// Read the personal access token from this file (`-`: from stdin).
    #[arg(
        long,
        env = "KEYWARD_TOKEN_FILE",
        global = true,
        help_heading = "Connection options"
    )]
    pub token_file: Option<PathBuf>,
    /// A CA certificate to trust for Keyward's TLS (its generated keyward-data/tls/ca.pem).
    #[arg(
        long,
        env = "KEYWARD_CA_FILE",
        global = true,
        help_heading = "Connection options"
    )]
    pub ca_file: Option<PathBuf>,
    /// The organization, when the token's owner belongs to several.
    #[arg(
        long,
        env = "KEYWARD_ORG",
        global = true,
        help_heading = "Connection options"
    )]
    pub org: Option<String>,
}

/// How the people's CLI reaches Keyward and the identity provider.
#[derive(Debug, Clone, Args)]
pub struct PeopleArgs {
    /// A CA certificate to trust besides the system's (Keyward's generated keyward-data/tls/ca.pem).
    #[arg(long, env = "KEYWARD_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

/// How the runtime reaches Keyward as an automation.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// Keyward's URL.
    #[arg(long, env = "KEYWARD_URL", default_value = "https://127.0.0.1:8443")]
    pub url: String,
    /// The automation's token (kwa_…). Prefer KEYWARD_AUTOMATION_TOKEN or --token-file: a flag
    /// is visible in the process list.
    #[arg(long, env = "KEYWARD_AUTOMATION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the automation token from this file (`-`: from stdin).
    #[arg(long, env = "KEYWARD_AUTOMATION_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A CA certificate to trust for Keyward's TLS (its generated keyward-data/tls/ca.pem).
    #[arg(long, env = "KEYWARD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// An endpoints file (`keyward cloudsim --print-json`): the SDKs go there, not to the clouds.
    #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
    pub cloud_endpoints: Option<PathBuf>,
}

/// Where the data lives; shared by every command that opens the database.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database, the master key file and generated TLS files.
    #[arg(long, env = "KEYWARD_DATA_DIR", default_value = "keyward-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user:pass@host/db); embedded SQLite when unset.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Base64 master key (32 bytes) for encryption at rest; otherwise <data-dir>/master.key.
    #[arg(long, env = "KEYWARD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

impl StorageArgs {
    /// Checks that an installation exists, for a command that works on the database directly.
    /// Unlike `serve`, it never creates one: a fresh empty database (and master key) from a
    /// wrong working directory would only give confusing answers.
    pub fn ensure_existing(&self) -> anyhow::Result<()> {
        let hint = "point at the server's data with --data-dir or KEYWARD_DATA_DIR (and KEYWARD_DATABASE_URL for PostgreSQL)";
        let dir = self.data_dir.display();
        // The master key lives in the directory unless given; a new one would decrypt nothing.
        let needs_dir = self.database_url.is_none() || self.master_key.is_none();
        if needs_dir && !self.data_dir.is_dir() {
            anyhow::bail!("no Keyward data directory at {dir}: {hint}");
        }
        if self.database_url.is_none() && !self.data_dir.join("keyward.db").is_file() {
            anyhow::bail!("no Keyward database (keyward.db) in {dir}: {hint}");
        }
        Ok(())
    }
}

/// Where gateway session recordings live: written by `keyward gateway`, read by `keyward serve`
/// (`/api/v1/sessions`), so both take the same setting.
#[derive(Debug, Clone, Args)]
pub struct RecordingsArgs {
    /// Session recordings: a directory, file:///path or s3://bucket/prefix?endpoint=…&region=…
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or `off` (default:
    /// <data-dir>/sessions).
    #[arg(long, env = "KEYWARD_RECORDINGS")]
    pub recordings: Option<String>,
}

/// The key rotation schedule. Durations take s, m, h or d suffixes (plain numbers are seconds).
#[derive(Debug, Clone, Args)]
pub struct RotationArgs {
    /// Lifetime of minted workload tokens (300-3600 s).
    #[arg(long, env = "KEYWARD_TOKEN_TTL", value_parser = parse_duration)]
    pub token_ttl: Option<i64>,
    /// How long each signing key signs before the next takes over (default 30d).
    #[arg(long, env = "KEYWARD_KEY_ROTATION_INTERVAL", value_parser = parse_duration)]
    pub key_rotation_interval: Option<i64>,
    /// How long a new key is published before it signs (default and minimum 24h).
    #[arg(long, env = "KEYWARD_KEY_PUBLISH_LEAD", value_parser = parse_duration)]
    pub key_publish_lead: Option<i64>,
    /// The longest verifiers may cache the JWKS; caps Cache-Control max-age (default 1h).
    #[arg(long, env = "KEYWARD_JWKS_CACHE_AGE", value_parser = parse_duration)]
    pub jwks_cache_age: Option<i64>,
    /// Set when the server signs with an operator key (OIDC_PRIVATE_KEY): rotation is manual.
    #[arg(long, env = "OIDC_PRIVATE_KEY", hide_env_values = true, hide = true)]
    pub oidc_private_key: Option<String>,
    /// Allow durations below the production minimums (tests and demos only).
    #[arg(long, env = "KEYWARD_ALLOW_SHORT_DURATIONS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub allow_short_durations: bool,
}

/// How a list or a show prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable lines.
    Text,
    /// The API's JSON.
    Json,
}

/// `--output` on a list: readable lines unless asked for JSON.
#[derive(Debug, Clone, Args)]
pub struct ListOutput {
    /// text (one line per item) or json (the API's JSON).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

/// `--output` on a show: the API's JSON (as show always printed) unless asked for lines.
#[derive(Debug, Clone, Args)]
pub struct ShowOutput {
    /// json (the API's JSON) or text (a `field: value` line each).
    #[arg(long, short = 'o', value_enum, default_value = "json")]
    pub output: Output,
}

/// `KEY=VALUE` as a pair.
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// `90`, `90s`, `15m`, `24h`, `30d` → seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let value: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 24h or 30d"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
