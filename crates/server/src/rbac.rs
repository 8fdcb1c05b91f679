//! RBAC decisions that need the database (SPEC §8): a membership's role name becomes
//! [`RoleGrants`], and the entity rules — private automations, automation grants, access lists
//! on environment variables and LLM connections — are applied in one place.
//!
//! Routes declare entity rules with [`Need::Entity`]; [`crate::auth::authorize`] calls
//! [`check_entity`] for them before the handler runs, so a handler cannot forget it. Lists
//! filter through [`visible_automations`] and [`hidden`].

use std::collections::{BTreeMap, HashSet};

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use keyward_core::permission::{AutomationPermission, Entity, RoleGrants};
use keyward_core::{AutomationId, Feature, Level, Need, OrgId, RoleId, UserId};
use keyward_store::{AccessListed, AutomationAccessRow, AutomationRow, PrincipalRef, RoleRow};
use uuid::Uuid;

use crate::api::{automations, env_vars, llm_connections};
use crate::caller::{Caller, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// The grants of the role a membership names. Owner and Member are defined in code; custom
/// roles are read from the organization's roles. A name that matches no role (a damaged or
/// half-migrated row) grants nothing rather than failing every request.
pub async fn grants_for(app: &AppState, org: OrgId, role: &str) -> Result<RoleGrants, ApiError> {
    match role {
        RoleGrants::OWNER => Ok(RoleGrants::owner()),
        RoleGrants::MEMBER => Ok(RoleGrants::member()),
        _ => match app.store.find_role_by_name(org, role).await? {
            Some(row) => role_grants(&row),
            None => {
                tracing::warn!(%org, role, "membership names a role the organization does not have; it grants nothing");
                Ok(RoleGrants {
                    name: role.to_owned(),
                    levels: Some(Vec::new()),
                })
            }
        },
    }
}

/// A stored role as grants.
pub fn role_grants(row: &RoleRow) -> Result<RoleGrants, ApiError> {
    if row.predefined {
        return Ok(if row.name == RoleGrants::OWNER {
            RoleGrants::owner()
        } else {
            RoleGrants::member()
        });
    }
    let levels: BTreeMap<Feature, Level> = serde_json::from_str(&row.grants)
        .map_err(|e| ApiError::internal(format!("role {} has malformed grants: {e}", row.id)))?;
    Ok(RoleGrants {
        name: row.name.clone(),
        levels: Some(levels.into_iter().collect()),
    })
}

/// Who the caller is for entity rules.
struct Subject {
    user: UserId,
    role: Option<RoleId>,
    owner: bool,
}

impl Subject {
    fn is(&self, p: &PrincipalRef) -> bool {
        match p {
            PrincipalRef::User(u) => *u == self.user,
            PrincipalRef::Role(r) => Some(*r) == self.role,
        }
    }
}

async fn subject(app: &AppState, caller: &Caller) -> Result<Subject, ApiError> {
    let org = caller.org()?;
    let Principal::Person { user, .. } = &caller.principal else {
        return Err(ApiError::internal("entity rules are for people"));
    };
    let role = app
        .store
        .find_role_by_name(org.id, &org.role.name)
        .await?
        .map(|r| r.id);
    Ok(Subject {
        user: *user,
        role,
        owner: org.role.is_owner(),
    })
}

/// The entity permissions the calling person holds on an automation with `access`.
pub async fn held_on_automation(
    app: &AppState,
    caller: &Caller,
    access: &AutomationAccessRow,
) -> Result<Vec<AutomationPermission>, ApiError> {
    let who = subject(app, caller).await?;
    Ok(automation_rights(access, &who).1)
}

/// Whether the calling person sees the automation `automation` names (private ones only when
/// shared with them).
pub async fn sees_automation_id(
    app: &AppState,
    caller: &Caller,
    automation: AutomationId,
) -> Result<bool, ApiError> {
    let org = caller.org()?.id;
    let access = app.store.automation_access(org, automation).await?;
    let who = subject(app, caller).await?;
    Ok(automation_rights(&access, &who).0)
}

/// What an automation's access gives the subject: (sees it, its entity permissions).
fn automation_rights(
    access: &AutomationAccessRow,
    who: &Subject,
) -> (bool, Vec<AutomationPermission>) {
    if who.owner {
        return (true, vec![AutomationPermission::FullAccess]);
    }
    let mine: Vec<_> = access
        .grants
        .iter()
        .filter(|g| who.is(&g.principal))
        .collect();
    let permissions: Vec<AutomationPermission> = mine
        .iter()
        .flat_map(|g| g.permissions.iter())
        .filter_map(|p| AutomationPermission::parse(p))
        .collect();
    // Entity permissions on a private automation imply seeing it.
    let sees = !access.private || mine.iter().any(|g| g.whitelisted) || !permissions.is_empty();
    (sees, permissions)
}

/// The `{id}` of the request path.
async fn path_id(parts: &mut Parts) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::internal(format!("path parameters: {e}")))?;
    params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.to_owned())
        .ok_or_else(|| ApiError::internal("an entity route without {id} in its path"))
}

