//! Organizations the caller belongs to, and creating one (the caller becomes its owner).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::v1::{CreateOrg, Org};
use keyward_core::permission::RoleGrants;
use keyward_core::{OrgId, names};
use keyward_store::{Membership, OrgRow};
use serde_json::json;

use crate::audit::kind;
use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn org(m: &Membership) -> Org {
    Org {
        uuid: m.org.id,
        name: m.org.name.clone(),
        role: m.role.clone(),
        created_at: to_datetime(m.org.created_at),
    }
}

pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Vec<Org>>, ApiError> {
    let memberships = app.store.memberships(caller.user()?).await?;
    Ok(Json(memberships.iter().map(org).collect()))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> Result<Json<Org>, ApiError> {
    let id: OrgId = uuid
        .parse()
        .map_err(|_| ApiError::not_found("organization"))?;
    let membership = app
        .store
        .membership(id, caller.user()?)
        .await?
        .ok_or(ApiError::not_found("organization"))?;
    Ok(Json(org(&membership)))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    names::validate_display_name("name", &body.name)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    let user = caller.user()?;
    let row = OrgRow {
        id: OrgId::new_random(),
        name: body.name.trim().to_owned(),
        created_at: caller.now,
    };
    app.store.create_org(&row, user, RoleGrants::OWNER).await?;
    app.audit
        .record(
            kind::ORG_CREATED,
            Some(row.id),
            &caller.actor(),
            json!({"name": row.name}),
        )
        .await?;
    let membership = Membership {
        org: row,
        role: RoleGrants::OWNER.to_owned(),
    };
    Ok((StatusCode::CREATED, Json(org(&membership))))
}
