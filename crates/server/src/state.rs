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
    pub audit: Auditor,
    pub metrics: PrometheusHandle,
}
