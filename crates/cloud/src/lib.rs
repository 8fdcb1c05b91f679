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
pub mod metrics;
mod read;
mod secret;
mod transport;

use std::path::Path;

use keyward_core::endpoints::EndpointsFile;

pub use error::{Cause, Cloud, CloudError, Presented, Refusal, Step};
pub use read::{Access, SecretLocation, read_secret, resolve_secret};
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
        Clouds::from_env_value(std::env::var_os(ENDPOINTS_ENV).as_deref())
    }

    fn from_env_value(value: Option<&std::ffi::OsStr>) -> Result<Clouds, CloudError> {
        match value {
            Some(path) if !path.is_empty() => {
                Clouds::from_file(Path::new(path)).map_err(|e| match e {
                    CloudError::Config(m) => CloudError::Config(format!("{ENDPOINTS_ENV}: {m}")),
                    other => other,
                })
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoints_variable_points_every_client_at_its_file_and_unset_means_the_real_clouds() {
        let dir = std::env::temp_dir().join(format!("keyward-cloud-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("endpoints.json");
        std::fs::write(
            &path,
            r#"{"gcp": {"sts_url": "https://127.0.0.1:9443"}, "aws": {"secrets_manager_url": "https://127.0.0.1:9444/"}}"#,
        )
        .unwrap();
        let clouds = Clouds::from_env_value(Some(path.as_os_str())).unwrap();
        assert_eq!(clouds.endpoints().gcp_sts(), "https://127.0.0.1:9443");
        assert_eq!(
            clouds.endpoints().aws_secrets_manager("eu-west-1"),
            "https://127.0.0.1:9444"
        );
        assert_eq!(
            clouds.endpoints().azure_authority_host(),
            keyward_core::endpoints::real::AZURE_AUTHORITY_HOST
        );
        for unset in [None, Some(std::ffi::OsStr::new(""))] {
            let real = Clouds::from_env_value(unset).unwrap();
            assert_eq!(real.endpoints(), &EndpointsFile::default());
        }
        let missing = dir.join("missing.json");
        let err = Clouds::from_env_value(Some(missing.as_os_str()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("cloud endpoints: KEYWARD_CLOUD_ENDPOINTS: ")
                && err.contains("missing.json"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
