//! `/console/roles`: the organization's roles, the feature × level matrix of a custom role,
//! creating and deleting custom roles, and which roles an LLM connection or environment
//! variable is restricted to — through the same domain rules as `/api/v1/roles` and the
//! entity permission routes (nobody defines or hands out more than their own role holds).

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::rbac::{CreateRole, EntityAccess, UpdateRole};
use keyward_core::{Feature, Level, Need};
use keyward_store::{EnvVarRow, LlmConnectionRow};
use serde::Deserialize;

use super::guard::Ctx;
use super::render::{Flash, error_page, render, see_other};
use crate::caller::Resolved;
use crate::domain::env_vars::list_env_vars;
use crate::domain::llm_connections::list_llm_connections;
use crate::domain::permissions::{
    connection_access, env_var_access, set_connection_access, set_env_var_access,
};
use crate::domain::roles::{
    counted, create_role, delete_role, find_role, list_roles, role_grants, update_role,
};
use crate::error::ApiError;
use crate::needs::{ENV_READ, LLM_READ};
use crate::state::AppState;

const LEVELS: [Level; 4] = [Level::None, Level::Read, Level::Write, Level::Manage];

pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub members: usize,
    pub predefined: bool,
}

/// One row of the matrix: a feature and a cell per level.
pub struct MatrixRow {
    pub feature: &'static str,
    pub label: String,
    pub cells: Vec<Cell>,
}

pub struct Cell {
    pub level: &'static str,
    /// Manage-only features take only `none` or `manage`.
    pub allowed: bool,
    pub checked: bool,
}

