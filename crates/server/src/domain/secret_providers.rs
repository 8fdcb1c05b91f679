//! Secret provider credentials (SPEC §6): where an organization's secrets live and how Keyward
//! reaches them — through a workload identity config of the same cloud, or static credentials
//! that are sealed at rest and never shown again.

use std::collections::BTreeMap;

use keyward_core::api::v1::{CreateSecretProvider, UpdateSecretProvider};
use keyward_core::secrets::{
    AuthKind, ProviderKind, SecretsError, validate_gcp_project, validate_vault_url,
};
use keyward_core::workload::validate_region;
use keyward_core::{OrgId, SecretProviderId, names};
use keyward_store::{SecretProviderRow, StoreError, WiConfigRow};
use serde_json::{Value, json};
use zeroize::{Zeroize, Zeroizing};

use super::wi_configs::referenced;
use super::{Taken, by_id_or_name, taken};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

fn invalid(e: SecretsError) -> ApiError {
    ApiError::invalid(e.field(), e.to_string())
}

/// The additional data sealed static credentials are bound to: a copy in another row won't open.
pub(crate) fn static_aad(id: SecretProviderId) -> Vec<u8> {
    keyward_store::crypto::Aad::SecretProvider { id }.bytes()
}

/// Opened static credentials; the values are wiped when dropped.
#[derive(Default)]
pub(crate) struct StaticFields(pub BTreeMap<String, String>);

impl Drop for StaticFields {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            value.zeroize();
        }
    }
}

/// The static credentials of a credential, opened.
pub(crate) fn open_static(
    app: &AppState,
    row: &SecretProviderRow,
) -> Result<Option<StaticFields>, ApiError> {
    let Some(sealed) = &row.sealed_static else {
        return Ok(None);
    };
    let plain = app
        .master
        .open(&static_aad(row.id), sealed)
        .map_err(|e| ApiError::internal(format!("secret provider {}: {e}", row.id)))?;
    let fields: BTreeMap<String, String> = serde_json::from_slice(&plain)
        .map_err(|e| ApiError::internal(format!("secret provider {}: {e}", row.id)))?;
    Ok(Some(StaticFields(fields)))
}

/// Settings JSON: `region`, `project`, `vault_url`.
pub(crate) fn settings_of(row: &SecretProviderRow) -> Value {
    serde_json::from_str(&row.settings).unwrap_or(Value::Null)
}

pub(crate) fn setting(row: &SecretProviderRow, key: &str) -> Option<String> {
    settings_of(row)[key].as_str().map(str::to_owned)
}

