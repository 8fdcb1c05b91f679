//! RBAC decisions that need the database (SPEC §8): a membership's role name becomes
//! [`RoleGrants`], and the entity rules — private automations, automation grants, access lists
//! on environment variables and LLM connections — are enforced in one place.
//!
//! Routes declare entity rules with [`Need::Entity`]; the authorization layer calls
//! [`check_entity`] for them before the handler runs, so a handler cannot forget it. The row it
//! resolves goes to the handler as [`Resolved`], so the entity is looked up once per request.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use keyward_core::permission::{Entity, RoleGrants};
use keyward_core::{Need, OrgId};
use keyward_store::AccessListed;

use crate::caller::{Caller, Resolved};
use crate::domain::access::{automation_rights, listed_for, subject};
use crate::domain::automations::find_automation;
use crate::domain::env_vars::find_env_var;
use crate::domain::llm_connections::find_llm_connection;
use crate::domain::roles::role_grants;
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
/// The resolved row goes into the request's extensions for the handler ([`Resolved`]).
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
            let automation = find_automation(app, org.id, &id).await?;
            let access = app.store.automation_access(org.id, automation.id).await?;
            let (sees, held) = automation_rights(&access, &who);
            if !sees {
                return Err(ApiError::not_found("automation"));
            }
            let allowed = match permission {
                _ if org.role.allows(feature, level) => Ok(()),
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
            };
            allowed?;
            parts.extensions.insert(Resolved(automation));
        }
        Entity::EnvironmentVariable => {
            let row = find_env_var(app, org.id, &id).await?;
            let kind = AccessListed::EnvironmentVariable;
            if !listed_for(app, &who, org.id, kind, row.id.0).await {
                return Err(ApiError::not_found("environment variable"));
            }
            parts.extensions.insert(Resolved(row));
        }
        Entity::LlmConnection => {
            let row = find_llm_connection(app, org.id, &id).await?;
            if !listed_for(app, &who, org.id, AccessListed::LlmConnection, row.id.0).await {
                return Err(ApiError::not_found("LLM connection"));
            }
            parts.extensions.insert(Resolved(row));
        }
    }
    Ok(())
}
