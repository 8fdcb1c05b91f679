//! Entity permissions (SPEC §8): an automation's visibility, whitelist and grants, and the
//! access lists of environment variables and LLM connections. Each route gets the entity its
//! permission check resolved.

use axum::Json;
use axum::extract::State;
use keyward_core::api::rbac::{AutomationPermissions, EntityAccess};
use keyward_store::{AutomationRow, EnvVarRow, LlmConnectionRow};

use crate::caller::{Caller, Resolved};
use crate::domain::permissions::{
    automation_permissions_of, connection_access, env_var_access, set_automation_permissions,
    set_connection_access, set_env_var_access,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub async fn get_automation(
    State(app): State<AppState>,
    Resolved(automation): Resolved<AutomationRow>,
) -> Result<Json<AutomationPermissions>, ApiError> {
    Ok(Json(automation_permissions_of(&app, &automation).await?))
}

pub async fn set_automation(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
    ApiJson(body): ApiJson<AutomationPermissions>,
) -> Result<Json<AutomationPermissions>, ApiError> {
    Ok(Json(
        set_automation_permissions(&app, &caller, &automation, body).await?,
    ))
}

pub async fn get_env_var(
    State(app): State<AppState>,
    Resolved(var): Resolved<EnvVarRow>,
) -> Result<Json<EntityAccess>, ApiError> {
    Ok(Json(env_var_access(&app, &var).await?))
}

pub async fn set_env_var(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(var): Resolved<EnvVarRow>,
    ApiJson(body): ApiJson<EntityAccess>,
) -> Result<Json<EntityAccess>, ApiError> {
    Ok(Json(set_env_var_access(&app, &caller, &var, body).await?))
}

pub async fn get_llm_connection(
    State(app): State<AppState>,
    Resolved(conn): Resolved<LlmConnectionRow>,
) -> Result<Json<EntityAccess>, ApiError> {
    Ok(Json(connection_access(&app, &conn).await?))
}

pub async fn set_llm_connection(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(conn): Resolved<LlmConnectionRow>,
    ApiJson(body): ApiJson<EntityAccess>,
) -> Result<Json<EntityAccess>, ApiError> {
    Ok(Json(
        set_connection_access(&app, &caller, &conn, body).await?,
    ))
}
