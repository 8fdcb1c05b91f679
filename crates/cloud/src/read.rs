//! The one secret-read path: Secret Manager, Key Vault or Secrets Manager, chosen by the access a
//! sign-in gave, for `keyward run` and for the server's static values alike.

use keyward_core::secrets::{ResolveError, SecretUse};

use crate::error::{Cause, Cloud, CloudError};
use crate::secret::Secret;
use crate::transport::Deadline;
use crate::{Clouds, aws, azure, gcp};

/// What a sign-in to a provider's cloud gave: the credentials its secret reads present.
#[derive(Clone, Debug)]
pub enum Access {
    Gcp(gcp::AccessToken),
    Azure(azure::AccessToken),
    Aws(aws::SessionCredentials),
}

/// Where the provider keeps its secrets: the GCP project, the Key Vault, the AWS region (absent:
/// [`aws::DEFAULT_REGION`]). Only the field of the access's cloud is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretLocation {
    pub project: Option<String>,
    pub vault_url: Option<String>,
    pub region: Option<String>,
}

/// Reads the current version of secret `name` with `access`.
pub async fn read_secret(
    clouds: &Clouds,
    access: &Access,
    name: &str,
    at: &SecretLocation,
    deadline: &Deadline,
) -> Result<Secret, CloudError> {
    let (cloud, result) = match access {
        Access::Gcp(token) => {
            let project = at.project.as_deref().unwrap_or_default();
            let read = clouds
                .gcp()
                .access_secret(token, project, name, "latest", deadline)
                .await;
            (Cloud::Gcp, read)
        }
        Access::Azure(token) => {
            let vault = at.vault_url.as_deref().unwrap_or_default();
            let read = clouds
                .azure()
                .get_secret(token, vault, name, None, deadline)
                .await;
            (Cloud::Azure, read)
        }
        Access::Aws(credentials) => {
            let read = clouds
                .aws(aws::region_or_default(at.region.as_deref()))
                .get_secret_value(credentials, name, deadline)
                .await;
            (Cloud::Aws, read)
        }
    };
    crate::metrics::secret_read(cloud, &result);
    result
}

/// Reads the variable's secret and takes its `#json_key` field if it names one; a failure is
/// told in the variable's words ([`ResolveError`]).
pub async fn resolve_secret(
    clouds: &Clouds,
    access: &Access,
    at: &SecretLocation,
    wanted: &SecretUse,
    deadline: &Deadline,
) -> Result<Secret, ResolveError> {
    let value = read_secret(clouds, access, &wanted.secret, at, deadline)
        .await
        .map_err(|e| match e.cause() {
            Some(Cause::SecretNotFound) => wanted.not_found(),
            _ => wanted.read_failed(&e),
        })?;
    match wanted.take(value.expose())? {
        None => Ok(value),
        Some(field) => Ok(Secret::new(field)),
    }
}