/// The organization's credentials (API list and console page).
pub(crate) async fn list_secret_providers(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<SecretProviderRow>, ApiError> {
    Ok(app.store.list_secret_providers(caller.org()?.id).await?)
}

/// `{id}` is the credential's UUID or its name.
pub(crate) async fn find_secret_provider(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<SecretProviderRow, ApiError> {
    by_id_or_name(
        id_or_name,
        "secret provider credential",
        |id: SecretProviderId| app.store.get_secret_provider(org, id),
        |name| async move { app.store.find_secret_provider_by_name(org, &name).await },
    )
    .await
}

/// Everything a credential needs, checked together.
struct Draft {
    provider: ProviderKind,
    auth: AuthKind,
    config: Option<WiConfigRow>,
    region: Option<String>,
    project: Option<String>,
    vault_url: Option<String>,
    static_fields: Option<BTreeMap<String, String>>,
    /// Hosts of the endpoints file that may stand in for Key Vault (the simulator's).
    vault_origins: Vec<String>,
}

/// The simulator's Azure hosts when `KEYWARD_CLOUD_ENDPOINTS` names an endpoints file. A file
/// that cannot be read yet (the simulator may start after the server) adds no host; the cloud
/// call that needs it reports the file's problem.
fn vault_origins(app: &AppState) -> Vec<String> {
    match &app.cloud_endpoints {
        None => Vec::new(),
        Some(_) => app
            .clouds()
            .map(|c| c.endpoints().azure_vault_origins())
            .unwrap_or_default(),
    }
}

impl Draft {
    fn validate(&self) -> Result<(), ApiError> {
        match (self.auth, &self.config, &self.static_fields) {
            (AuthKind::WorkloadIdentity, None, _) => {
                return Err(ApiError::invalid(
                    "workload_identity_config",
                    "workload_identity_config is required with auth workload_identity",
                ));
            }
            (AuthKind::WorkloadIdentity, Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "static",
                    "static credentials do not go with auth workload_identity; use auth static, or drop them",
                ));
            }
            (AuthKind::WorkloadIdentity, Some(config), None) => {
                if config.cloud != self.provider.cloud().as_str() {
                    return Err(ApiError::invalid(
                        "workload_identity_config",
                        format!(
                            "workload identity config '{}' is for {}, and {} needs a {} config",
                            config.name,
                            config.cloud,
                            self.provider.as_str(),
                            self.provider.cloud()
                        ),
                    ));
                }
            }
            (AuthKind::Static, Some(_), _) => {
                return Err(ApiError::invalid(
                    "workload_identity_config",
                    "workload_identity_config goes with auth workload_identity, not static",
                ));
            }
            (AuthKind::Static, None, None) => {
                return Err(ApiError::invalid(
                    "static",
                    format!(
                        "static credentials are required with auth static: {}",
                        required(self.provider)
                    ),
                ));
            }
            (AuthKind::Static, None, Some(fields)) => check_static(self.provider, fields)?,
        }
        let misplaced = [
            ("region", &self.region, ProviderKind::AwsSecretsManager),
            ("project", &self.project, ProviderKind::GcpSecretManager),
            ("vault_url", &self.vault_url, ProviderKind::AzureKeyVault),
        ];
        for (field, value, owner) in misplaced {
            if value.is_some() && owner != self.provider {
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "{field} does not apply to {} (it is for {})",
                        self.provider.as_str(),
                        owner.as_str()
                    ),
                ));
            }
        }
        match self.provider {
            ProviderKind::AwsSecretsManager => {
                let region = self.region.as_deref().ok_or_else(|| {
                    ApiError::invalid("region", "region is required for aws_secrets_manager")
                })?;
                validate_region(region).map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
            }
            ProviderKind::GcpSecretManager => {
                let project = self.project.as_deref().ok_or_else(|| {
                    ApiError::invalid("project", "project is required for gcp_secret_manager")
                })?;
                validate_gcp_project(project).map_err(invalid)?;
            }
            // Without a vault URL the credential saves, and each kickoff says what is missing,
            // as the reference does ("azure_vault_url is required for Azure secret resolution").
            ProviderKind::AzureKeyVault => {
                if let Some(url) = &self.vault_url {
                    validate_vault_url(url, &self.vault_origins).map_err(invalid)?;
                }
            }
        }
        Ok(())
    }

    fn settings(&self) -> String {
        let mut v = serde_json::Map::new();
        for (k, val) in [
            ("region", &self.region),
            ("project", &self.project),
            ("vault_url", &self.vault_url),
        ] {
            if let Some(val) = val {
                v.insert(
                    k.into(),
                    Value::String(val.trim_end_matches('/').to_owned()),
                );
            }
        }
        Value::Object(v).to_string()
    }
}

