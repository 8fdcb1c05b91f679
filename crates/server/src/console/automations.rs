//! `/console/automations`: the automations the person sees, creating one, and an automation's
//! page with its tokens (the secret shown once, on the answer to the form; revocable) and its
//! permissions (visibility, whitelisted roles, each role's entity permissions) — through the
//! same domain rules as `/api/v1/automations` and `/api/v1/automations/{id}/permissions`.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keyward_core::api::rbac::{AutomationGrant, AutomationPermissions, Principals, Visibility};
use keyward_core::api::v1::{CreateAutomation, CreateToken};
use keyward_core::{AutomationPermission, Need};
use keyward_store::AutomationRow;
use serde::Deserialize;

use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::caller::Resolved;
use crate::clock;
use crate::domain::automations::{create_automation, delete_automation, list_automations};
use crate::domain::permissions::{automation_permissions_of, set_automation_permissions};
use crate::domain::roles::list_roles;
use crate::domain::tokens::{
    create_automation_token, list_automation_tokens, revoke_automation_token,
};
use crate::error::ApiError;
use crate::needs::AUTOMATIONS_MANAGE;
use crate::state::AppState;

pub struct AutomationView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created: String,
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub expires: String,
    pub revoked: Option<String>,
}

/// One role's line in the permissions form.
pub struct RoleAccess {
    pub role: String,
    pub whitelisted: bool,
    /// `(permission, granted)` for every automation permission.
    pub permissions: Vec<(&'static str, bool)>,
}

/// The lifetimes offered, in days; 0 is "never expires".
const LIFETIMES: [u64; 5] = [30, 90, 365, 730, 0];

#[derive(Template)]
#[template(path = "console/automations.html")]
pub struct AutomationsPage {
    pub layout: Layout,
    pub automations: Vec<AutomationView>,
    pub may_create: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/automation.html")]
pub struct AutomationPage {
    pub layout: Layout,
    pub automation: AutomationView,
    pub tokens: Vec<TokenView>,
    pub lifetimes: Vec<u64>,
    pub private: bool,
    pub roles: Vec<RoleAccess>,
    pub permission_names: Vec<&'static str>,
    /// Users on the whitelist or holding grants: kept as they are when the form is saved.
    pub users: Vec<String>,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/automation_token.html")]
pub struct TokenCreatedPage {
    pub layout: Layout,
    pub automation_id: String,
    pub automation: String,
    pub name: String,
    pub expires: String,
    pub token: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn view(row: &AutomationRow) -> AutomationView {
    AutomationView {
        id: row.id.to_string(),
        name: row.name.clone(),
        description: row.description.clone(),
        created: clock::rfc3339(row.created_at),
    }
}

async fn list_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx
        .layout("Automations", "/console/automations")
        .with_flash(flash);
    let rows = match list_automations(app, &ctx.caller).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    let may_create = match (AUTOMATIONS_MANAGE, ctx.caller.org.as_ref()) {
        (Need::Feature(f, l), Some(org)) => org.role.allows(f, l),
        _ => false,
    };
    render(
        status,
        &AutomationsPage {
            automations: rows.iter().map(view).collect(),
            may_create,
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/automations`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("deleted") => Flash::ok("The automation was deleted."),
        _ => None,
    };
    list_page(&app, &ctx, flash, StatusCode::OK).await
}

/// `POST /console/automations`
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let request = CreateAutomation {
        name: fields.get("name").cloned().unwrap_or_default(),
        description: fields.get("description").cloned().filter(|d| !d.is_empty()),
    };
    match create_automation(&app, &ctx.caller, request).await {
        Ok(row) => see_other(&format!("/console/automations/{}?done=created", row.id)),
        Err(e) => {
            let (status, text) = e.status_and_message();
            list_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

async fn detail_page(
    app: &AppState,
    ctx: &Ctx,
    automation: &AutomationRow,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let mut layout = ctx
        .layout("Automation", "/console/automations")
        .with_flash(flash);
    layout.title = format!("Automation {}", automation.name);
    let loaded = async {
        let tokens = list_automation_tokens(app, &ctx.caller, automation).await?;
        let permissions = automation_permissions_of(app, automation).await?;
        let roles = list_roles(app, &ctx.caller).await?;
        Ok::<_, ApiError>((tokens, permissions, roles))
    };
    let (tokens, permissions, roles) = match loaded.await {
        Ok(l) => l,
        Err(e) => return error_page(Some(layout), e),
    };
    let granted = |role: &str, p: AutomationPermission| {
        permissions
            .grants
            .iter()
            .any(|g| g.role.as_deref() == Some(role) && g.permissions.contains(&p))
    };
    let mut users: Vec<String> = permissions.whitelist.users.clone();
    users.extend(permissions.grants.iter().filter_map(|g| g.user.clone()));
    users.sort();
    users.dedup();
    render(
        status,
        &AutomationPage {
            automation: view(automation),
            tokens: tokens
                .into_iter()
                .map(|t| TokenView {
                    id: t.id.to_string(),
                    name: t.name,
                    prefix: t.prefix,
                    created: clock::rfc3339(t.created_at),
                    expires: t
                        .expires_at
                        .map_or_else(|| "never".to_owned(), clock::rfc3339),
                    revoked: t.revoked_at.map(clock::rfc3339),
                })
                .collect(),
            lifetimes: LIFETIMES.to_vec(),
            private: permissions.visibility == Visibility::Private,
            roles: roles
                .into_iter()
                .map(|(r, _)| RoleAccess {
                    whitelisted: permissions.whitelist.roles.contains(&r.name),
                    permissions: AutomationPermission::ALL
                        .iter()
                        .map(|p| (p.as_str(), granted(&r.name, *p)))
                        .collect(),
                    role: r.name,
                })
                .collect(),
            permission_names: AutomationPermission::ALL
                .iter()
                .map(|p| p.as_str())
                .collect(),
            users,
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/automations/{id}`
pub async fn detail(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
    Query(q): Query<Done>,
) -> Response {
    let flash = match q.done.as_deref() {
        Some("created") => Flash::ok("The automation was created."),
        Some("revoked") => Flash::ok("The token was revoked; it no longer works."),
        Some("permissions") => Flash::ok("The permissions were saved."),
        _ => None,
    };
    detail_page(&app, &ctx, &automation, flash, StatusCode::OK).await
}

/// `POST /console/automations/{id}/delete`
pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
) -> Response {
    match delete_automation(&app, &ctx.caller, &automation).await {
        Ok(()) => see_other("/console/automations?done=deleted"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            detail_page(&app, &ctx, &automation, Flash::error(text), status).await
        }
    }
}

/// `POST /console/automations/{id}/tokens`: the answer is the only place the secret appears.
pub async fn create_token(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let days: u64 = fields
        .get("expires_days")
        .and_then(|d| d.parse().ok())
        .unwrap_or(365);
    let request = CreateToken {
        name: fields.get("name").cloned().unwrap_or_default(),
        expires_in: (days > 0).then(|| days.saturating_mul(86_400)),
    };
    match create_automation_token(&app, &ctx.caller, &automation, &request).await {
        Ok((row, token)) => {
            let mut response = render(
                StatusCode::CREATED,
                &TokenCreatedPage {
                    layout: ctx.layout("Automation token created", "/console/automations"),
                    automation_id: automation.id.to_string(),
                    automation: automation.name.clone(),
                    name: row.name,
                    expires: row
                        .expires_at
                        .map_or_else(|| "never".to_owned(), clock::rfc3339),
                    token,
                },
            );
            // Never kept by the browser's back/forward cache either.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, private"),
            );
            response
        }
        Err(e) => {
            let (status, text) = e.status_and_message();
            detail_page(&app, &ctx, &automation, Flash::error(text), status).await
        }
    }
}

/// `POST /console/automations/{id}/tokens/{token_id}/revoke`
pub async fn revoke_token(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
    Path((_, token_id)): Path<(String, String)>,
) -> Response {
    match revoke_automation_token(&app, &ctx.caller, &automation, &token_id).await {
        Ok(_) => see_other(&format!(
            "/console/automations/{}?done=revoked",
            automation.id
        )),
        Err(e) => {
            let (status, text) = e.status_and_message();
            detail_page(&app, &ctx, &automation, Flash::error(text), status).await
        }
    }
}

/// The permissions the form describes: visibility, and per role `wl.<role>` (whitelisted) and
/// `perm.<role>.<permission>` checkboxes. Users' entries are not on the form and stay as stored.
fn permissions_of(
    fields: &HashMap<String, String>,
    roles: &[String],
    before: &AutomationPermissions,
) -> AutomationPermissions {
    let mut whitelist = Principals {
        users: before.whitelist.users.clone(),
        roles: Vec::new(),
    };
    let mut grants: Vec<AutomationGrant> = before
        .grants
        .iter()
        .filter(|g| g.user.is_some())
        .cloned()
        .collect();
    for role in roles {
        if fields.contains_key(&format!("wl.{role}")) {
            whitelist.roles.push(role.clone());
        }
        let permissions: Vec<AutomationPermission> = AutomationPermission::ALL
            .into_iter()
            .filter(|p| fields.contains_key(&format!("perm.{role}.{}", p.as_str())))
            .collect();
        if !permissions.is_empty() {
            grants.push(AutomationGrant {
                user: None,
                role: Some(role.clone()),
                permissions,
            });
        }
    }
    AutomationPermissions {
        visibility: if fields.get("visibility").map(String::as_str) == Some("private") {
            Visibility::Private
        } else {
            Visibility::Public
        },
        whitelist,
        grants,
    }
}

/// `POST /console/automations/{id}/permissions`: replaces the roles' part of the permissions.
pub async fn set_permissions(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let result = async {
        let before = automation_permissions_of(&app, &automation).await?;
        let roles: Vec<String> = list_roles(&app, &ctx.caller)
            .await?
            .into_iter()
            .map(|(r, _)| r.name)
            .collect();
        let wanted = permissions_of(&fields, &roles, &before);
        set_automation_permissions(&app, &ctx.caller, &automation, wanted).await
    };
    match result.await {
        Ok(_) => see_other(&format!(
            "/console/automations/{}?done=permissions",
            automation.id
        )),
        Err(e) => {
            let (status, text) = e.status_and_message();
            detail_page(&app, &ctx, &automation, Flash::error(text), status).await
        }
    }
}
