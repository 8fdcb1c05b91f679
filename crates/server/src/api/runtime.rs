//! `POST /api/v1/runtime/kickoff`: the kickoff plan for the calling automation (SPEC §5 step 1).

use axum::Json;
use axum::extract::State;
use keyward_core::api::v1::KickoffPlan;

use crate::caller::Caller;
use crate::domain::kickoff::plan;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn kickoff(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<KickoffPlan>, ApiError> {
    Ok(Json(plan(&app, &caller).await?))
}
