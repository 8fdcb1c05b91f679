//! `/api/v1/environment-variables` and an automation's assigned variables, as the API shows
//! them: secret values masked, the credential by name. `{id}` routes get the variable (or the
//! automation) the permission check resolved.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::SecretProviderId;
use keyward_core::api::v1::{
    AssignEnvironmentVariables, CreateEnvironmentVariable, EnvironmentVariable,
    UpdateEnvironmentVariable,
};
use keyward_store::{AutomationRow, EnvVarRow};

use crate::caller::{Caller, Resolved};
use crate::clock::to_datetime;
use crate::domain::credential_names;
use crate::domain::env_vars::{
    assign as assign_vars, assigned_env_vars, create_env_var, delete_env_var, list_env_vars,
    update_env_var,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

/// What a masked value reads as.
pub const MASK: &str = "********";

fn env_var_wire(
    row: &EnvVarRow,
    credentials: &BTreeMap<SecretProviderId, String>,
) -> EnvironmentVariable {
    EnvironmentVariable {
        id: row.id,
        key: row.key.clone(),
        source: row.source.clone(),
        provider: row.provider.clone(),
        credential: row.credential_id.and_then(|c| credentials.get(&c).cloned()),
        secret_name: row.secret_name.clone(),
        secret: row.secret,
        value: match (&row.value, &row.sealed_value) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(_)) => Some(MASK.into()),
            (None, None) => None,
        },
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    }
}

/// The rows on the wire, with credentials by name.
async fn shown(
    app: &AppState,
    org: keyward_core::OrgId,
    rows: &[EnvVarRow],
) -> Result<Vec<EnvironmentVariable>, ApiError> {
    let names = credential_names(app, org).await?;
    Ok(rows.iter().map(|r| env_var_wire(r, &names)).collect())
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<EnvironmentVariable>>, ApiError> {
    let org = caller.org()?.id;
    // Variables with an access list that does not name the caller are absent.
    let rows = list_env_vars(&app, &caller).await?;
    Ok(Json(shown(&app, org, &rows).await?))
}

pub async fn get(
    State(app): State<AppState>,
    Resolved(row): Resolved<EnvVarRow>,
) -> Result<Json<EnvironmentVariable>, ApiError> {
    let names = credential_names(&app, row.org_id).await?;
    Ok(Json(env_var_wire(&row, &names)))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateEnvironmentVariable>,
) -> Result<(StatusCode, Json<EnvironmentVariable>), ApiError> {
    let row = create_env_var(&app, &caller, body).await?;
    let names = credential_names(&app, row.org_id).await?;
    Ok((StatusCode::CREATED, Json(env_var_wire(&row, &names))))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(row): Resolved<EnvVarRow>,
    ApiJson(body): ApiJson<UpdateEnvironmentVariable>,
) -> Result<Json<EnvironmentVariable>, ApiError> {
    let row = update_env_var(&app, &caller, row, body).await?;
    let names = credential_names(&app, row.org_id).await?;
    Ok(Json(env_var_wire(&row, &names)))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(row): Resolved<EnvVarRow>,
) -> Result<StatusCode, ApiError> {
    delete_env_var(&app, &caller, &row).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /automations/{id}/environment-variables`: the assigned variables, masked as everywhere.
pub async fn list_assigned(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
) -> Result<Json<Vec<EnvironmentVariable>>, ApiError> {
    let rows = assigned_env_vars(&app, &caller, &automation).await?;
    Ok(Json(shown(&app, automation.org_id, &rows).await?))
}

/// `PUT /automations/{id}/environment-variables`: replaces the assignment.
pub async fn assign(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
    ApiJson(body): ApiJson<AssignEnvironmentVariables>,
) -> Result<Json<Vec<EnvironmentVariable>>, ApiError> {
    let rows = assign_vars(&app, &caller, &automation, body).await?;
    Ok(Json(shown(&app, automation.org_id, &rows).await?))
}
