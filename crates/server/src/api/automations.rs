//! Automations (deployed crews and flows) and their tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{
    Automation, CreateAutomation, CreateToken, TokenCreated, TokenInfo, UpdateAutomation,
};
use keyward_core::{AutomationId, OrgId, TokenId, names};
use keyward_store::{AutomationRow, StoreError, TokenKind};
use serde_json::json;

use super::token_info;
use super::tokens::new_token;
use crate::audit::kind;
use crate::caller::Caller;
use crate::clock::{self, to_datetime};
use crate::error::{ApiError, ApiJson, or_not_found};
use crate::state::AppState;

const MAX_DESCRIPTION: usize = 2000;

fn wire(row: &AutomationRow) -> Automation {
    Automation {
        id: row.id,
        name: row.name.clone(),
        description: row.description.clone(),
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    }
}

/// `{id}` in a path is the automation's UUID or its name.
pub(crate) async fn find(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<AutomationRow, ApiError> {
    super::by_id_or_name(
        id_or_name,
        "automation",
        |id: AutomationId| app.store.get_automation(org, id),
        |name| async move { app.store.find_automation_by_name(org, &name).await },
    )
    .await
}

fn check_name(name: &str) -> Result<(), ApiError> {
    names::validate_slug("name", name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid(
            "description",
            format!("description is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

fn name_taken(e: StoreError, name: &str) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            field: "name",
            message: format!("an automation named '{name}' already exists in this organization"),
        },
        other => other.into(),
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Automation>>, ApiError> {
    let rows = app.store.list_automations(caller.org()?.id).await?;
    // Private automations are absent for callers they are not shared with.
    let rows = crate::rbac::visible_automations(&app, &caller, rows).await?;
    Ok(Json(rows.iter().map(wire).collect()))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Automation>, ApiError> {
    Ok(Json(wire(&find(&app, caller.org()?.id, &id).await?)))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAutomation>,
) -> Result<(StatusCode, Json<Automation>), ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let description = body.description.unwrap_or_default();
    check_description(&description)?;
    let now = clock::now();
    let row = AutomationRow {
        id: AutomationId::new_random(),
        org_id: org,
        name: body.name,
        description,
        created_at: now,
        updated_at: now,
    };
    app.store
        .create_automation(&row)
        .await
        .map_err(|e| name_taken(e, &row.name))?;
    app.audit
        .record(
            kind::AUTOMATION_CREATED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": row.id, "name": row.name}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(wire(&row))))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateAutomation>,
) -> Result<Json<Automation>, ApiError> {
    let org = caller.org()?.id;
    let mut row = find(&app, org, &id).await?;
    if let Some(name) = body.name {
        check_name(&name)?;
        row.name = name;
    }
    if let Some(description) = body.description {
        check_description(&description)?;
        row.description = description;
    }
    row.updated_at = clock::now();
    app.store
        .update_automation(&row)
        .await
        .map_err(|e| name_taken(e, &row.name))?;
    app.audit
        .record(
            kind::AUTOMATION_UPDATED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(Json(wire(&row)))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    // Its tokens go with it (ON DELETE CASCADE), so they stop working at once.
    app.store
        .delete_automation(org, row.id)
        .await
        .map_err(or_not_found("automation"))?;
    app.audit
        .record(
            kind::AUTOMATION_DELETED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_tokens(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let org = caller.org()?.id;
    let automation = find(&app, org, &id).await?;
    let rows = app.store.list_automation_tokens(org, automation.id).await?;
    Ok(Json(rows.iter().map(token_info).collect()))
}

pub async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let org = caller.org()?.id;
    let automation = find(&app, org, &id).await?;
    let (row, token) = new_token(
        TokenKind::Automation,
        &body,
        None,
        Some(org),
        Some(automation.id),
    )?;
    app.store.insert_token(&row).await?;
    app.audit
        .record(
            kind::AUTOMATION_TOKEN_CREATED,
            Some(org),
            &caller.actor(),
            json!({
                "automation_id": automation.id,
                "automation": automation.name,
                "token_id": row.id,
                "name": row.name,
                "prefix": row.prefix,
                "expires_at": row.expires_at,
            }),
        )
        .await?;
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
    Path((id, token_id)): Path<(String, String)>,
) -> Result<Json<TokenInfo>, ApiError> {
    let org = caller.org()?.id;
    let automation = find(&app, org, &id).await?;
    let token_id: TokenId = token_id.parse().map_err(|_| ApiError::not_found("token"))?;
    let row = app
        .store
        .revoke_automation_token(org, automation.id, token_id, clock::now())
        .await
        .map_err(or_not_found("token"))?;
    app.audit
        .record(
            kind::AUTOMATION_TOKEN_REVOKED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": automation.id, "automation": automation.name, "token_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(Json(token_info(&row)))
}

/// The additional data a resolved static value is sealed with: bound to its automation and variable.
pub(crate) fn resolved_aad(automation: AutomationId, var: keyward_core::EnvVarId) -> Vec<u8> {
    keyward_store::crypto::Aad::Resolved { automation, var }.bytes()
}
