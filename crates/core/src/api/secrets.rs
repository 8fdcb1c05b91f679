//! `/api/v1` bodies of secret provider credentials and environment variables (re-exported by
//! `v1.rs`). Requests refuse unknown fields so a typo is an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{EnvVarId, SecretProviderId};

/// A secret provider credential. Static credentials are never returned: `static_configured`
/// says whether there are some.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretProvider {
    pub id: SecretProviderId,
    pub name: String,
    /// `aws_secrets_manager`, `gcp_secret_manager` or `azure_key_vault`.
    pub provider: String,
    /// `workload_identity` or `static`.
    pub auth: String,
    /// The workload identity config's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity_config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_url: Option<String>,
    pub static_configured: bool,
    pub default_for_provider: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretProvider {
    pub name: String,
    pub provider: String,
    pub auth: String,
    /// Id or name; with `auth: workload_identity`.
    #[serde(default)]
    pub workload_identity_config: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub vault_url: Option<String>,
    /// With `auth: static`: AWS `access_key_id`, `secret_access_key` (+ `role_arn`,
    /// `external_id`); GCP `service_account_json`; Azure `tenant_id`, `client_id`, `client_secret`.
    #[serde(default, rename = "static")]
    pub static_credentials: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub default_for_provider: Option<bool>,
}

/// Absent fields keep their value; in `static`, a blank field keeps the stored one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSecretProvider {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub workload_identity_config: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub vault_url: Option<String>,
    #[serde(default, rename = "static")]
    pub static_credentials: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub default_for_provider: Option<bool>,
}

/// An environment variable. The value of a secret-flagged variable is never shown (`"********"`);
/// a secret-backed one has no stored value at all (it resolves at kickoff).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentVariable {
    pub id: EnvVarId,
    pub key: String,
    /// `direct`, `provider_default` or `credential`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The secret provider credential's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironmentVariable {
    pub key: String,
    /// A direct value (with `source: direct`, the default when a value is given).
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// With `source: provider_default`.
    #[serde(default)]
    pub provider: Option<String>,
    /// With `source: credential`: id or name.
    #[serde(default)]
    pub credential: Option<String>,
    /// `name` or `name#json_key`, with a provider or credential source.
    #[serde(default)]
    pub secret_name: Option<String>,
    /// Mask a direct value in every read (and seal it at rest).
    #[serde(default)]
    pub secret: Option<bool>,
}

/// Absent fields keep their value; a blank `value` keeps the stored one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironmentVariable {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub secret_name: Option<String>,
    #[serde(default)]
    pub secret: Option<bool>,
}

/// `PUT /api/v1/automations/{id}/environment-variables`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignEnvironmentVariables {
    /// Ids or keys; replaces the automation's assignment.
    pub environment_variables: Vec<String>,
}
