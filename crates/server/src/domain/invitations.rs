//! Pending invitations of an organization: listed (who was invited, as what, by whom, until
//! when) and revoked. A revoked invitation is deleted, so its link opens nothing. Creating one
//! and accepting it are in `people/invitations.rs`, next to the link's secret.

use std::collections::BTreeMap;

use keyward_core::UserId;
use keyward_store::InvitationRow;
use serde::Serialize;
use serde_json::json;

use crate::audit::kind;
use crate::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;

/// An invitation not yet accepted and not expired. Never the link or its hash.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PendingInvitation {
    pub id: String,
    pub email: String,
    pub role: String,
    /// The inviter's email; `null` when that account is gone.
    pub invited_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

fn view(row: &InvitationRow, emails: &BTreeMap<UserId, String>) -> PendingInvitation {
    PendingInvitation {
        id: row.id.clone(),
        email: row.email.clone(),
        role: row.role.clone(),
        invited_by: row.invited_by.and_then(|u| emails.get(&u).cloned()),
        created_at: clock::rfc3339(row.created_at),
        expires_at: clock::rfc3339(row.expires_at),
    }
}

/// The inviters' emails. Members of the organization mostly; someone removed since is looked up
/// by id (the account may be gone altogether).
async fn inviter_emails(
    app: &AppState,
    org: keyward_core::OrgId,
    rows: &[InvitationRow],
) -> Result<BTreeMap<UserId, String>, ApiError> {
    let mut emails: BTreeMap<UserId, String> = app
        .store
        .list_members(org)
        .await?
        .into_iter()
        .map(|m| (m.user.id, m.user.email))
        .collect();
    for user in rows.iter().filter_map(|r| r.invited_by) {
        if emails.contains_key(&user) {
            continue;
        }
        if let Ok(found) = app.store.get_user(user).await {
            emails.insert(user, found.email);
        }
    }
    Ok(emails)
}

/// The caller's organization's pending invitations, oldest first.
pub(crate) async fn list_pending(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<PendingInvitation>, ApiError> {
    let org = caller.org()?.id;
    let rows = app.store.pending_invitations(org, caller.now).await?;
    let emails = inviter_emails(app, org, &rows).await?;
    Ok(rows.iter().map(|r| view(r, &emails)).collect())
}

/// Revokes the organization's unaccepted invitation `id`: its link stops working at once.
/// Another organization's, an accepted or an unknown one is 404.
pub(crate) async fn revoke(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<PendingInvitation, ApiError> {
    let org = caller.org()?.id;
    // The rule of handing a role out applies to taking the offer back: an Admin does not
    // withdraw an Owner's invitation of another Owner. A role deleted since limits nothing.
    let pending = app.store.pending_invitations(org, caller.now).await?;
    let target = pending
        .iter()
        .find(|r| r.id == id)
        .ok_or(ApiError::not_found("invitation"))?;
    if let Ok(role) = super::roles::find_role(app, org, &target.role).await {
        super::members::check_may_assign(caller, &role, "revoke an invitation to")?;
    }
    let row = app
        .store
        .revoke_invitation(org, id)
        .await?
        .ok_or(ApiError::not_found("invitation"))?;
    app.audit
        .record(
            kind::INVITATION_REVOKED,
            Some(org),
            &caller.actor(),
            json!({"id": row.id, "email": row.email, "role": row.role}),
        )
        .await?;
    let emails = inviter_emails(app, org, std::slice::from_ref(&row)).await?;
    Ok(view(&row, &emails))
}
