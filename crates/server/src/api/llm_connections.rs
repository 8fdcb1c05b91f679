//! LLM connections (SPEC §4): a provider, an optional workload identity config of the matching
//! cloud, the Vertex service account to impersonate, connection-scoped env vars and a model.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{CreateLlmConnection, LlmConnection, UpdateLlmConnection};
use keyward_core::workload::{CloudKind, LlmConnectionCheck, WorkloadError};
use keyward_core::{AutomationId, LlmConnectionId, OrgId, WorkloadIdentityConfigId, names};
use keyward_store::{LlmConnectionRow, StoreError, WiConfigRow};
use serde_json::json;

use super::wi_configs::{self, automation_ids, automation_names};
use crate::audit::kind;
use crate::caller::Caller;
use crate::clock::{self, to_datetime};
use crate::error::{ApiError, ApiJson, or_not_found};
use crate::state::AppState;

const MAX_ENV: usize = 100;
const MAX_ENV_VALUE: usize = 4096;

fn env_of(row: &LlmConnectionRow) -> Result<BTreeMap<String, String>, ApiError> {
    serde_json::from_str(&row.env).map_err(|e| {
        ApiError::internal(format!(
            "LLM connection {} has a damaged env in the database: {e}",
            row.id
        ))
    })
}

fn wire(
    row: &LlmConnectionRow,
    configs: &BTreeMap<WorkloadIdentityConfigId, String>,
    names: &HashMap<AutomationId, String>,
) -> Result<LlmConnection, ApiError> {
    Ok(LlmConnection {
        id: row.id,
        name: row.name.clone(),
        provider: row.provider.clone(),
        workload_identity_config: row.wi_config_id.and_then(|c| configs.get(&c).cloned()),
        service_account_email: row.service_account_email.clone(),
        model: row.model.clone(),
        env: env_of(row)?,
        automations: row
            .automations
            .iter()
            .filter_map(|a| names.get(a).cloned())
            .collect(),
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    })
}

/// `{id}` is the connection's UUID or its name.
pub(crate) async fn find(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<LlmConnectionRow, ApiError> {
    super::by_id_or_name(
        id_or_name,
        "LLM connection",
        |id: LlmConnectionId| app.store.get_llm_connection(org, id),
        |name| async move { app.store.find_llm_connection_by_name(org, &name).await },
    )
    .await
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

fn name_taken(e: StoreError, name: &str) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            field: "name",
            message: format!(
                "an LLM connection named '{name}' already exists in this organization"
            ),
        },
        other => other.into(),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    names::validate_slug("name", name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<LlmConnection>>, ApiError> {
    let org = caller.org()?.id;
    let (configs, names) = (
        wi_configs::config_names(&app, org).await?,
        automation_names(&app, org).await?,
    );
    let rows = app.store.list_llm_connections(org).await?;
    // Connections with an access list that does not name the caller are absent.
    let hidden =
        crate::rbac::hidden(&app, &caller, keyward_store::AccessListed::LlmConnection).await?;
    Ok(Json(
        rows.iter()
            .filter(|r| !hidden.contains(&r.id.0))
            .map(|r| wire(r, &configs, &names))
            .collect::<Result<_, _>>()?,
    ))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<LlmConnection>, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    let (configs, names) = (
        wi_configs::config_names(&app, org).await?,
        automation_names(&app, org).await?,
    );
    Ok(Json(wire(&row, &configs, &names)?))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateLlmConnection>,
) -> Result<(StatusCode, Json<LlmConnection>), ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let config = wi_configs::referenced(
        &app,
        org,
        optional(body.workload_identity_config).as_deref(),
    )
    .await?;
    let now = clock::now();
    let row = LlmConnectionRow {
        id: LlmConnectionId::new_random(),
        org_id: org,
        name: body.name,
        provider: body.provider,
        wi_config_id: config.as_ref().map(|c| c.id),
        service_account_email: optional(body.service_account_email),
        model: optional(body.model),
        env: serde_json::to_string(&body.env.unwrap_or_default()).map_err(ApiError::internal)?,
        automations: automation_ids(&app, org, &body.automations.unwrap_or_default()).await?,
        created_at: now,
        updated_at: now,
    };
    validate(&row, config.as_ref())?;
    app.store
        .create_llm_connection(&row)
        .await
        .map_err(|e| name_taken(e, &row.name))?;
    record(&app, &caller, kind::LLM_CONNECTION_CREATED, &row).await?;
    let (configs, names) = (
        wi_configs::config_names(&app, org).await?,
        automation_names(&app, org).await?,
    );
    Ok((StatusCode::CREATED, Json(wire(&row, &configs, &names)?)))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateLlmConnection>,
) -> Result<Json<LlmConnection>, ApiError> {
    let org = caller.org()?.id;
    let mut row = find(&app, org, &id).await?;
    if let Some(name) = body.name {
        check_name(&name)?;
        row.name = name;
    }
    if let Some(provider) = body.provider {
        row.provider = provider;
    }
    let config = match body.workload_identity_config {
        Some(given) => wi_configs::referenced(&app, org, optional(Some(given)).as_deref()).await?,
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
        row.automations = automation_ids(&app, org, &list).await?;
    }
    validate(&row, config.as_ref())?;
    row.updated_at = clock::now();
    app.store
        .update_llm_connection(&row)
        .await
        .map_err(|e| name_taken(e, &row.name))?;
    record(&app, &caller, kind::LLM_CONNECTION_UPDATED, &row).await?;
    let (configs, names) = (
        wi_configs::config_names(&app, org).await?,
        automation_names(&app, org).await?,
    );
    Ok(Json(wire(&row, &configs, &names)?))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    app.store
        .delete_llm_connection(org, row.id)
        .await
        .map_err(or_not_found("LLM connection"))?;
    record(&app, &caller, kind::LLM_CONNECTION_DELETED, &row).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn record(
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
