//! What every handler shares.

use std::sync::Arc;

use keyward_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::audit::Auditor;
use crate::config::ServerConfig;
use crate::keyring::Keyring;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    pub keyring: Arc<Keyring>,
    pub audit: Auditor,
    pub metrics: PrometheusHandle,
}
