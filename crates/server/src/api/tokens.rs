//! Personal access tokens: a person's own bearer tokens for the API and CLI.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{CreateToken, TokenCreated, TokenInfo};
use keyward_core::{TokenId, UserId, names};
use keyward_store::{TokenKind, TokenRow, secret};
use serde_json::json;

use super::token_info;
use crate::audit::kind;
use crate::auth::Caller;
use crate::clock;
use crate::error::{ApiError, ApiJson, or_not_found};
use crate::state::AppState;

/// Longest lifetime a token may be given (ten years); absent means no expiry.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

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
    let user = caller.user()?;
    let (row, token) = new_token(TokenKind::Personal, &body, Some(user), None, None)?;
    app.store.insert_token(&row).await?;
    app.audit
        .record(
            kind::PERSONAL_TOKEN_CREATED,
            None,
            &caller.actor(),
            json!({"token_id": row.id, "name": row.name, "prefix": row.prefix, "expires_at": row.expires_at}),
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

pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("token"))?;
    let row = app
        .store
        .revoke_personal_token(caller.user()?, id, clock::now())
        .await
        .map_err(or_not_found("token"))?;
    app.audit
        .record(
            kind::PERSONAL_TOKEN_REVOKED,
            None,
            &caller.actor(),
            json!({"token_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(Json(token_info(&row)))
}

/// Validates a creation request and makes the record and the secret (shown once).
pub(crate) fn new_token(
    kind: TokenKind,
    body: &CreateToken,
    user: Option<UserId>,
    org: Option<keyward_core::OrgId>,
    automation: Option<keyward_core::AutomationId>,
) -> Result<(TokenRow, String), ApiError> {
    names::validate_display_name("name", &body.name)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    if let Some(secs) = body.expires_in
        && (secs == 0 || secs > MAX_EXPIRES_IN)
    {
        return Err(ApiError::invalid(
            "expires_in",
            format!(
                "expires_in is in seconds and must be between 1 and {MAX_EXPIRES_IN}; omit it for a token that does not expire"
            ),
        ));
    }
    let prefix = match kind {
        TokenKind::Personal => secret::PERSONAL_PREFIX,
        TokenKind::Automation => secret::AUTOMATION_PREFIX,
    };
    let token =
        secret::generate_token(prefix).ok_or_else(|| ApiError::internal("system RNG failed"))?;
    let now = clock::now();
    let row = TokenRow {
        id: TokenId::new_random(),
        kind,
        hash: secret::hash_token(&token),
        prefix: secret::display_prefix(&token),
        name: body.name.trim().to_owned(),
        user_id: user,
        org_id: org,
        automation_id: automation,
        created_at: now,
        expires_at: body.expires_in.map(|s| now + s as i64),
        revoked_at: None,
    };
    Ok((row, token))
}
