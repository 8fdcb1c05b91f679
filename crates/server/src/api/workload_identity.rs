//! `POST /api/v1/workload-identity/token`: an automation asks for a short-lived OIDC token for
//! one cloud audience.

use axum::Json;
use axum::extract::State;
use keyward_core::api::v1::{MintRequest, MintResponse};

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::minting::mint as mint_token;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub async fn mint(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MintRequest>,
) -> Result<Json<MintResponse>, ApiError> {
    let (token, claims) = mint_token(&app, &caller, body).await?;
    Ok(Json(MintResponse {
        token,
        expires_at: to_datetime(claims.exp),
        audience: claims.aud,
    }))
}
