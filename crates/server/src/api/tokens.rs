//! Personal access tokens: a person's own bearer tokens for the API and CLI.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{CreateToken, TokenCreated, TokenInfo};

use super::token_info;
use crate::caller::Caller;
use crate::domain::tokens::{create_personal_token, revoke_personal_token};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let rows = app.store.list_personal_tokens(caller.user()?).await?;
    Ok(Json(rows.iter().map(token_info).collect()))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let (row, token) = create_personal_token(&app, &caller, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: token_info(&row),
            token,
        }),
    ))
}

pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let row = revoke_personal_token(&app, &caller, &id).await?;
    Ok(Json(token_info(&row)))
}
