//! Automations (deployed crews and flows): lookup by id or name, and their lifecycle.

use keyward_core::api::v1::{CreateAutomation, UpdateAutomation};
use keyward_core::{AutomationId, OrgId, names};
use keyward_store::{AutomationRow, StoreError};
use serde_json::json;

use super::access::visible_automations;
use super::{Taken, by_id_or_name, taken, unknown_reference};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

const MAX_DESCRIPTION: usize = 2000;

/// `{id}` in a path is the automation's UUID or its name.
pub(crate) async fn find_automation(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<AutomationRow, ApiError> {
    by_id_or_name(
        id_or_name,
        "automation",
        |id: AutomationId| app.store.get_automation(org, id),
        |name| async move { app.store.find_automation_by_name(org, &name).await },
    )
    .await
}

/// Automation ids for ids-or-names; an unknown one is a 400 naming it.
pub(crate) async fn automation_ids(
    app: &AppState,
    org: OrgId,
    given: &[String],
) -> Result<Vec<AutomationId>, ApiError> {
    let mut ids = Vec::with_capacity(given.len());
    for item in given {
        let found = find_automation(app, org, item)
            .await
            .map_err(unknown_reference("automations", "automation", item))?;
        ids.push(found.id);
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The organization's automations the caller sees (private ones only when shared with them).
pub(crate) async fn list_automations(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<AutomationRow>, ApiError> {
    let rows = app.store.list_automations(caller.org()?.id).await?;
    visible_automations(app, caller, rows).await
}

fn check_name(name: &str) -> Result<(), ApiError> {
    names::validate_slug("name", name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))
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

fn automation_taken(e: StoreError, name: &str) -> ApiError {
    taken(
        e,
        Taken {
            field: "name",
            message: format!("an automation named '{name}' already exists in this organization"),
            default: None,
        },
    )
}

async fn record_automation(
    app: &AppState,
    caller: &Caller,
    event: &str,
    row: &AutomationRow,
) -> Result<(), ApiError> {
    app.audit
        .record(
            event,
            Some(row.org_id),
            &caller.actor(),
            json!({"automation_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(())
}

pub(crate) async fn create_automation(
    app: &AppState,
    caller: &Caller,
    body: CreateAutomation,
) -> Result<AutomationRow, ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let description = body.description.unwrap_or_default();
    check_description(&description)?;
    let row = AutomationRow {
        id: AutomationId::new_random(),
        org_id: org,
        name: body.name,
        description,
        created_at: caller.now,
        updated_at: caller.now,
    };
    app.store
        .create_automation(&row)
        .await
        .map_err(|e| automation_taken(e, &row.name))?;
    record_automation(app, caller, kind::AUTOMATION_CREATED, &row).await?;
    Ok(row)
}

pub(crate) async fn update_automation(
    app: &AppState,
    caller: &Caller,
    mut row: AutomationRow,
    body: UpdateAutomation,
) -> Result<AutomationRow, ApiError> {
    if let Some(name) = body.name {
        check_name(&name)?;
        row.name = name;
    }
    if let Some(description) = body.description {
        check_description(&description)?;
        row.description = description;
    }
    row.updated_at = caller.now;
    app.store
        .update_automation(&row)
        .await
        .map_err(|e| automation_taken(e, &row.name))?;
    record_automation(app, caller, kind::AUTOMATION_UPDATED, &row).await?;
    Ok(row)
}

pub(crate) async fn delete_automation(
    app: &AppState,
    caller: &Caller,
    row: &AutomationRow,
) -> Result<(), ApiError> {
    // Its tokens go with it (ON DELETE CASCADE), so they stop working at once.
    app.store
        .delete_automation(row.org_id, row.id)
        .await
        .map_err(or_not_found("automation"))?;
    record_automation(app, caller, kind::AUTOMATION_DELETED, row).await
}
