//! Members of an organization and their roles. Adding someone needs an existing Keyward account
//! (they signed in once, or the local identity provider created them); inviting people who have
//! none is the invitation flow's job — see [`add`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::rbac::{AddMember, Member, SetMemberRole};
use keyward_store::MemberRow;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::members::{add_member, remove_member, set_member_role};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

// The invitation flow names and checks roles as adding a member does.

fn member_wire(row: &MemberRow) -> Member {
    Member {
        user_id: row.user.id,
        email: row.user.email.clone(),
        role: row.role.clone(),
        joined_at: to_datetime(row.joined_at),
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Member>>, ApiError> {
    let rows = app.store.list_members(caller.org()?.id).await?;
    Ok(Json(rows.iter().map(member_wire).collect()))
}

/// Adds an existing account. The seam for invitations: a person without an account gets a 400
/// naming the email; an invitation flow creates a pending invitation at that point.
pub async fn add(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let row = add_member(&app, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(member_wire(&row))))
}

pub async fn set_role(
    State(app): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<SetMemberRole>,
) -> Result<Json<Member>, ApiError> {
    let row = set_member_role(&app, &caller, &user_id, body).await?;
    Ok(Json(member_wire(&row)))
}

pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove_member(&app, &caller, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
