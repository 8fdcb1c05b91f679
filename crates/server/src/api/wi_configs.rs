//! `/api/v1/workload-identity-configs`: the cloud side of one federated identity, as the API
//! shows it (automations by name, the computed audience).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::AutomationId;
use keyward_core::api::v1::{
    CreateWorkloadIdentityConfig, UpdateWorkloadIdentityConfig, WorkloadIdentityConfig,
};
use keyward_core::workload::WorkloadIdentity;
use keyward_store::WiConfigRow;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::automation_names;
use crate::domain::wi_configs::{
    CloudFields, create_wi_config, delete_wi_config, find_wi_config, identity_of, list_wi_configs,
    subject_mode, update_wi_config,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn config_wire(
    row: &WiConfigRow,
    names: &BTreeMap<AutomationId, String>,
) -> Result<WorkloadIdentityConfig, ApiError> {
    let identity = identity_of(row)?;
    let fields = CloudFields::of(&identity);
    let project_number = match &identity {
        WorkloadIdentity::Gcp { provider } => Some(provider.project_number.clone()),
        _ => None,
    };
    Ok(WorkloadIdentityConfig {
        id: row.id,
        name: row.name.clone(),
        cloud: row.cloud.clone(),
        provider: fields.provider,
        project_number,
        tenant_id: fields.tenant_id,
        client_id: fields.client_id,
        role_arn: fields.role_arn,
        region: fields.region,
        audience: identity.audience().to_string(),
        default_for_cloud: row.default_for_cloud,
        automations: row
            .automations
            .iter()
            .filter_map(|a| names.get(a).cloned())
            .collect(),
        subject: subject_mode(row)?.to_string(),
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    })
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkloadIdentityConfig>>, ApiError> {
    let org = caller.org()?.id;
    let names = automation_names(&app, org).await?;
    let rows = list_wi_configs(&app, &caller).await?;
    Ok(Json(
        rows.iter()
            .map(|r| config_wire(r, &names))
            .collect::<Result<_, _>>()?,
    ))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkloadIdentityConfig>, ApiError> {
    let org = caller.org()?.id;
    let row = find_wi_config(&app, org, &id).await?;
    Ok(Json(config_wire(
        &row,
        &automation_names(&app, org).await?,
    )?))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkloadIdentityConfig>,
) -> Result<(StatusCode, Json<WorkloadIdentityConfig>), ApiError> {
    let row = create_wi_config(&app, &caller, body).await?;
    let names = automation_names(&app, row.org_id).await?;
    Ok((StatusCode::CREATED, Json(config_wire(&row, &names)?)))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWorkloadIdentityConfig>,
) -> Result<Json<WorkloadIdentityConfig>, ApiError> {
    let row = update_wi_config(&app, &caller, &id, body).await?;
    let names = automation_names(&app, row.org_id).await?;
    Ok(Json(config_wire(&row, &names)?))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_wi_config(&app, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
