//! `POST /api/v1/runtime/kickoff`: the kickoff plan for the calling automation (SPEC §5 step 1).

use axum::Json;
use axum::extract::State;
use keyward_core::api::v1::{KickoffPlan, KickoffValue};

use crate::caller::Caller;
use crate::domain::kickoff::plan;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn kickoff(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<KickoffPlan>, ApiError> {
    let result = plan(&app, &caller).await;
    count(&result);
    Ok(Json(result?))
}

/// `keyward_kickoffs_total{result}` and `keyward_kickoff_failures_total{cause}`: a plan handed
/// out with variables it could not resolve is a kickoff whose crew will miss them, so it counts
/// apart from a clean one. Refusals before the handler (a bad token) are in the HTTP metrics.
fn count(result: &Result<KickoffPlan, ApiError>) {
    let (outcome, causes): (&str, Vec<&str>) = match result {
        Ok(plan) => {
            let unresolved = plan
                .env
                .iter()
                .filter(|v| matches!(v.value, KickoffValue::Unresolved { .. }))
                .count();
            let withheld = plan.withheld.len();
            let causes = [("unresolved_value", unresolved), ("reserved_key", withheld)]
                .into_iter()
                .flat_map(|(cause, n)| std::iter::repeat_n(cause, n))
                .collect::<Vec<_>>();
            (if causes.is_empty() { "ok" } else { "partial" }, causes)
        }
        Err(e) => ("error", vec![e.code()]),
    };
    metrics::counter!("keyward_kickoffs_total", "result" => outcome).increment(1);
    for cause in causes {
        metrics::counter!("keyward_kickoff_failures_total", "cause" => cause).increment(1);
    }
}
