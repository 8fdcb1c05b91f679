//! Members of an organization and their roles. Adding someone needs an existing Keyward account
//! (they signed in once, or the local identity provider created them); inviting people who have
//! none is the invitation flow's job — see [`add`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::api::rbac::{AddMember, Member, SetMemberRole};
use keyward_core::permission::RoleGrants;
use keyward_core::{OrgId, UserId};
use keyward_store::{MemberRow, RoleRow, StoreError};
use serde_json::json;

use super::roles;
use crate::audit::kind;
use crate::caller::Caller;
use crate::clock::{self, to_datetime};
use crate::error::{ApiError, ApiJson};
use crate::rbac::role_grants;
use crate::state::AppState;

fn wire(row: &MemberRow) -> Member {
    Member {
        user_id: row.user.id,
        email: row.user.email.clone(),
        role: row.role.clone(),
        joined_at: to_datetime(row.joined_at),
    }
}

/// `{user_id}` is the member's user UUID or email.
async fn find(
    app: &AppState,
    org: OrgId,
    id_or_email: &str,
) -> Result<(MemberRow, Vec<MemberRow>), ApiError> {
    let all = app.store.list_members(org).await?;
    let id: Option<UserId> = id_or_email.parse().ok();
    let found = all
        .iter()
        .find(|m| Some(m.user.id) == id || m.user.email.eq_ignore_ascii_case(id_or_email))
        .cloned()
        .ok_or(ApiError::not_found("member"))?;
    Ok((found, all))
}

/// The role a request names (name or id), as a 400 on `role` when the organization has none.
pub(crate) async fn role(app: &AppState, org: OrgId, name: &str) -> Result<RoleRow, ApiError> {
    roles::find(app, org, name)
        .await
        .map_err(super::unknown_reference("role", "role", name))
}

/// Nobody hands out, or takes away, a role that grants more than their own (only an Owner
/// makes or unmakes an Owner).
pub(crate) fn check_may_assign(
    caller: &Caller,
    role: &RoleRow,
    verb: &str,
) -> Result<(), ApiError> {
    let mine = &caller.org()?.role;
    if mine.covers(&role_grants(role)?) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "role_escalation",
        message: format!(
            "you cannot {verb} role '{}': it grants more than your role '{}' holds; ask an owner",
            role.name, mine.name
        ),
    })
}

fn last_owner(member: &MemberRow, all: &[MemberRow]) -> bool {
    member.role == RoleGrants::OWNER
        && all.iter().filter(|m| m.role == RoleGrants::OWNER).count() == 1
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Member>>, ApiError> {
    let rows = app.store.list_members(caller.org()?.id).await?;
    Ok(Json(rows.iter().map(wire).collect()))
}

/// Adds an existing account. The seam for invitations: a person without an account gets a 404
/// naming the email; an invitation flow would create a pending invitation at that point.
pub async fn add(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let org = caller.org()?.id;
    let email = body.email.trim();
    let role = role(
        &app,
        org,
        body.role.as_deref().unwrap_or(RoleGrants::MEMBER),
    )
    .await?;
    check_may_assign(&caller, &role, "grant")?;
    let user = app.store.find_user_by_email(email).await?.ok_or_else(|| {
        ApiError::invalid(
            "email",
            format!(
                "no Keyward account has the email '{email}': the person signs in once (SSO or `keyward login`) before being added"
            ),
        )
    })?;
    let now = clock::now();
    app.store
        .add_member(org, user.id, &role.name, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::Conflict {
                field: "email",
                message: format!(
                    "{email} is already a member; change their role with PATCH /api/v1/members/{}",
                    user.id
                ),
            },
            other => other.into(),
        })?;
    app.audit
        .record(
            kind::MEMBER_ADDED,
            Some(org),
            &caller.actor(),
            json!({"user_id": user.id, "email": user.email, "role": role.name}),
        )
        .await?;
    let row = MemberRow {
        user,
        role: role.name,
        joined_at: now,
    };
    Ok((StatusCode::CREATED, Json(wire(&row))))
}

pub async fn set_role(
    State(app): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<SetMemberRole>,
) -> Result<Json<Member>, ApiError> {
    let org = caller.org()?.id;
    let (mut member, all) = find(&app, org, &user_id).await?;
    let new_role = role(&app, org, &body.role).await?;
    if let Some(current) = app.store.find_role_by_name(org, &member.role).await? {
        check_may_assign(&caller, &current, "take away")?;
    }
    check_may_assign(&caller, &new_role, "grant")?;
    if new_role.name != member.role && last_owner(&member, &all) {
        return Err(ApiError::Conflict {
            field: "role",
            message: format!(
                "{} is the organization's last owner; make someone else owner first",
                member.user.email
            ),
        });
    }
    app.store
        .set_member_role(org, member.user.id, &new_role.name)
        .await?;
    app.audit
        .record(
            kind::MEMBER_ROLE_CHANGED,
            Some(org),
            &caller.actor(),
            json!({"user_id": member.user.id, "email": member.user.email,
                   "from": member.role, "to": new_role.name}),
        )
        .await?;
    member.role = new_role.name;
    Ok(Json(wire(&member)))
}

pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let org = caller.org()?.id;
    let (member, all) = find(&app, org, &user_id).await?;
    if let Some(current) = app.store.find_role_by_name(org, &member.role).await? {
        check_may_assign(&caller, &current, "take away")?;
    }
    if last_owner(&member, &all) {
        return Err(ApiError::Conflict {
            field: "user_id",
            message: format!(
                "{} is the organization's last owner and cannot be removed; make someone else owner first",
                member.user.email
            ),
        });
    }
    app.store.remove_member(org, member.user.id).await?;
    app.audit
        .record(
            kind::MEMBER_REMOVED,
            Some(org),
            &caller.actor(),
            json!({"user_id": member.user.id, "email": member.user.email, "role": member.role}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use keyward_store::UserRow;

    use super::*;

    fn member(email: &str, role: &str) -> MemberRow {
        MemberRow {
            user: UserRow {
                id: UserId::new_random(),
                email: email.into(),
                created_at: 0,
            },
            role: role.into(),
            joined_at: 0,
        }
    }

    #[test]
    fn only_the_sole_owner_is_the_last_owner() {
        let a = member("a@x", "owner");
        let b = member("b@x", "member");
        assert!(last_owner(&a, &[a.clone(), b.clone()]));
        assert!(!last_owner(&b, &[a.clone(), b.clone()]));
        let c = member("c@x", "owner");
        assert!(!last_owner(&a, &[a.clone(), b, c]));
    }
}
