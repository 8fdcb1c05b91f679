//! Environment variables (SPEC §6): a direct value (sealed and masked when secret) or a secret
//! reference resolved at kickoff, and their explicit assignment to automations.

use std::collections::HashSet;

use keyward_core::api::v1::{
    AssignEnvironmentVariables, CreateEnvironmentVariable, UpdateEnvironmentVariable,
};
use keyward_core::secrets::{ProviderKind, SecretRef};
use keyward_core::workload::validate_env_key;
use keyward_core::{EnvVarId, Feature, Level, OrgId, SecretProviderId};
use keyward_store::{AccessListed, AutomationRow, EnvVarRow, StoreError};
use serde_json::json;
use uuid::Uuid;

use super::access::hidden;
use super::secret_providers::find_secret_provider;
use super::static_values::resolve;
use super::{Taken, by_id_or_name, taken, unknown_reference};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

const MAX_VALUE: usize = 32 * 1024;

pub(crate) fn value_aad(id: EnvVarId) -> Vec<u8> {
    keyward_store::crypto::Aad::EnvVar { id }.bytes()
}

/// `{id}` is the variable's UUID or its key.
pub(crate) async fn find_env_var(
    app: &AppState,
    org: OrgId,
    id_or_key: &str,
) -> Result<EnvVarRow, ApiError> {
    by_id_or_name(
        id_or_key,
        "environment variable",
        |id: EnvVarId| app.store.get_env_var(org, id),
        |key| async move { app.store.find_env_var_by_key(org, &key).await },
    )
    .await
}

/// The fields of a variable as they will be stored, checked together.
struct Draft {
    key: String,
    source: String,
    provider: Option<String>,
    credential: Option<SecretProviderId>,
    secret_name: Option<String>,
    secret: bool,
    /// A new direct value; `None` keeps the stored one (update) or is an error (create).
    value: Option<String>,
}

