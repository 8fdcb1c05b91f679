//! The gateway's settings, validated from the command line (`keyward gateway`; every flag has a
//! `KEYWARD_GATEWAY_*` environment twin, see docs/gateway.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::credentials::CredentialSettings;
use crate::identity::IdentitySettings;

/// How the data-path listener speaks.
#[derive(Clone, Debug)]
pub enum TlsMode {
    /// Plain HTTP (`--http`; only behind a TLS-terminating proxy or on loopback).
    Plain,
    /// A certificate signed by the installation's local CA (`<data-dir>/tls/gateway.pem`).
    SelfSigned,
    /// The operator's PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Threads serving the data path, each with its own runtime (`None`: one per core).
    pub workers: Option<usize>,
    pub tls: TlsMode,
    /// The platform's data directory (SQLite, master key, local CA).
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub master_key: Option<String>,
    /// Where session recordings go (`--recordings`, `KEYWARD_RECORDINGS`): unset is
    /// `<data-dir>/sessions`, `off` records nothing, else a directory or `s3://` URL.
    pub recordings: Option<String>,
    /// The route file; `None`: routes come from the database.
    pub config: Option<PathBuf>,
    pub identity: IdentitySettings,
    pub credentials: CredentialSettings,
    /// `KEYWARD_TEST_CLOCK_FILE`: seconds added to the clock (end-to-end tests only).
    pub test_clock_file: Option<PathBuf>,
}

/// What a started gateway tells its operator (the ready line).
#[derive(Clone, Debug)]
pub struct Ready {
    pub url: String,
    pub admin_url: String,
    pub ca_file: Option<PathBuf>,
    pub routes: usize,
}

impl Ready {
    /// The one line on stdout that scripts and tests parse.
    pub fn line(&self) -> String {
        format!(
            "keyward gateway listening on {} (admin {})",
            self.url, self.admin_url
        )
    }
}
