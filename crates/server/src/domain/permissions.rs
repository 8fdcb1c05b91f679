//! Entity permissions (SPEC §8): an automation's visibility, whitelist and grants, and the
//! access lists of environment variables and LLM connections, with members by email and roles
//! by name. Who may change them is declared in the route table; what they mean is decided in
//! `access`.

use std::collections::{BTreeMap, BTreeSet};

use keyward_core::api::rbac::{
    AutomationGrant, AutomationPermissions, EntityAccess, Principals, Visibility,
};
use keyward_core::{AutomationPermission, Feature, Level, OrgId, RoleId, UserId};
use keyward_store::{
    AccessListed, AutomationAccessRow, AutomationGrantRow, AutomationRow, EnvVarRow,
    LlmConnectionRow, PrincipalRef,
};
use serde_json::json;
use uuid::Uuid;

use super::access::held_on_automation;
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The organization's members and roles, to turn names into ids and back.
struct Directory {
    users: BTreeMap<UserId, String>,
    roles: BTreeMap<RoleId, String>,
}

impl Directory {
    async fn load(app: &AppState, org: OrgId) -> Result<Self, ApiError> {
        Ok(Self {
            users: app
                .store
                .list_members(org)
                .await?
                .into_iter()
                .map(|m| (m.user.id, m.user.email))
                .collect(),
            roles: app
                .store
                .list_roles(org)
                .await?
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect(),
        })
    }

    fn user(&self, field: &'static str, value: &str) -> Result<PrincipalRef, ApiError> {
        let id: Option<UserId> = value.parse().ok();
        self.users
            .iter()
            .find(|(u, email)| Some(**u) == id || email.eq_ignore_ascii_case(value))
            .map(|(u, _)| PrincipalRef::User(*u))
            .ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("'{value}' is not a member of this organization (give an email or user id from GET /api/v1/members)"),
                )
            })
    }

    fn role(&self, field: &'static str, value: &str) -> Result<PrincipalRef, ApiError> {
        let id: Option<RoleId> = value.parse().ok();
        self.roles
            .iter()
            .find(|(r, name)| Some(**r) == id || name.as_str() == value)
            .map(|(r, _)| PrincipalRef::Role(*r))
            .ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("no role '{value}' in this organization (see GET /api/v1/roles)"),
                )
            })
    }

    fn principals(&self, p: &Principals) -> Result<Vec<PrincipalRef>, ApiError> {
        let mut out = BTreeSet::new();
        for u in &p.users {
            out.insert(self.user("users", u)?);
        }
        for r in &p.roles {
            out.insert(self.role("roles", r)?);
        }
        Ok(out.into_iter().collect())
    }

    /// Users by email, roles by name; entries whose user or role is gone are left out.
    fn names(&self, list: &[PrincipalRef]) -> Principals {
        let mut out = Principals::default();
        for p in list {
            match p {
                PrincipalRef::User(u) => out.users.extend(self.users.get(u).cloned()),
                PrincipalRef::Role(r) => out.roles.extend(self.roles.get(r).cloned()),
            }
        }
        out
    }
}

fn automation_permissions(dir: &Directory, access: &AutomationAccessRow) -> AutomationPermissions {
    let whitelisted: Vec<PrincipalRef> = access
        .grants
        .iter()
        .filter(|g| g.whitelisted)
        .map(|g| g.principal)
        .collect();
    let grants = access
        .grants
        .iter()
        .filter(|g| !g.permissions.is_empty())
        .filter_map(|g| {
            let names = dir.names(&[g.principal]);
            let permissions = g
                .permissions
                .iter()
                .filter_map(|p| keyward_core::AutomationPermission::parse(p))
                .collect();
            match g.principal {
                PrincipalRef::User(_) => names.users.into_iter().next().map(|u| AutomationGrant {
                    user: Some(u),
                    role: None,
                    permissions,
                }),
                PrincipalRef::Role(_) => names.roles.into_iter().next().map(|r| AutomationGrant {
                    user: None,
                    role: Some(r),
                    permissions,
                }),
            }
        })
        .collect();
    AutomationPermissions {
        visibility: if access.private {
            Visibility::Private
        } else {
            Visibility::Public
        },
        whitelist: dir.names(&whitelisted),
        grants,
    }
}

pub(crate) async fn automation_permissions_of(
    app: &AppState,
    automation: &AutomationRow,
) -> Result<AutomationPermissions, ApiError> {
    let org = automation.org_id;
    let access = app.store.automation_access(org, automation.id).await?;
    let dir = Directory::load(app, org).await?;
    Ok(automation_permissions(&dir, &access))
}

