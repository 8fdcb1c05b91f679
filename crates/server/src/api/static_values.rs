//! `POST /automations/{id}/redeploy`: static-backed values resolved anew (see
//! `domain::static_values`).

use axum::Json;
use axum::extract::State;
use keyward_store::AutomationRow;
use serde_json::{Value, json};

use crate::caller::{Caller, Resolved};
use crate::domain::static_values::redeploy as resolve_again;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn redeploy(
    State(app): State<AppState>,
    caller: Caller,
    Resolved(automation): Resolved<AutomationRow>,
) -> Result<Json<Value>, ApiError> {
    let keys = resolve_again(&app, &caller, &automation).await?;
    Ok(Json(
        json!({"automation": automation.name, "static_values_resolved": keys}),
    ))
}
