//! `/api/v1/llm-connections`: connections as the API shows them (config and automations by
//! name). `{id}` routes get the connection the access-list check resolved.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::api::v1::{CreateLlmConnection, LlmConnection, UpdateLlmConnection};
use keyward_core::{AutomationId, OrgId, WorkloadIdentityConfigId};
use keyward_store::LlmConnectionRow;

use crate::caller::{Caller, Resolved};
use crate::clock::to_datetime;
use crate::domain::llm_connections::{
    create_llm_connection, delete_llm_connection, env_of, list_llm_connections,
    update_llm_connection,
};
use crate::domain::{automation_names, config_names};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

/// Config and automation names by id, to show a connection's references by name.
struct Shown {
    configs: BTreeMap<WorkloadIdentityConfigId, String>,
    automations: BTreeMap<AutomationId, String>,
}

impl Shown {
    async fn load(app: &AppState, org: OrgId) -> Result<Self, ApiError> {
        Ok(Shown {
            configs: config_names(app, org).await?,
            automations: automation_names(app, org).await?,
        })
    }

    fn connection(&self, row: &LlmConnectionRow) -> Result<LlmConnection, ApiError> {
        Ok(LlmConnection {
            id: row.id,
            name: row.name.clone(),
            provider: row.provider.clone(),
            workload_identity_config: row.wi_config_id.and_then(|c| self.configs.get(&c).cloned()),
            service_account_email: row.service_account_email.clone(),
            model: row.model.clone(),
            env: env_of(row)?,
            automations: row
                .automations
                .iter()
                .filter_map(|a| self.automations.get(a).cloned())
                .collect(),
            created_at: to_datetime(row.created_at),
            updated_at: to_datetime(row.updated_at),
        })
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<LlmConnection>>, ApiError> {
    let org = caller.org()?.id;
    let shown = Shown::load(&app, org).await?;
    // Connections with an access list that does not name the caller are absent.
    let rows = list_llm_connections(&app, &caller).await?;
    Ok(Json(
        rows.iter()
            .map(|r| shown.connection(r))
            .collect::<Result<_, _>>()?,
    ))
}

pub async fn get(
    State(app): State<AppState>,
    Resolved(row): Resolved<LlmConnectionRow>,
) -> Result<Json<LlmConnection>, ApiError> {
    let shown = Shown::load(&app, row.org_id).await?;
    Ok(Json(shown.connection(&row)?))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateLlmConnection>,
) -> Result<(StatusCode, Json<LlmConnection>), ApiError> {
    let row = create_llm_connection(&app, &caller, body).await?;
    let shown = Shown::load(&app, row.org_id).await?;
    Ok((StatusCode::CREATED, Json(shown.connection(&row)?)))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(row): Resolved<LlmConnectionRow>,
    ApiJson(body): ApiJson<UpdateLlmConnection>,
) -> Result<Json<LlmConnection>, ApiError> {
    let row = update_llm_connection(&app, &caller, row, body).await?;
    let shown = Shown::load(&app, row.org_id).await?;
    Ok(Json(shown.connection(&row)?))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(row): Resolved<LlmConnectionRow>,
) -> Result<StatusCode, ApiError> {
    delete_llm_connection(&app, &caller, &row).await?;
    Ok(StatusCode::NO_CONTENT)
}
