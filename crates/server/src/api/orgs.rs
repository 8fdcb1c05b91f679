//! Organizations the caller belongs to, and creating one (the caller becomes its owner).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{CreateOrg, Org};
use keyward_store::Membership;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::orgs::{create_org, membership_of};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn org_wire(m: &Membership) -> Org {
    Org {
        uuid: m.org.id,
        name: m.org.name.clone(),
        role: m.role.clone(),
        created_at: to_datetime(m.org.created_at),
    }
}

pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Vec<Org>>, ApiError> {
    let memberships = app.store.memberships(caller.user()?).await?;
    Ok(Json(memberships.iter().map(org_wire).collect()))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(org_wire(&membership_of(&app, &caller, &uuid).await?)))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    let membership = create_org(&app, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(org_wire(&membership))))
}
