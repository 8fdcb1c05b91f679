//! Automations (deployed crews and flows) and their tokens. `{id}` routes get the automation
//! the permission check resolved.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{
    Automation, CreateAutomation, CreateToken, TokenCreated, TokenInfo, UpdateAutomation,
};
use keyward_store::AutomationRow;

use super::token_info;
use crate::caller::{Caller, Resolved};
use crate::clock::to_datetime;
use crate::domain::automations::{
    create_automation, delete_automation, list_automations, update_automation,
};
use crate::domain::tokens::{
    create_automation_token, list_automation_tokens, revoke_automation_token,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn automation_wire(row: &AutomationRow) -> Automation {
    Automation {
        id: row.id,
        name: row.name.clone(),
        description: row.description.clone(),
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Automation>>, ApiError> {
    // Private automations are absent for callers they are not shared with.
    let rows = list_automations(&app, &caller).await?;
    Ok(Json(rows.iter().map(automation_wire).collect()))
}

pub async fn get(Resolved(row): Resolved<AutomationRow>) -> Json<Automation> {
    Json(automation_wire(&row))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAutomation>,
) -> Result<(StatusCode, Json<Automation>), ApiError> {
    let row = create_automation(&app, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(automation_wire(&row))))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(row): Resolved<AutomationRow>,
    ApiJson(body): ApiJson<UpdateAutomation>,
) -> Result<Json<Automation>, ApiError> {
    let row = update_automation(&app, &caller, row, body).await?;
    Ok(Json(automation_wire(&row)))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(row): Resolved<AutomationRow>,
) -> Result<StatusCode, ApiError> {
    delete_automation(&app, &caller, &row).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_tokens(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let rows = list_automation_tokens(&app, &caller, &automation).await?;
    Ok(Json(rows.iter().map(token_info).collect()))
}

pub async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let (row, token) = create_automation_token(&app, &caller, &automation, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: token_info(&row),
            token,
        }),
    ))
}

pub async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
    Path((_, token_id)): Path<(String, String)>,
) -> Result<Json<TokenInfo>, ApiError> {
    let row = revoke_automation_token(&app, &caller, &automation, &token_id).await?;
    Ok(Json(token_info(&row)))
}
