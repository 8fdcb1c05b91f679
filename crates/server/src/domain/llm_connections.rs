//! LLM connections (SPEC §4): a provider, an optional workload identity config of the matching
//! cloud, the Vertex service account to impersonate, connection-scoped env vars and a model.

use std::collections::BTreeMap;

use keyward_core::api::v1::{CreateLlmConnection, UpdateLlmConnection};
use keyward_core::workload::{CloudKind, LlmConnectionCheck, WorkloadError};
use keyward_core::{LlmConnectionId, OrgId, names};
use keyward_store::{AccessListed, LlmConnectionRow, StoreError, WiConfigRow};
use serde_json::json;

use super::access::hidden;
use super::automations::automation_ids;
use super::wi_configs::referenced;
use super::{Taken, by_id_or_name, taken};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

const MAX_ENV: usize = 100;
const MAX_ENV_VALUE: usize = 4096;

pub(crate) fn env_of(row: &LlmConnectionRow) -> Result<BTreeMap<String, String>, ApiError> {
    serde_json::from_str(&row.env).map_err(|e| {
        ApiError::internal(format!(
            "LLM connection {} has a damaged env in the database: {e}",
            row.id
        ))
    })
}

/// `{id}` is the connection's UUID or its name.
pub(crate) async fn find_llm_connection(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<LlmConnectionRow, ApiError> {
    by_id_or_name(
        id_or_name,
        "LLM connection",
        |id: LlmConnectionId| app.store.get_llm_connection(org, id),
        |name| async move { app.store.find_llm_connection_by_name(org, &name).await },
    )
    .await
}

/// The organization's connections the caller may see (an access list that does not name them
/// hides a connection).
pub(crate) async fn list_llm_connections(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<LlmConnectionRow>, ApiError> {
    let hidden = hidden(app, caller, AccessListed::LlmConnection).await?;
    let rows = app.store.list_llm_connections(caller.org()?.id).await?;
    Ok(rows
        .into_iter()
        .filter(|r| !hidden.contains(&r.id.0))
        .collect())
}

/// Checks the whole connection as it would be stored.
fn validate(row: &LlmConnectionRow, config: Option<&WiConfigRow>) -> Result<(), ApiError> {
    let env = env_of(row)?;
    if env.len() > MAX_ENV {
        return Err(ApiError::invalid(
            "env",
            format!("at most {MAX_ENV} environment variables per connection"),
        ));
    }
    if let Some((key, _)) = env.iter().find(|(_, v)| v.len() > MAX_ENV_VALUE) {
        return Err(ApiError::invalid(
            "env",
            format!("the value of {key} is longer than {MAX_ENV_VALUE} bytes"),
        ));
    }
    // NUL cannot reach a process; a line break would let a value add a line of its own to the
    // KEY=VALUE file `keyward agent` writes (trial B3). Connection settings are single-line.
    if let Some((key, _)) = env.iter().find(|(_, v)| v.contains(['\0', '\n', '\r'])) {
        return Err(ApiError::invalid(
            "env",
            format!(
                "the value of {key} contains a NUL byte or a line break; connection env values are single-line settings"
            ),
        ));
    }
    let identity_cloud = match config {
        Some(c) => Some(CloudKind::parse(&c.cloud).map_err(|e| ApiError::internal(e.to_string()))?),
        None => None,
    };
    LlmConnectionCheck {
        provider: &row.provider,
        identity_cloud,
        service_account_email: row.service_account_email.as_deref(),
        model: row.model.as_deref(),
        env: Some(&env),
    }
    .validate()
    .map_err(|e: WorkloadError| ApiError::invalid(e.field(), e.to_string()))
}

/// An empty string clears an optional text field.
fn optional(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn connection_taken(e: StoreError, name: &str) -> ApiError {
    taken(
        e,
        Taken {
            field: "name",
            message: format!(
                "an LLM connection named '{name}' already exists in this organization"
            ),
            default: None,
        },
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    names::validate_slug("name", name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))
}

pub(crate) async fn create_llm_connection(
    app: &AppState,
    caller: &Caller,
    body: CreateLlmConnection,
) -> Result<LlmConnectionRow, ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let config = referenced(app, org, optional(body.workload_identity_config).as_deref()).await?;
    let now = caller.now;
    let row = LlmConnectionRow {
        id: LlmConnectionId::new_random(),
        org_id: org,
        name: body.name,
        provider: body.provider,
        wi_config_id: config.as_ref().map(|c| c.id),
        service_account_email: optional(body.service_account_email),
        model: optional(body.model),
        env: serde_json::to_string(&body.env.unwrap_or_default()).map_err(ApiError::internal)?,
        automations: automation_ids(app, org, &body.automations.unwrap_or_default()).await?,
        created_at: now,
        updated_at: now,
    };
    validate(&row, config.as_ref())?;
    app.store
        .create_llm_connection(&row)
        .await
        .map_err(|e| connection_taken(e, &row.name))?;
    record_connection(app, caller, kind::LLM_CONNECTION_CREATED, &row).await?;
    Ok(row)
}

pub(crate) async fn update_llm_connection(
    app: &AppState,
    caller: &Caller,
    mut row: LlmConnectionRow,
    body: UpdateLlmConnection,
) -> Result<LlmConnectionRow, ApiError> {
    let org = caller.org()?.id;
    if let Some(name) = body.name {
        check_name(&name)?;
        row.name = name;
    }
    if let Some(provider) = body.provider {
        row.provider = provider;
    }
    let config = match body.workload_identity_config {
        Some(given) => referenced(app, org, optional(Some(given)).as_deref()).await?,
        None => match row.wi_config_id {
            Some(c) => Some(app.store.get_wi_config(org, c).await?),
            None => None,
        },
    };
    row.wi_config_id = config.as_ref().map(|c| c.id);
    if let Some(email) = body.service_account_email {
        row.service_account_email = optional(Some(email));
    }
    if let Some(model) = body.model {
        row.model = optional(Some(model));
    }
    if let Some(env) = body.env {
        row.env = serde_json::to_string(&env).map_err(ApiError::internal)?;
    }
    if let Some(list) = body.automations {
        row.automations = automation_ids(app, org, &list).await?;
    }
    validate(&row, config.as_ref())?;
    row.updated_at = caller.now;
    app.store
        .update_llm_connection(&row)
        .await
        .map_err(|e| connection_taken(e, &row.name))?;
    record_connection(app, caller, kind::LLM_CONNECTION_UPDATED, &row).await?;
    Ok(row)
}

pub(crate) async fn delete_llm_connection(
    app: &AppState,
    caller: &Caller,
    row: &LlmConnectionRow,
) -> Result<(), ApiError> {
    app.store
        .delete_llm_connection(row.org_id, row.id)
        .await
        .map_err(or_not_found("LLM connection"))?;
    record_connection(app, caller, kind::LLM_CONNECTION_DELETED, row).await
}

async fn record_connection(
    app: &AppState,
    caller: &Caller,
    event: &str,
    row: &LlmConnectionRow,
) -> Result<(), ApiError> {
    // Env var names only: values may be sensitive.
    let env_keys: Vec<String> = env_of(row)?.into_keys().collect();
    app.audit
        .record(
            event,
            Some(row.org_id),
            &caller.actor(),
            json!({
                "connection_id": row.id,
                "name": row.name,
                "provider": row.provider,
                "workload_identity_config_id": row.wi_config_id,
                "service_account_email": row.service_account_email,
                "model": row.model,
                "env_keys": env_keys,
                "automations": row.automations,
            }),
        )
        .await?;
    Ok(())
}
