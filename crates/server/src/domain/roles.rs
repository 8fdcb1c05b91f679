//! Roles of an organization (SPEC §8): Owner and Member are predefined and fixed; custom roles
//! give any feature a level, except that manage-only features take `manage` or `none`. Nobody
//! defines, changes or hands out a role stronger than their own.

use std::collections::BTreeMap;

use keyward_core::api::rbac::{CreateRole, UpdateRole};
use keyward_core::permission::{RoleGrants, validate_custom_grants};
use keyward_core::{Feature, Level, OrgId, RoleId, names};
use keyward_store::{RoleRow, StoreError};
use serde_json::json;

use super::{Taken, by_id_or_name, taken, unknown_reference};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const MAX_DESCRIPTION: usize = 2000;

/// `{id}` is the role's UUID or its name.
pub(crate) async fn find_role(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<RoleRow, ApiError> {
    by_id_or_name(
        id_or_name,
        "role",
        |id: RoleId| app.store.get_role(org, id),
        |name| async move { app.store.find_role_by_name(org, &name).await },
    )
    .await
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

/// How many members hold each role, by role name.
pub(crate) async fn member_counts(
    app: &AppState,
    org: OrgId,
) -> Result<BTreeMap<String, usize>, ApiError> {
    let mut counts = BTreeMap::new();
    for m in app.store.list_members(org).await? {
        *counts.entry(m.role).or_default() += 1;
    }
    Ok(counts)
}

/// A role with the number of members holding it.
pub(crate) async fn counted(
    app: &AppState,
    org: OrgId,
    row: RoleRow,
) -> Result<(RoleRow, usize), ApiError> {
    let n = member_counts(app, org).await?.get(&row.name).copied();
    Ok((row, n.unwrap_or(0)))
}

pub(crate) async fn list_roles(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<(RoleRow, usize)>, ApiError> {
    let org = caller.org()?.id;
    let counts = member_counts(app, org).await?;
    let rows = app.store.list_roles(org).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = counts.get(&r.name).copied().unwrap_or(0);
            (r, n)
        })
        .collect())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    names::validate_slug("name", name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    if RoleGrants::is_predefined(&name.to_ascii_lowercase()) {
        return Err(ApiError::Conflict {
            field: "name",
            message: format!("'{name}' is a predefined role; choose another name"),
        });
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid(
            "description",
            format!("description is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

/// Validates a custom role's grants and stores them as JSON, leaving out `none`.
fn grants_json(grants: &BTreeMap<Feature, Level>) -> Result<String, ApiError> {
    let levels: Vec<(Feature, Level)> = grants.iter().map(|(f, l)| (*f, *l)).collect();
    validate_custom_grants(&levels).map_err(|e| ApiError::invalid("grants", e.to_string()))?;
    let kept: BTreeMap<Feature, Level> = grants
        .iter()
        .filter(|(_, l)| **l != Level::None)
        .map(|(f, l)| (*f, *l))
        .collect();
    serde_json::to_string(&kept).map_err(ApiError::internal)
}

/// Nobody defines a role that grants more than their own: otherwise `organization_settings:
/// manage` alone would be a way to any permission.
fn check_escalation(caller: &Caller, proposed: &RoleGrants) -> Result<(), ApiError> {
    let mine = &caller.org()?.role;
    if mine.covers(proposed) {
        return Ok(());
    }
    let beyond: Vec<String> = Feature::ALL
        .iter()
        .filter(|f| proposed.level(**f) > mine.level(**f))
        .map(|f| format!("{f}: {}", proposed.level(*f)))
        .collect();
    Err(ApiError::Forbidden {
        code: "role_escalation",
        message: format!(
            "this role would grant more than your role '{}' holds ({}); ask an owner",
            mine.name,
            beyond.join(", ")
        ),
    })
}

/// Nobody cuts down or deletes a role stronger than their own: that would take away from its
/// holders what the editor could never have given them (the rule for members' roles too).
fn check_may_change(caller: &Caller, row: &RoleRow, verb: &str) -> Result<(), ApiError> {
    let mine = &caller.org()?.role;
    if mine.covers(&role_grants(row)?) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "role_escalation",
        message: format!(
            "you cannot {verb} role '{}': it grants more than your role '{}' holds; ask an owner",
            row.name, mine.name
        ),
    })
}

fn role_taken(e: StoreError, name: &str) -> ApiError {
    taken(
        e,
        Taken {
            field: "name",
            message: format!("a role named '{name}' already exists in this organization"),
            default: None,
        },
    )
}

fn predefined(row: &RoleRow, what: &str) -> ApiError {
    ApiError::Invalid {
        code: "predefined_role",
        message: format!(
            "'{}' is a predefined role and cannot be {what}; create a custom role instead (POST /api/v1/roles)",
            row.name
        ),
        field: None,
    }
}

pub(crate) async fn create_role(
    app: &AppState,
    caller: &Caller,
    body: CreateRole,
) -> Result<RoleRow, ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let description = body.description.unwrap_or_default();
    check_description(&description)?;
    let grants = grants_json(&body.grants)?;
    let row = RoleRow {
        id: RoleId::new_random(),
        org_id: org,
        name: body.name,
        description,
        grants,
        predefined: false,
        created_at: caller.now,
        updated_at: caller.now,
    };
    check_escalation(caller, &role_grants(&row)?)?;
    app.store
        .create_role(&row)
        .await
        .map_err(|e| role_taken(e, &row.name))?;
    app.audit
        .record(
            kind::ROLE_CREATED,
            Some(org),
            &caller.actor(),
            json!({"role_id": row.id, "name": row.name, "grants": body.grants}),
        )
        .await?;
    Ok(row)
}

pub(crate) async fn update_role(
    app: &AppState,
    caller: &Caller,
    id: &str,
    body: UpdateRole,
) -> Result<RoleRow, ApiError> {
    let org = caller.org()?.id;
    let mut row = find_role(app, org, id).await?;
    if row.predefined {
        return Err(predefined(&row, "renamed or restricted"));
    }
    check_may_change(caller, &row, "change")?;
    let previous = row.name.clone();
    if let Some(name) = body.name {
        check_name(&name)?;
        row.name = name;
    }
    if let Some(description) = body.description {
        check_description(&description)?;
        row.description = description;
    }
    if let Some(grants) = &body.grants {
        row.grants = grants_json(grants)?;
    }
    check_escalation(caller, &role_grants(&row)?)?;
    row.updated_at = caller.now;
    app.store
        .update_role(&row, &previous)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("role"),
            other => role_taken(other, &row.name),
        })?;
    app.audit
        .record(
            kind::ROLE_UPDATED,
            Some(org),
            &caller.actor(),
            json!({"role_id": row.id, "name": row.name, "previous_name": previous, "grants": body.grants}),
        )
        .await?;
    Ok(row)
}