fn required(provider: ProviderKind) -> String {
    provider
        .static_fields()
        .iter()
        .filter(|(_, req)| *req)
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_static(provider: ProviderKind, fields: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let known = provider.static_fields();
    if let Some(unknown) = fields.keys().find(|k| !known.iter().any(|(f, _)| f == k)) {
        return Err(ApiError::invalid(
            "static",
            format!(
                "static.{unknown} is not a {} field; expected {}",
                provider.as_str(),
                known.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for (field, needed) in known {
        if *needed && fields.get(*field).is_none_or(|v| v.trim().is_empty()) {
            return Err(ApiError::invalid(
                "static",
                format!("static.{field} is required for {}", provider.as_str()),
            ));
        }
    }
    if provider == ProviderKind::GcpSecretManager
        && let Some(json) = fields.get("service_account_json")
    {
        let key: Value = serde_json::from_str(json).map_err(|_| {
            ApiError::invalid(
                "static",
                "static.service_account_json is not JSON: paste the key file's contents",
            )
        })?;
        if key["type"] != json!("service_account") || key["private_key"].as_str().is_none() {
            return Err(ApiError::invalid(
                "static",
                "static.service_account_json is not a service account key (type service_account with a private_key)",
            ));
        }
    }
    Ok(())
}

fn seal(
    app: &AppState,
    id: SecretProviderId,
    fields: &BTreeMap<String, String>,
) -> Result<Vec<u8>, ApiError> {
    let plain = Zeroizing::new(serde_json::to_vec(fields).map_err(ApiError::internal)?);
    app.master
        .seal(&static_aad(id), &plain)
        .map_err(|e| ApiError::internal(format!("sealing static credentials: {e}")))
}

fn provider_taken(e: StoreError, row: &SecretProviderRow) -> ApiError {
    taken(
        e,
        Taken {
            field: "name",
            message: format!(
                "a secret provider credential named '{}' already exists",
                row.name
            ),
            default: Some((
                "default_for_provider",
                format!(
                    "this organization already has a default {} credential; unset default_for_provider on it first",
                    row.provider
                ),
            )),
        },
    )
}

pub(crate) async fn create_secret_provider(
    app: &AppState,
    caller: &Caller,
    body: CreateSecretProvider,
) -> Result<SecretProviderRow, ApiError> {
    let org = caller.org()?.id;
    names::validate_slug("name", &body.name)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    let draft = Draft {
        provider: ProviderKind::parse(&body.provider).map_err(invalid)?,
        auth: AuthKind::parse(&body.auth).map_err(invalid)?,
        config: referenced(app, org, body.workload_identity_config.as_deref()).await?,
        region: body.region,
        project: body.project,
        vault_url: body.vault_url,
        static_fields: body.static_credentials,
        vault_origins: vault_origins(app),
    };
    draft.validate()?;
    let id = SecretProviderId::new_random();
    let now = caller.now;
    let row = SecretProviderRow {
        id,
        org_id: org,
        name: body.name,
        provider: draft.provider.as_str().into(),
        auth: draft.auth.as_str().into(),
        wi_config_id: draft.config.as_ref().map(|c| c.id),
        settings: draft.settings(),
        sealed_static: draft
            .static_fields
            .as_ref()
            .map(|f| seal(app, id, f))
            .transpose()?,
        default_for_provider: body.default_for_provider.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    app.store
        .create_secret_provider(&row)
        .await
        .map_err(|e| provider_taken(e, &row))?;
    record_provider(app, caller, kind::SECRET_PROVIDER_CREATED, &row).await?;
    Ok(row)
}

pub(crate) async fn update_secret_provider(
    app: &AppState,
    caller: &Caller,
    id: &str,
    body: UpdateSecretProvider,
) -> Result<SecretProviderRow, ApiError> {
    let org = caller.org()?.id;
    let mut row = find_secret_provider(app, org, id).await?;
    let provider =
        ProviderKind::parse(&row.provider).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(asked) = &body.provider
        && asked != provider.as_str()
    {
        return Err(ApiError::invalid(
            "provider",
            format!(
                "a credential's provider cannot change (this one is {}); create a new credential",
                provider.as_str()
            ),
        ));
    }
    if let Some(name) = body.name {
        names::validate_slug("name", &name)
            .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
        row.name = name;
    }
    let auth = match &body.auth {
        Some(a) => AuthKind::parse(a).map_err(invalid)?,
        None => AuthKind::parse(&row.auth).map_err(|e| ApiError::internal(e.to_string()))?,
    };
    let config = match (&body.workload_identity_config, auth) {
        (_, AuthKind::Static) => None,
        (Some(given), _) => referenced(app, org, Some(given)).await?,
        (None, _) => match row.wi_config_id {
            Some(c) => Some(app.store.get_wi_config(org, c).await?),
            None => None,
        },
    };
    let vault_url = pick_setting(body.vault_url, &row, "vault_url");
    // The stored client secret signs in for a vault token that goes to `vault_url`: pointing an
    // existing credential at another vault takes the secret again, so whoever may edit settings
    // cannot send a token minted with a secret they never saw to a vault of their choosing.
    let secret_given = body
        .static_credentials
        .as_ref()
        .and_then(|f| f.get("client_secret"))
        .is_some_and(|v| !v.is_empty());
    if auth == AuthKind::Static
        && row.sealed_static.is_some()
        && vault_url.as_deref().map(|u| u.trim_end_matches('/'))
            != setting(&row, "vault_url").as_deref()
        && !secret_given
    {
        return Err(ApiError::invalid(
            "static",
            "changing vault_url of a static credential needs its client secret again: send static.client_secret with the new vault_url",
        ));
    }
    // Blank static fields keep what is stored; switching to workload identity drops them.
    let static_fields = match (auth, body.static_credentials) {
        (AuthKind::WorkloadIdentity, _) => None,
        (AuthKind::Static, given) => {
            let mut merged = open_static(app, &row)?.unwrap_or_default();
            let mut merged = std::mem::take(&mut merged.0);
            for (k, v) in given.unwrap_or_default() {
                if !v.is_empty() {
                    merged.insert(k, v);
                }
            }
            (!merged.is_empty()).then_some(merged)
        }
    };
    let draft = Draft {
        provider,
        auth,
        config,
        region: pick_setting(body.region, &row, "region"),
        project: pick_setting(body.project, &row, "project"),
        vault_url,
        static_fields,
        vault_origins: vault_origins(app),
    };
    draft.validate()?;
    row.auth = auth.as_str().into();
    row.wi_config_id = draft.config.as_ref().map(|c| c.id);
    row.settings = draft.settings();
    row.sealed_static = draft
        .static_fields
        .as_ref()
        .map(|f| seal(app, row.id, f))
        .transpose()?;
    if let Some(default) = body.default_for_provider {
        row.default_for_provider = default;
    }
    row.updated_at = caller.now;
    app.store
        .update_secret_provider(&row)
        .await
        .map_err(|e| provider_taken(e, &row))?;
    record_provider(app, caller, kind::SECRET_PROVIDER_UPDATED, &row).await?;
    Ok(row)
}

/// A setting from a PATCH body: blank clears it, absent keeps the stored one.
fn pick_setting(given: Option<String>, row: &SecretProviderRow, key: &str) -> Option<String> {
    match given {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v),
        None => setting(row, key),
    }
}

pub(crate) async fn delete_secret_provider(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let org = caller.org()?.id;
    let row = find_secret_provider(app, org, id).await?;
    app.store.delete_secret_provider(org, row.id).await.map_err(|e| match e {
        StoreError::InUse => ApiError::Conflict {
            field: "id",
            message: format!(
                "secret provider credential '{}' is used by an environment variable; point the variable elsewhere first",
                row.name
            ),
        },
        other => or_not_found("secret provider credential")(other),
    })?;
    record_provider(app, caller, kind::SECRET_PROVIDER_DELETED, &row).await?;
    Ok(())
}

/// Audited without the static credentials: which fields are set, never their values.
async fn record_provider(
    app: &AppState,
    caller: &Caller,
    event: &str,
    row: &SecretProviderRow,
) -> Result<(), ApiError> {
    app.audit
        .record(
            event,
            Some(row.org_id),
            &caller.actor(),
            json!({
                "credential_id": row.id,
                "name": row.name,
                "provider": row.provider,
                "auth": row.auth,
                "workload_identity_config_id": row.wi_config_id,
                "settings": settings_of(row),
                "static_configured": row.sealed_static.is_some(),
                "default_for_provider": row.default_for_provider,
            }),
        )
        .await?;
    Ok(())
}