impl Draft {
    fn validate(&self, has_stored_value: bool) -> Result<(), ApiError> {
        validate_env_key(&self.key).map_err(|e| ApiError::invalid("key", e.to_string()))?;
        // No process environment can hold a NUL: the kickoff would fail at exec (trial B3). A
        // key with one already failed the name rule above.
        if self.value.as_ref().is_some_and(|v| v.contains('\0')) {
            return Err(ApiError::invalid(
                "value",
                "the value contains a NUL byte, which no process environment can hold; remove it",
            ));
        }
        let absent = |field: &'static str, present: bool, source: &str| {
            if present {
                Err(ApiError::invalid(
                    field,
                    format!("{field} does not go with source {source}"),
                ))
            } else {
                Ok(())
            }
        };
        match self.source.as_str() {
            "direct" => {
                absent("provider", self.provider.is_some(), "direct")?;
                absent("credential", self.credential.is_some(), "direct")?;
                absent("secret_name", self.secret_name.is_some(), "direct")?;
                if self.value.is_none() && !has_stored_value {
                    return Err(ApiError::invalid(
                        "value",
                        "value is required with source direct",
                    ));
                }
                if self.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
                    return Err(ApiError::invalid(
                        "value",
                        format!("value is longer than {MAX_VALUE} bytes"),
                    ));
                }
            }
            source @ ("provider_default" | "credential") => {
                absent("value", self.value.is_some(), source)?;
                let name = self.secret_name.as_deref().ok_or_else(|| {
                    ApiError::invalid(
                        "secret_name",
                        format!("secret_name is required with source {source}"),
                    )
                })?;
                SecretRef::parse(name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
                if source == "provider_default" {
                    absent("credential", self.credential.is_some(), source)?;
                    let provider = self.provider.as_deref().ok_or_else(|| {
                        ApiError::invalid(
                            "provider",
                            "provider is required with source provider_default",
                        )
                    })?;
                    ProviderKind::parse(provider)
                        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
                } else {
                    absent("provider", self.provider.is_some(), source)?;
                    if self.credential.is_none() {
                        return Err(ApiError::invalid(
                            "credential",
                            "credential is required with source credential",
                        ));
                    }
                }
            }
            other => {
                return Err(ApiError::invalid(
                    "source",
                    format!("source must be direct, provider_default or credential, not {other:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// The reference's "What to Grant" (security review L6): a variable that references a secret
/// provider credential — by name or as the provider's default — reads that credential's secrets,
/// so it takes `secret_providers: read` besides `environment_variables: manage`. Checked before
/// the credential is looked up, so the answer does not tell which credentials exist.
fn may_reference(caller: &Caller, source: &str) -> Result<(), ApiError> {
    let role = &caller.org()?.role;
    if source == "direct" || role.allows(Feature::SecretProviders, Level::Read) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "forbidden",
        message: format!(
            "a variable with source {source} uses a secret provider credential, which takes read on secret_providers; your role '{}' does not grant it: use a direct value, or ask an owner for a role with secret_providers read",
            role.name
        ),
    })
}

async fn credential_id(
    app: &AppState,
    org: OrgId,
    given: Option<&str>,
) -> Result<Option<SecretProviderId>, ApiError> {
    match given.filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(c) => find_secret_provider(app, org, c)
            .await
            .map(|row| Some(row.id))
            .map_err(unknown_reference(
                "credential",
                "secret provider credential",
                c,
            )),
    }
}

/// The stored direct value, opened when sealed.
pub(crate) fn read_value(
    app: &AppState,
    row: &EnvVarRow,
) -> Result<Option<zeroize::Zeroizing<String>>, ApiError> {
    match (&row.value, &row.sealed_value) {
        (Some(v), _) => Ok(Some(zeroize::Zeroizing::new(v.clone()))),
        (None, Some(sealed)) => {
            let plain = app
                .master
                .open(&value_aad(row.id), sealed)
                .map_err(|e| ApiError::internal(format!("environment variable {}: {e}", row.id)))?;
            let text = String::from_utf8(plain.to_vec()).map_err(ApiError::internal)?;
            Ok(Some(zeroize::Zeroizing::new(text)))
        }
        (None, None) => Ok(None),
    }
}

/// Keeps `value` in `row`: plain, or sealed when the variable is secret; nothing for a reference.
fn place_value(app: &AppState, row: &mut EnvVarRow, value: Option<&str>) -> Result<(), ApiError> {
    row.value = None;
    row.sealed_value = None;
    let Some(value) = value.filter(|_| row.source == "direct") else {
        return Ok(());
    };
    if row.secret {
        row.sealed_value = Some(
            app.master
                .seal(&value_aad(row.id), value.as_bytes())
                .map_err(|e| ApiError::internal(format!("sealing a value: {e}")))?,
        );
    } else {
        row.value = Some(value.to_owned());
    }
    Ok(())
}

fn key_taken(e: StoreError, key: &str) -> ApiError {
    taken(
        e,
        Taken {
            field: "key",
            message: format!("an environment variable {key} already exists in this organization"),
            default: None,
        },
    )
}

pub(crate) async fn create_env_var(
    app: &AppState,
    caller: &Caller,
    body: CreateEnvironmentVariable,
) -> Result<EnvVarRow, ApiError> {
    let org = caller.org()?.id;
    let source = body.source.clone().unwrap_or_else(|| {
        if body.credential.is_some() {
            "credential".into()
        } else if body.provider.is_some() {
            "provider_default".into()
        } else {
            "direct".into()
        }
    });
    may_reference(caller, &source)?;
    let draft = Draft {
        key: body.key,
        source,
        provider: body.provider,
        credential: credential_id(app, org, body.credential.as_deref()).await?,
        secret_name: body.secret_name,
        // A secret-backed value is secret by nature.
        secret: body.secret.unwrap_or(false) || body.credential.is_some(),
        value: body.value,
    };
    draft.validate(false)?;
    let now = caller.now;
    let mut row = EnvVarRow {
        id: EnvVarId::new_random(),
        org_id: org,
        key: draft.key,
        secret: draft.secret || draft.source != "direct",
        source: draft.source,
        provider: draft.provider,
        credential_id: draft.credential,
        secret_name: draft.secret_name,
        value: None,
        sealed_value: None,
        created_at: now,
        updated_at: now,
    };
    place_value(app, &mut row, draft.value.as_deref())?;
    app.store
        .create_env_var(&row)
        .await
        .map_err(|e| key_taken(e, &row.key))?;
    record_env_var(app, caller, kind::ENV_VAR_CREATED, &row).await?;
    Ok(row)
}

pub(crate) async fn update_env_var(
    app: &AppState,
    caller: &Caller,
    mut row: EnvVarRow,
    body: UpdateEnvironmentVariable,
) -> Result<EnvVarRow, ApiError> {
    let org = caller.org()?.id;
    let source = body.source.unwrap_or_else(|| row.source.clone());
    let switching = source != row.source;
    may_reference(caller, &source)?;
    let keep = |given: Option<String>, stored: Option<String>| match given {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v),
        None if switching => None,
        None => stored,
    };
    let credential = match body.credential {
        Some(c) => credential_id(app, org, Some(&c)).await?,
        None if switching => None,
        None => row.credential_id,
    };
    let draft = Draft {
        key: body.key.unwrap_or_else(|| row.key.clone()),
        provider: keep(body.provider, row.provider.clone()),
        secret_name: keep(body.secret_name, row.secret_name.clone()),
        credential,
        secret: body.secret.unwrap_or(row.secret),
        // Editing with a blank value keeps the stored one.
        value: body.value.filter(|v| !v.is_empty()),
        source,
    };
    let has_stored = !switching && (row.value.is_some() || row.sealed_value.is_some());
    if row.sealed_value.is_some() && !draft.secret && draft.value.is_none() {
        return Err(ApiError::invalid(
            "secret",
            "a secret value stays hidden: give a new value to make the variable non-secret",
        ));
    }
    draft.validate(has_stored)?;
    // A blank value keeps the stored one, re-kept under the (possibly changed) secret flag.
    let stored = if draft.value.is_none() && has_stored {
        read_value(app, &row)?
    } else {
        None
    };
    let value = draft
        .value
        .as_deref()
        .or(stored.as_deref().map(String::as_str));
    row.key = draft.key.clone();
    row.provider = draft.provider.clone();
    row.credential_id = draft.credential;
    row.secret_name = draft.secret_name.clone();
    row.secret = draft.secret || draft.source != "direct";
    row.source = draft.source.clone();
    place_value(app, &mut row, value)?;
    row.updated_at = caller.now;
    app.store
        .update_env_var(&row)
        .await
        .map_err(|e| key_taken(e, &row.key))?;
    record_env_var(app, caller, kind::ENV_VAR_UPDATED, &row).await?;
    Ok(row)
}

pub(crate) async fn delete_env_var(
    app: &AppState,
    caller: &Caller,
    row: &EnvVarRow,
) -> Result<(), ApiError> {
    app.store
        .delete_env_var(row.org_id, row.id)
        .await
        .map_err(or_not_found("environment variable"))?;
    record_env_var(app, caller, kind::ENV_VAR_DELETED, row).await
}

/// The organization's variables the caller may see (an access list that does not name them
/// hides a variable).
pub(crate) async fn list_env_vars(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<EnvVarRow>, ApiError> {
    let hidden = hidden(app, caller, AccessListed::EnvironmentVariable).await?;
    let rows = app.store.list_env_vars(caller.org()?.id).await?;
    Ok(visible(rows, &hidden))
}

/// The variables assigned to `automation` that the caller may see (an access list that does not
/// name them hides a variable).
pub(crate) async fn assigned_env_vars(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
) -> Result<Vec<EnvVarRow>, ApiError> {
    let hidden = hidden(app, caller, AccessListed::EnvironmentVariable).await?;
    let rows = app
        .store
        .automation_env_vars(automation.org_id, automation.id)
        .await?;
    Ok(visible(rows, &hidden))
}

fn visible(rows: Vec<EnvVarRow>, hidden: &HashSet<Uuid>) -> Vec<EnvVarRow> {
    rows.into_iter()
        .filter(|r| !hidden.contains(&r.id.0))
        .collect()
}

/// `PUT /automations/{id}/environment-variables`: replaces the assignment and answers with the
/// assigned variables the caller may see.
pub(crate) async fn assign(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
    body: AssignEnvironmentVariables,
) -> Result<Vec<EnvVarRow>, ApiError> {
    let org = caller.org()?.id;
    // A variable whose access list does not name the caller cannot be used by them.
    let hidden = hidden(app, caller, AccessListed::EnvironmentVariable).await?;
    let mut chosen = Vec::with_capacity(body.environment_variables.len());
    for item in &body.environment_variables {
        let row = find_env_var(app, org, item)
            .await
            .and_then(|row| {
                if hidden.contains(&row.id.0) {
                    Err(ApiError::not_found("environment variable"))
                } else {
                    Ok(row)
                }
            })
            .map_err(unknown_reference(
                "environment_variables",
                "environment variable",
                item,
            ))?;
        // Rows stored before keys were reserved (H4) stay inert: they cannot be assigned again.
        if let Some(why) = keyward_core::env_keys::reserved(&row.key) {
            return Err(ApiError::invalid(
                "environment_variables",
                format!(
                    "environment variable {} is reserved and cannot be assigned: {why}; delete it",
                    row.key
                ),
            ));
        }
        chosen.push(row);
    }
    // The assignment replaces the list, but a caller cannot name variables they cannot see:
    // those stay assigned as they were.
    if !hidden.is_empty() {
        for kept in app.store.automation_env_vars(org, automation.id).await? {
            if hidden.contains(&kept.id.0) {
                chosen.push(kept);
            }
        }
    }
    // Assigning registers the variables: static-backed values resolve now (nothing is assigned
    // if one fails), workload-identity-backed ones at each kickoff.
    let resolved = resolve(app, org, automation.id, &chosen, caller.now).await?;
    let mut ids: Vec<EnvVarId> = chosen.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    app.store
        .assign_env_vars_resolved(org, automation.id, &ids, &resolved)
        .await?;
    let rows = app.store.automation_env_vars(org, automation.id).await?;
    app.audit
        .record(
            kind::ENV_VARS_ASSIGNED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": automation.id, "automation": automation.name,
                   "keys": rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>()}),
        )
        .await?;
    Ok(visible(rows, &hidden))
}

/// Audited with the key and where the value comes from, never the value.
async fn record_env_var(
    app: &AppState,
    caller: &Caller,
    event: &str,
    row: &EnvVarRow,
) -> Result<(), ApiError> {
    app.audit
        .record(
            event,
            Some(row.org_id),
            &caller.actor(),
            json!({
                "env_var_id": row.id,
                "key": row.key,
                "source": row.source,
                "provider": row.provider,
                "credential_id": row.credential_id,
                "secret_name": row.secret_name,
                "secret": row.secret,
            }),
        )
        .await?;
    Ok(())
}