/// Deletes a custom role, moving its members to `reassign_to` (name or id) first when given.
pub(crate) async fn delete_role(
    app: &AppState,
    caller: &Caller,
    id: &str,
    reassign_to: Option<&str>,
) -> Result<(), ApiError> {
    let org = caller.org()?.id;
    let row = find_role(app, org, id).await?;
    if row.predefined {
        return Err(predefined(&row, "deleted"));
    }
    check_may_change(caller, &row, "delete")?;
    let target = match reassign_to {
        Some(t) => {
            let target = find_role(app, org, t).await.map_err(unknown_reference(
                "reassign_to",
                "role",
                t,
            ))?;
            if target.id == row.id {
                return Err(ApiError::invalid(
                    "reassign_to",
                    "reassign_to names the role being deleted; name another role",
                ));
            }
            // Moving people into a role is assigning it: the same no-escalation rule.
            check_escalation(caller, &role_grants(&target)?)?;
            Some(target)
        }
        None => None,
    };
    app.store
        .delete_role(org, row.id, target.as_ref().map(|t| t.name.as_str()))
        .await
        .map_err(|e| match e {
            StoreError::InUse => ApiError::Conflict {
                field: "id",
                message: format!(
                    "role '{}' is still held by members; move them first (PATCH /api/v1/members/{{user_id}}) or delete with ?reassign_to=<role>",
                    row.name
                ),
            },
            StoreError::NotFound => ApiError::not_found("role"),
            other => other.into(),
        })?;
    app.audit
        .record(
            kind::ROLE_DELETED,
            Some(org),
            &caller.actor(),
            json!({"role_id": row.id, "name": row.name, "reassigned_to": target.map(|t| t.name)}),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_roles_cannot_take_a_predefined_name_in_any_case() {
        for name in ["owner", "Owner", "MEMBER"] {
            assert!(matches!(
                check_name(name),
                Err(ApiError::Conflict { field: "name", .. })
            ));
        }
        assert!(check_name("developer").is_ok());
        assert!(matches!(
            check_name("no spaces"),
            Err(ApiError::Invalid { .. })
        ));
    }

    #[test]
    fn read_on_a_manage_only_feature_is_refused_naming_it_and_none_is_not_stored() {
        let mut grants = BTreeMap::new();
        grants.insert(Feature::AuditLog, Level::Read);
        grants.insert(Feature::StudioProjects, Level::Read);
        match grants_json(&grants) {
            Err(ApiError::Invalid { message, field, .. }) => {
                assert_eq!(field, Some("grants"));
                assert!(message.contains("studio_projects"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        grants.insert(Feature::StudioProjects, Level::None);
        assert_eq!(grants_json(&grants).unwrap(), r#"{"audit_log":"read"}"#);
    }

    #[test]
    fn predefined_rows_resolve_to_their_code_defined_grants_whatever_is_stored() {
        let row = |name: &str| RoleRow {
            id: RoleId::new_random(),
            org_id: OrgId::new_random(),
            name: name.into(),
            description: String::new(),
            grants: r#"{"audit_log":"none"}"#.into(),
            predefined: true,
            created_at: 0,
            updated_at: 0,
        };
        assert!(role_grants(&row("owner")).unwrap().is_owner());
        assert_eq!(role_grants(&row("member")).unwrap(), RoleGrants::member());
    }
}
