//! `/console/members`: the organization's members and their roles, inviting people, changing a
//! role and removing someone — through the same domain rules as `/api/v1/members` and
//! `/api/v1/invitations` (nobody grants more than their own role, the last owner stays).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::rbac::SetMemberRole;
use serde::Deserialize;

use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::clock;
use crate::domain::invitations::{PendingInvitation, list_pending, revoke as revoke_invitation};
use crate::domain::members::{list_members, remove_member, set_member_role};
use crate::domain::roles::list_roles;
use crate::needs::{INVITATIONS_MANAGE, MEMBERS_MANAGE, ROLES_MANAGE};
use crate::people::invitations::invite as create_invitation;
use crate::state::AppState;

pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub joined: String,
}

#[derive(Template)]
#[template(path = "console/members.html")]
pub struct MembersPage {
    pub layout: Layout,
    pub members: Vec<MemberView>,
    pub invitations: Vec<PendingInvitation>,
    pub roles: Vec<String>,
    /// What the role may do here: the forms shown (the routes check again).
    pub may_invite: bool,
    pub may_set_role: bool,
    pub may_remove: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/invited.html")]
pub struct InvitedPage {
    pub layout: Layout,
    pub email: String,
    pub role: String,
    pub expires: String,
    pub url: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn allows(ctx: &Ctx, need: keyward_core::Need) -> bool {
    match (need, ctx.caller.org.as_ref()) {
        (keyward_core::Need::Feature(f, l), Some(org)) => org.role.allows(f, l),
        _ => false,
    }
}

async fn members_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx.layout("Members", "/console/members").with_flash(flash);
    let members = match list_members(app, &ctx.caller).await {
        Ok(m) => m,
        Err(e) => return error_page(Some(layout), e),
    };
    let invitations = match list_pending(app, &ctx.caller).await {
        Ok(i) => i,
        Err(e) => return error_page(Some(layout), e),
    };
    let roles = match list_roles(app, &ctx.caller).await {
        Ok(r) => r.into_iter().map(|(row, _)| row.name).collect(),
        Err(e) => return error_page(Some(layout), e),
    };
    render(
        status,
        &MembersPage {
            members: members
                .into_iter()
                .map(|m| MemberView {
                    user_id: m.user.id.to_string(),
                    email: m.user.email,
                    role: m.role,
                    joined: clock::rfc3339(m.joined_at),
                })
                .collect(),
            invitations,
            roles,
            may_invite: allows(ctx, INVITATIONS_MANAGE),
            may_set_role: allows(ctx, ROLES_MANAGE),
            may_remove: allows(ctx, MEMBERS_MANAGE),
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/members`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    // Only fixed texts: the query string never becomes page content.
    let flash = match q.done.as_deref() {
        Some("role") => Flash::ok("The role was changed."),
        Some("removed") => Flash::ok("The member was removed from the organization."),
        Some("revoked") => Flash::ok("The invitation was revoked: its link no longer works."),
        _ => None,
    };
    members_page(&app, &ctx, flash, StatusCode::OK).await
}

/// `POST /console/members/invite`: the invitation link is shown once, on the answer.
pub async fn invite(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let email = fields.get("email").map(String::as_str).unwrap_or("");
    let role = fields
        .get("role")
        .map(String::as_str)
        .filter(|r| !r.is_empty());
    match create_invitation(&app, &ctx.caller, email, role, None).await {
        Ok(invited) => render(
            StatusCode::CREATED,
            &InvitedPage {
                layout: ctx.layout("Invitation created", "/console/members"),
                email: invited.email,
                role: invited.role,
                expires: clock::rfc3339(invited.expires_at),
                url: invited.url,
            },
        ),
        Err(e) => {
            let (status, text) = e.status_and_message();
            members_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

/// `POST /console/members/{user_id}/role`
pub async fn set_role(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let role = fields.get("role").cloned().unwrap_or_default();
    match set_member_role(&app, &ctx.caller, &user_id, SetMemberRole { role }).await {
        Ok(_) => see_other("/console/members?done=role"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            members_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

/// `POST /console/members/{user_id}/remove`
pub async fn remove(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(user_id): Path<String>,
) -> Response {
    match remove_member(&app, &ctx.caller, &user_id).await {
        Ok(()) => see_other("/console/members?done=removed"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            members_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

/// `POST /console/members/invitations/{id}/revoke`
pub async fn revoke(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match revoke_invitation(&app, &ctx.caller, &id).await {
        Ok(_) => see_other("/console/members?done=revoked"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            members_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}
