//! Members of an organization and their roles. Adding someone needs an existing Keyward account;
//! nobody hands out or takes away a role stronger than their own, and the last owner stays.

use keyward_core::api::rbac::{AddMember, SetMemberRole};
use keyward_core::permission::RoleGrants;
use keyward_core::{OrgId, UserId};
use keyward_store::{MemberRow, RoleRow, StoreError};
use serde_json::json;

use super::roles::{find_role, role_grants};
use super::unknown_reference;
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `{user_id}` is the member's user UUID or email; with every member, for the last-owner rule.
async fn find_member(
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

/// Everyone in the caller's organization, with their roles.
pub(crate) async fn list_members(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<MemberRow>, ApiError> {
    Ok(app.store.list_members(caller.org()?.id).await?)
}

/// The role a request names (name or id), as a 400 on `role` when the organization has none.
pub(crate) async fn named_role(
    app: &AppState,
    org: OrgId,
    name: &str,
) -> Result<RoleRow, ApiError> {
    find_role(app, org, name)
        .await
        .map_err(unknown_reference("role", "role", name))
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

/// Adds an existing account. The seam for invitations: a person without an account gets a 400
/// naming the email; the invitation flow creates a pending invitation instead.
pub(crate) async fn add_member(
    app: &AppState,
    caller: &Caller,
    body: AddMember,
) -> Result<MemberRow, ApiError> {
    let org = caller.org()?.id;
    let email = body.email.trim();
    let role = named_role(app, org, body.role.as_deref().unwrap_or(RoleGrants::MEMBER)).await?;
    check_may_assign(caller, &role, "grant")?;
    let user = app.store.find_user_by_email(email).await?.ok_or_else(|| {
        ApiError::invalid(
            "email",
            format!(
                "no Keyward account has the email '{email}': the person signs in once (SSO or `keyward login`) before being added"
            ),
        )
    })?;
    let now = caller.now;
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
    Ok(MemberRow {
        user,
        role: role.name,
        joined_at: now,
    })
}

pub(crate) async fn set_member_role(
    app: &AppState,
    caller: &Caller,
    user_id: &str,
    body: SetMemberRole,
) -> Result<MemberRow, ApiError> {
    let org = caller.org()?.id;
    let (mut member, all) = find_member(app, org, user_id).await?;
    let new_role = named_role(app, org, &body.role).await?;
    if let Some(current) = app.store.find_role_by_name(org, &member.role).await? {
        check_may_assign(caller, &current, "take away")?;
    }
    check_may_assign(caller, &new_role, "grant")?;
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
    Ok(member)
}

pub(crate) async fn remove_member(
    app: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<(), ApiError> {
    let org = caller.org()?.id;
    let (member, all) = find_member(app, org, user_id).await?;
    if let Some(current) = app.store.find_role_by_name(org, &member.role).await? {
        check_may_assign(caller, &current, "take away")?;
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
    Ok(())
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
