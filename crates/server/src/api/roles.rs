//! Roles of an organization (SPEC §8): Owner and Member are predefined and fixed; custom roles
//! give any feature a level, except that manage-only features take `manage` or `none`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use keyward_core::api::rbac::{CreateRole, Role, UpdateRole};
use keyward_core::permission::{RoleGrants, validate_custom_grants};
use keyward_core::{Feature, Level, OrgId, RoleId, names};
use keyward_store::{RoleRow, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::audit::kind;
use crate::caller::Caller;
use crate::clock::{self, to_datetime};
use crate::error::{ApiError, ApiJson};
use crate::rbac::role_grants;
use crate::state::AppState;

const MAX_DESCRIPTION: usize = 2000;

/// `{id}` is the role's UUID or its name.
pub(crate) async fn find(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<RoleRow, ApiError> {
    super::by_id_or_name(
        id_or_name,
        "role",
        |id: RoleId| app.store.get_role(org, id),
        |name| async move { app.store.find_role_by_name(org, &name).await },
    )
    .await
}

fn wire(row: &RoleRow, members: usize) -> Result<Role, ApiError> {
    let grants = role_grants(row)?;
    Ok(Role {
        id: row.id,
        name: row.name.clone(),
        description: row.description.clone(),
        predefined: row.predefined,
        unrestricted: grants.is_owner(),
        grants: Feature::ALL
            .iter()
            .map(|f| (*f, grants.level(*f)))
            .collect(),
        members,
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    })
}

async fn member_counts(app: &AppState, org: OrgId) -> Result<BTreeMap<String, usize>, ApiError> {
    let mut counts = BTreeMap::new();
    for m in app.store.list_members(org).await? {
        *counts.entry(m.role).or_default() += 1;
    }
    Ok(counts)
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
/// holders what the editor could never have given them (the rule members::set_role keeps).
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

fn name_taken(e: StoreError, name: &str) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            field: "name",
            message: format!("a role named '{name}' already exists in this organization"),
        },
        other => other.into(),
    }
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

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Role>>, ApiError> {
    let org = caller.org()?.id;
    let counts = member_counts(&app, org).await?;
    let rows = app.store.list_roles(org).await?;
    rows.iter()
        .map(|r| wire(r, counts.get(&r.name).copied().unwrap_or(0)))
        .collect::<Result<_, _>>()
        .map(Json)
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Role>, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    let counts = member_counts(&app, org).await?;
    Ok(Json(wire(
        &row,
        counts.get(&row.name).copied().unwrap_or(0),
    )?))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<(StatusCode, Json<Role>), ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let description = body.description.unwrap_or_default();
    check_description(&description)?;
    let grants = grants_json(&body.grants)?;
    let now = clock::now();
    let row = RoleRow {
        id: RoleId::new_random(),
        org_id: org,
        name: body.name,
        description,
        grants,
        predefined: false,
        created_at: now,
        updated_at: now,
    };
    check_escalation(&caller, &role_grants(&row)?)?;
    app.store
        .create_role(&row)
        .await
        .map_err(|e| name_taken(e, &row.name))?;
    app.audit
        .record(
            kind::ROLE_CREATED,
            Some(org),
            &caller.actor(),
            json!({"role_id": row.id, "name": row.name, "grants": body.grants}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(wire(&row, 0)?)))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> Result<Json<Role>, ApiError> {
    let org = caller.org()?.id;
    let mut row = find(&app, org, &id).await?;
    if row.predefined {
        return Err(predefined(&row, "renamed or restricted"));
    }
    check_may_change(&caller, &row, "change")?;
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
    check_escalation(&caller, &role_grants(&row)?)?;
    row.updated_at = clock::now();
    app.store
        .update_role(&row, &previous)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("role"),
            other => name_taken(other, &row.name),
        })?;
    app.audit
        .record(
            kind::ROLE_UPDATED,
            Some(org),
            &caller.actor(),
            json!({"role_id": row.id, "name": row.name, "previous_name": previous, "grants": body.grants}),
        )
        .await?;
    let counts = member_counts(&app, org).await?;
    Ok(Json(wire(
        &row,
        counts.get(&row.name).copied().unwrap_or(0),
    )?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Moves the role's members to this role (name or id) before deleting it.
    pub reassign_to: Option<String>,
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid {
        code: "invalid_query",
        message: format!(
            "{}; the only parameter is ?reassign_to=<role>",
            e.body_text()
        ),
        field: None,
    })?;
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    if row.predefined {
        return Err(predefined(&row, "deleted"));
    }
    check_may_change(&caller, &row, "delete")?;
    let target = match &query.reassign_to {
        Some(t) => {
            let target = find(&app, org, t).await.map_err(super::unknown_reference(
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
            check_escalation(&caller, &role_grants(&target)?)?;
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
    Ok(StatusCode::NO_CONTENT)
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