pub(crate) async fn set_automation_permissions(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
    body: AutomationPermissions,
) -> Result<AutomationPermissions, ApiError> {
    let org = caller.org()?.id;
    let dir = Directory::load(app, org).await?;
    let mut rows: BTreeMap<PrincipalRef, AutomationGrantRow> = BTreeMap::new();
    for p in dir.principals(&body.whitelist)? {
        rows.insert(
            p,
            AutomationGrantRow {
                principal: p,
                whitelisted: true,
                permissions: Vec::new(),
            },
        );
    }
    for g in &body.grants {
        let p = match (&g.user, &g.role) {
            (Some(u), None) => dir.user("grants.user", u)?,
            (None, Some(r)) => dir.role("grants.role", r)?,
            _ => {
                return Err(ApiError::invalid(
                    "grants",
                    "each grant names exactly one of 'user' (email or id) or 'role' (name or id)",
                ));
            }
        };
        if g.permissions.is_empty() {
            return Err(ApiError::invalid(
                "grants.permissions",
                "a grant needs at least one of run, traces, manage_settings, human_in_the_loop, full_access",
            ));
        }
        let entry = rows.entry(p).or_insert(AutomationGrantRow {
            principal: p,
            whitelisted: false,
            permissions: Vec::new(),
        });
        for perm in &g.permissions {
            let name = perm.as_str().to_owned();
            if !entry.permissions.contains(&name) {
                entry.permissions.push(name);
            }
        }
    }
    let access = AutomationAccessRow {
        private: body.visibility == Visibility::Private,
        grants: rows.into_values().collect(),
    };
    if !caller
        .org()?
        .role
        .allows(Feature::CrewsDashboards, Level::Manage)
    {
        let before = app.store.automation_access(org, automation.id).await?;
        let held = held_on_automation(app, caller, &before).await?;
        check_grantable(&held, &before, &access, &automation.name)?;
    }
    app.store
        .set_automation_access(org, automation.id, &access)
        .await
        .map_err(crate::error::or_not_found("automation"))?;
    let wire = automation_permissions(&dir, &access);
    app.audit
        .record(
            kind::AUTOMATION_PERMISSIONS_SET,
            Some(org),
            &caller.actor(),
            json!({"automation_id": automation.id, "automation": automation.name, "permissions": wire}),
        )
        .await?;
    Ok(wire)
}

/// Someone who changes an automation's permissions through an entity grant (not through
/// `crews_dashboards: manage`) hands out, and takes away, only what they hold there themselves:
/// a `manage_settings` grant must not become `full_access` for its holder or anyone else.
fn check_grantable(
    held: &[AutomationPermission],
    before: &AutomationAccessRow,
    after: &AutomationAccessRow,
    automation: &str,
) -> Result<(), ApiError> {
    let perms = |access: &AutomationAccessRow, p: &PrincipalRef| -> BTreeSet<String> {
        access
            .grants
            .iter()
            .filter(|g| g.principal == *p)
            .flat_map(|g| g.permissions.iter().cloned())
            .collect()
    };
    let principals: BTreeSet<PrincipalRef> = before
        .grants
        .iter()
        .chain(&after.grants)
        .map(|g| g.principal)
        .collect();
    for p in principals {
        let (was, will) = (perms(before, &p), perms(after, &p));
        if was == will {
            continue;
        }
        let beyond = was.union(&will).find(|name| {
            !AutomationPermission::parse(name).is_some_and(|perm| perm.granted_by(held))
        });
        if let Some(name) = beyond {
            return Err(ApiError::Forbidden {
                code: "permission_escalation",
                message: format!(
                    "you cannot hand out or take away '{name}' on automation '{automation}': you do not hold it there; ask someone with crews_dashboards: manage"
                ),
            });
        }
    }
    Ok(())
}

async fn get_list(
    app: &AppState,
    org: OrgId,
    kind: AccessListed,
    id: Uuid,
) -> Result<EntityAccess, ApiError> {
    let list = app.store.access_list(org, kind, id).await?;
    let names = Directory::load(app, org).await?.names(&list);
    Ok(EntityAccess {
        users: names.users,
        roles: names.roles,
    })
}

async fn set_list(
    app: &AppState,
    caller: &Caller,
    kind: AccessListed,
    id: Uuid,
    body: EntityAccess,
) -> Result<EntityAccess, ApiError> {
    let org = caller.org()?.id;
    let dir = Directory::load(app, org).await?;
    let list = dir.principals(&Principals {
        users: body.users,
        roles: body.roles,
    })?;
    app.store.set_access_list(org, kind, id, &list).await?;
    let names = dir.names(&list);
    Ok(EntityAccess {
        users: names.users,
        roles: names.roles,
    })
}

pub(crate) async fn env_var_access(
    app: &AppState,
    var: &EnvVarRow,
) -> Result<EntityAccess, ApiError> {
    get_list(app, var.org_id, AccessListed::EnvironmentVariable, var.id.0).await
}

pub(crate) async fn set_env_var_access(
    app: &AppState,
    caller: &Caller,
    var: &EnvVarRow,
    body: EntityAccess,
) -> Result<EntityAccess, ApiError> {
    let kind = AccessListed::EnvironmentVariable;
    let access = set_list(app, caller, kind, var.id.0, body).await?;
    app.audit
        .record(
            kind::ENV_VAR_ACCESS_SET,
            Some(var.org_id),
            &caller.actor(),
            json!({"env_var_id": var.id, "key": var.key, "access": access}),
        )
        .await?;
    Ok(access)
}

pub(crate) async fn connection_access(
    app: &AppState,
    conn: &LlmConnectionRow,
) -> Result<EntityAccess, ApiError> {
    get_list(app, conn.org_id, AccessListed::LlmConnection, conn.id.0).await
}

pub(crate) async fn set_connection_access(
    app: &AppState,
    caller: &Caller,
    conn: &LlmConnectionRow,
    body: EntityAccess,
) -> Result<EntityAccess, ApiError> {
    let access = set_list(app, caller, AccessListed::LlmConnection, conn.id.0, body).await?;
    app.audit
        .record(
            kind::LLM_CONNECTION_ACCESS_SET,
            Some(conn.org_id),
            &caller.actor(),
            json!({"connection_id": conn.id, "name": conn.name, "access": access}),
        )
        .await?;
    Ok(access)
}
