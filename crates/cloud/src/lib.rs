//! Keyward's clients for the clouds' federation and secret endpoints: GCP STS, IAM Credentials,
//! Secret Manager and Vertex; Microsoft Entra and Key Vault; AWS STS and Secrets Manager.
//!
//! Wire formats are in docs/cloud-wire.md. Every base URL comes from an
//! [`EndpointsFile`](keyward_core::endpoints::EndpointsFile) (SPEC §10), so the same code talks to
//! the real clouds or to `keyward cloudsim`. Every call takes a [`Deadline`]: transient failures
//! are retried until it passes, permanent ones come back at once as a [`CloudError`] that keeps
//! the provider's code and names the cause and the fix.

pub mod aws;
pub mod azure;
mod error;
pub mod gcp;
mod secret;
mod transport;

use std::path::Path;

use keyward_core::endpoints::EndpointsFile;

pub use error::{Cause, Cloud, CloudError, Presented, Refusal, Step};
pub use secret::Secret;
pub use transport::{Deadline, RetryPolicy};

/// The environment variable that points Keyward's cloud calls at an endpoints file (SPEC §10).
pub const ENDPOINTS_ENV: &str = "KEYWARD_CLOUD_ENDPOINTS";

/// Clients for the three clouds, sharing one connection pool and retry policy.
#[derive(Clone)]
pub struct Clouds {
    transport: transport::Transport,
    endpoints: EndpointsFile,
}

impl Clouds {
    /// Clients for `endpoints`, trusting its `ca_file` beside the system roots.
    pub fn new(endpoints: EndpointsFile) -> Result<Clouds, CloudError> {
        Clouds::with_retry(endpoints, RetryPolicy::default())
    }

    pub fn with_retry(endpoints: EndpointsFile, retry: RetryPolicy) -> Result<Clouds, CloudError> {
        let ca = match &endpoints.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                CloudError::Config(format!(
                    "cannot read ca_file {path}: {e}; is the simulator still running with the same --data-dir?"
                ))
            })?),
        };
        let transport = transport::Transport::new(ca.as_deref(), retry)?;
        Ok(Clouds {
            transport,
            endpoints,
        })
    }

    /// Clients for the real clouds.
    pub fn real() -> Result<Clouds, CloudError> {
        Clouds::new(EndpointsFile::default())
    }

    /// Reads an endpoints file (the JSON `keyward cloudsim --print-json` prints).
    pub fn from_file(path: &Path) -> Result<Clouds, CloudError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CloudError::Config(format!(
                "cannot read the endpoints file {}: {e}",
                path.display()
            ))
        })?;
        let endpoints = EndpointsFile::from_json(&text).map_err(|e| {
            CloudError::Config(format!(
                "the endpoints file {} is not valid: {e}",
                path.display()
            ))
        })?;
        Clouds::new(endpoints)
    }

    /// The endpoints file named by `KEYWARD_CLOUD_ENDPOINTS`, or the real clouds when unset.
    pub fn from_env() -> Result<Clouds, CloudError> {
        match std::env::var_os(ENDPOINTS_ENV) {
            Some(path) if !path.is_empty() => Clouds::from_file(Path::new(&path))
                .map_err(|e| CloudError::Config(format!("{ENDPOINTS_ENV}: {e}"))),
            _ => Clouds::real(),
        }
    }

    pub fn endpoints(&self) -> &EndpointsFile {
        &self.endpoints
    }

    pub fn gcp(&self) -> gcp::GcpClient {
        gcp::GcpClient::new(self.transport.clone(), &self.endpoints)
    }

    pub fn azure(&self) -> azure::AzureClient {
        azure::AzureClient::new(self.transport.clone(), &self.endpoints)
    }

    /// AWS clients for `region` (Secrets Manager is regional; STS is the global endpoint unless
    /// the endpoints file overrides it).
    pub fn aws(&self, region: &str) -> aws::AwsClient {
        aws::AwsClient::new(self.transport.clone(), &self.endpoints, region)
    }
}