/// An LLM connection or environment variable and the roles its access list names.
pub struct AccessView {
    pub id: String,
    pub name: String,
    /// `(role, listed)` for every role of the organization.
    pub roles: Vec<(String, bool)>,
    /// Users on the list (kept as they are when the roles are saved here).
    pub users: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/roles.html")]
pub struct RolesPage {
    pub layout: super::render::Layout,
    pub roles: Vec<RoleView>,
    pub connections: Option<Vec<AccessView>>,
    pub variables: Option<Vec<AccessView>>,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/role.html")]
pub struct RolePage {
    pub layout: super::render::Layout,
    pub role: RoleView,
    pub unrestricted: bool,
    pub matrix: Vec<MatrixRow>,
    pub csrf: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn allows(ctx: &Ctx, need: Need) -> bool {
    match (need, ctx.caller.org.as_ref()) {
        (Need::Feature(f, l), Some(org)) => org.role.allows(f, l),
        _ => false,
    }
}

fn access_view(id: String, name: String, roles: &[String], access: EntityAccess) -> AccessView {
    AccessView {
        roles: roles
            .iter()
            .map(|r| (r.clone(), access.roles.iter().any(|a| a == r)))
            .collect(),
        users: access.users,
        id,
        name,
    }
}

async fn roles_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx.layout("Roles", "/console/roles").with_flash(flash);
    let rows = match list_roles(app, &ctx.caller).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    let names: Vec<String> = rows.iter().map(|(r, _)| r.name.clone()).collect();
    let connections = match entity_lists(app, ctx, &names).await {
        Ok(v) => v,
        Err(e) => return error_page(Some(layout), e),
    };
    render(
        status,
        &RolesPage {
            roles: rows
                .into_iter()
                .map(|(r, members)| RoleView {
                    id: r.id.to_string(),
                    name: r.name,
                    description: r.description,
                    members,
                    predefined: r.predefined,
                })
                .collect(),
            connections: connections.0,
            variables: connections.1,
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

type Lists = (Option<Vec<AccessView>>, Option<Vec<AccessView>>);

/// The access lists of the connections and variables the person may see at all.
async fn entity_lists(app: &AppState, ctx: &Ctx, roles: &[String]) -> Result<Lists, ApiError> {
    let mut connections = None;
    if allows(ctx, LLM_READ) {
        let mut out = Vec::new();
        for c in list_llm_connections(app, &ctx.caller).await? {
            let access = connection_access(app, &c).await?;
            out.push(access_view(c.id.to_string(), c.name, roles, access));
        }
        connections = Some(out);
    }
    let mut variables = None;
    if allows(ctx, ENV_READ) {
        let mut out = Vec::new();
        for v in list_env_vars(app, &ctx.caller).await? {
            let access = env_var_access(app, &v).await?;
            out.push(access_view(v.id.to_string(), v.key, roles, access));
        }
        variables = Some(out);
    }
    Ok((connections, variables))
}

/// `GET /console/roles`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("deleted") => Flash::ok("The role was deleted."),
        Some("access") => Flash::ok("The access list was saved."),
        _ => None,
    };
    roles_page(&app, &ctx, flash, StatusCode::OK).await
}

/// `POST /console/roles`: a new custom role with no grants; its matrix is edited next.
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let request = CreateRole {
        name: fields.get("name").cloned().unwrap_or_default(),
        description: fields.get("description").cloned().filter(|d| !d.is_empty()),
        grants: BTreeMap::new(),
    };
    match create_role(&app, &ctx.caller, request).await {
        Ok(row) => see_other(&format!("/console/roles/{}?done=created", row.id)),
        Err(e) => {
            let (status, text) = e.status_and_message();
            roles_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

fn matrix(grants: &keyward_core::permission::RoleGrants) -> Vec<MatrixRow> {
    Feature::ALL
        .iter()
        .map(|f| {
            let held = grants.level(*f);
            MatrixRow {
                feature: f.as_str(),
                label: f.as_str().replace('_', " "),
                cells: LEVELS
                    .iter()
                    .map(|l| Cell {
                        level: l.as_str(),
                        allowed: !f.is_manage_only() || matches!(l, Level::None | Level::Manage),
                        checked: *l == held,
                    })
                    .collect(),
            }
        })
        .collect()
}

async fn role_page(
    app: &AppState,
    ctx: &Ctx,
    id: &str,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx.layout("Role", "/console/roles");
    let found = async {
        let org = ctx.caller.org()?.id;
        let row = find_role(app, org, id).await?;
        counted(app, org, row).await
    };
    let (row, members) = match found.await {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    let grants = match role_grants(&row) {
        Ok(g) => g,
        Err(e) => return error_page(Some(layout), e),
    };
    let mut layout = layout.with_flash(flash);
    layout.title = format!("Role {}", row.name);
    render(
        status,
        &RolePage {
            unrestricted: grants.is_owner(),
            matrix: matrix(&grants),
            role: RoleView {
                id: row.id.to_string(),
                name: row.name,
                description: row.description,
                members,
                predefined: row.predefined,
            },
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/roles/{id}`
pub async fn detail(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let flash = match q.done.as_deref() {
        Some("created") => Flash::ok("The role was created; give it its levels below."),
        Some("saved") => Flash::ok("The role was saved."),
        _ => None,
    };
    role_page(&app, &ctx, &id, flash, StatusCode::OK).await
}

/// The whole matrix from the form: one `grant.<feature>` radio per feature.
fn grants_of(fields: &HashMap<String, String>) -> Result<BTreeMap<Feature, Level>, ApiError> {
    let mut grants = BTreeMap::new();
    for f in Feature::ALL {
        let Some(given) = fields.get(&format!("grant.{}", f.as_str())) else {
            continue;
        };
        let level = LEVELS
            .into_iter()
            .find(|l| l.as_str() == given)
            .ok_or_else(|| {
                ApiError::invalid(
                    "grants",
                    format!("'{given}' is not a level for {f}; choose none, read, write or manage"),
                )
            })?;
        grants.insert(f, level);
    }
    Ok(grants)
}

/// `POST /console/roles/{id}`: saves the description and the whole matrix.
pub async fn save(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let result = async {
        let request = UpdateRole {
            name: None,
            description: fields.get("description").cloned(),
            grants: Some(grants_of(&fields)?),
        };
        update_role(&app, &ctx.caller, &id, request).await
    };
    match result.await {
        Ok(row) => see_other(&format!("/console/roles/{}?done=saved", row.id)),
        Err(e) => {
            let (status, text) = e.status_and_message();
            role_page(&app, &ctx, &id, Flash::error(text), status).await
        }
    }
}

/// `POST /console/roles/{id}/delete`, optionally moving its members to `reassign_to` first.
pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let reassign = fields
        .get("reassign_to")
        .map(String::as_str)
        .filter(|r| !r.is_empty());
    match delete_role(&app, &ctx.caller, &id, reassign).await {
        Ok(()) => see_other("/console/roles?done=deleted"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            roles_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

/// The roles ticked in an access form (`role.<name>`), with the users the list already names.
async fn access_of(
    app: &AppState,
    ctx: &Ctx,
    body: &[u8],
    users: Vec<String>,
) -> Result<EntityAccess, ApiError> {
    let fields = super::form_fields(body);
    let roles = list_roles(app, &ctx.caller)
        .await?
        .into_iter()
        .map(|(r, _)| r.name)
        .filter(|name| fields.contains_key(&format!("role.{name}")))
        .collect();
    Ok(EntityAccess { users, roles })
}

/// `POST /console/roles/access/llm-connections/{id}`
pub async fn set_connection(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(conn): Resolved<LlmConnectionRow>,
    body: Bytes,
) -> Response {
    let result = async {
        let users = connection_access(&app, &conn).await?.users;
        let access = access_of(&app, &ctx, &body, users).await?;
        set_connection_access(&app, &ctx.caller, &conn, access).await
    };
    match result.await {
        Ok(_) => see_other("/console/roles?done=access"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            roles_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

/// `POST /console/roles/access/environment-variables/{id}`
pub async fn set_variable(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(var): Resolved<EnvVarRow>,
    body: Bytes,
) -> Response {
    let result = async {
        let users = env_var_access(&app, &var).await?.users;
        let access = access_of(&app, &ctx, &body, users).await?;
        set_env_var_access(&app, &ctx.caller, &var, access).await
    };
    match result.await {
        Ok(_) => see_other("/console/roles?done=access"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            roles_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}
