//! What every handler shares.

use std::sync::Arc;

use keyward_store::Store;
use keyward_store::crypto::MasterKey;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::audit::Auditor;
use crate::config::ServerConfig;
use crate::keyring::Keyring;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    pub keyring: Arc<Keyring>,
    /// Seals static credentials and secret values at rest.
    pub master: Arc<MasterKey>,
    /// `KEYWARD_CLOUD_ENDPOINTS`, read at each use: the simulator may start after the server.
    pub cloud_endpoints: Option<std::path::PathBuf>,
    pub audit: Auditor,
    pub metrics: PrometheusHandle,
    /// Browser sign-in and bearer tokens of the external identity provider (OIDC, SAML).
    pub sso: Arc<crate::people::clients::Sso>,
    /// The server's time; read it once per request (`Caller::now`) and pass `now` on.
    pub clock: crate::clock::Clock,
}

impl AppState {
    /// Clients for the real clouds, or for the endpoints file `KEYWARD_CLOUD_ENDPOINTS` names.
    pub fn clouds(&self) -> Result<keyward_cloud::Clouds, crate::error::ApiError> {
        match &self.cloud_endpoints {
            None => keyward_cloud::Clouds::real(),
            Some(path) => keyward_cloud::Clouds::from_file(path),
        }
        .map_err(|e| crate::error::ApiError::Unavailable {
            code: "cloud_endpoints",
            message: format!("KEYWARD_CLOUD_ENDPOINTS: {e}"),
        })
    }
}
