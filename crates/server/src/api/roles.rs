//! `/api/v1/roles`: the organization's roles, with how many members hold each.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use keyward_core::Feature;
use keyward_core::api::rbac::{CreateRole, Role, UpdateRole};
use keyward_store::RoleRow;
use serde::Deserialize;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::roles::{
    counted, create_role, delete_role, find_role, list_roles, role_grants, update_role,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn role_wire((row, members): (RoleRow, usize)) -> Result<Role, ApiError> {
    let grants = role_grants(&row)?;
    Ok(Role {
        id: row.id,
        name: row.name,
        description: row.description,
        predefined: row.predefined,
        unrestricted: grants.is_owner(),
        grants: Feature::ALL
            .iter()
            .map(|f| (*f, grants.level(*f)))
            .collect(),
        members,
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    })
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Role>>, ApiError> {
    let rows = list_roles(&app, &caller).await?;
    rows.into_iter()
        .map(role_wire)
        .collect::<Result<_, _>>()
        .map(Json)
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Role>, ApiError> {
    let org = caller.org()?.id;
    let row = find_role(&app, org, &id).await?;
    Ok(Json(role_wire(counted(&app, org, row).await?)?))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<(StatusCode, Json<Role>), ApiError> {
    let row = create_role(&app, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(role_wire((row, 0))?)))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> Result<Json<Role>, ApiError> {
    let row = update_role(&app, &caller, &id, body).await?;
    Ok(Json(role_wire(
        counted(&app, caller.org()?.id, row).await?,
    )?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Moves the role's members to this role (name or id) before deleting it.
    pub reassign_to: Option<String>,
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid {
        code: "invalid_query",
        message: format!(
            "{}; the only parameter is ?reassign_to=<role>",
            e.body_text()
        ),
        field: None,
    })?;
    delete_role(&app, &caller, &id, query.reassign_to.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