/// Whether the route layer may leave the feature check of `need` to [`check_entity`]: only an
/// automation route that an entity grant can allow.
pub fn feature_check_deferred(need: Need) -> bool {
    matches!(need, Need::Entity(Entity::Automation(Some(_)), _, _))
}

/// The entity rules of a [`Need::Entity`] route, for the entity named by the path's `{id}`.
/// Not visible → 404 (exactly like another organization's id); visible but not allowed → 403.
pub async fn check_entity(
    app: &AppState,
    caller: &Caller,
    need: Need,
    parts: &mut Parts,
) -> Result<(), ApiError> {
    let Need::Entity(entity, feature, level) = need else {
        return Ok(());
    };
    let id = path_id(parts).await?;
    let org = caller.org()?;
    let who = subject(app, caller).await?;
    match entity {
        Entity::Automation(permission) => {
            let automation = automations::find(app, org.id, &id).await?;
            let access = app.store.automation_access(org.id, automation.id).await?;
            let (sees, held) = automation_rights(&access, &who);
            if !sees {
                return Err(ApiError::not_found("automation"));
            }
            if org.role.allows(feature, level) {
                return Ok(());
            }
            match permission {
                Some(p) if p.granted_by(&held) => Ok(()),
                Some(p) => Err(ApiError::Forbidden {
                    code: "forbidden",
                    message: format!(
                        "your role '{}' does not grant {level} on {feature}, and you hold no '{p}' permission on automation '{}'; ask an owner to grant it (PUT /api/v1/automations/{}/permissions)",
                        org.role.name, automation.name, automation.name
                    ),
                }),
                None => Err(ApiError::Forbidden {
                    code: "forbidden",
                    message: format!(
                        "your role '{}' in organization {} does not grant {level} on {feature}",
                        org.role.name, org.id
                    ),
                }),
            }
        }
        Entity::EnvironmentVariable => {
            let row = env_vars::find(app, org.id, &id).await?;
            listed_check(
                app,
                &who,
                org.id,
                AccessListed::EnvironmentVariable,
                row.id.0,
            )
            .await
            .map_err(|()| ApiError::not_found("environment variable"))
        }
        Entity::LlmConnection => {
            let row = llm_connections::find(app, org.id, &id).await?;
            listed_check(app, &who, org.id, AccessListed::LlmConnection, row.id.0)
                .await
                .map_err(|()| ApiError::not_found("LLM connection"))
        }
    }
}

async fn listed_check(
    app: &AppState,
    who: &Subject,
    org: OrgId,
    kind: AccessListed,
    id: Uuid,
) -> Result<(), ()> {
    if who.owner {
        return Ok(());
    }
    match app.store.access_list(org, kind, id).await {
        Ok(list) if list.is_empty() || list.iter().any(|p| who.is(p)) => Ok(()),
        Ok(_) => Err(()),
        Err(e) => {
            // Fail closed: an unreadable list hides the entity.
            tracing::error!(error = %e, "reading an access list");
            Err(())
        }
    }
}

/// The automations of `rows` that the caller sees (private ones only when whitelisted).
pub async fn visible_automations(
    app: &AppState,
    caller: &Caller,
    rows: Vec<AutomationRow>,
) -> Result<Vec<AutomationRow>, ApiError> {
    let who = subject(app, caller).await?;
    if who.owner {
        return Ok(rows);
    }
    let access: BTreeMap<_, _> = app
        .store
        .org_automation_access(caller.org()?.id)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .filter(|a| {
            access
                .get(&a.id)
                .is_none_or(|acc| automation_rights(acc, &who).0)
        })
        .collect())
}

/// Whether the caller may see the automation (private ones only when whitelisted).
pub async fn sees_automation(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
) -> Result<bool, ApiError> {
    let who = subject(app, caller).await?;
    let access = app
        .store
        .automation_access(caller.org()?.id, automation.id)
        .await?;
    Ok(automation_rights(&access, &who).0)
}

/// The ids of `kind` that the caller may not see: those with an access list not naming them.
pub async fn hidden(
    app: &AppState,
    caller: &Caller,
    kind: AccessListed,
) -> Result<HashSet<Uuid>, ApiError> {
    let who = subject(app, caller).await?;
    if who.owner {
        return Ok(HashSet::new());
    }
    let mut listed: BTreeMap<Uuid, bool> = BTreeMap::new();
    for (id, p) in app.store.org_access_lists(caller.org()?.id, kind).await? {
        *listed.entry(id).or_default() |= who.is(&p);
    }
    Ok(listed
        .into_iter()
        .filter(|(_, me)| !me)
        .map(|(id, _)| id)
        .collect())
}
