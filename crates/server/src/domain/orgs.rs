//! Organizations: the caller's memberships, and creating one with the caller as its owner.

use keyward_core::api::v1::CreateOrg;
use keyward_core::permission::RoleGrants;
use keyward_core::{OrgId, names};
use keyward_store::{Membership, OrgRow};
use serde_json::json;

use crate::audit::kind;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The caller's membership of the organization `uuid` names; another one's is "not found".
pub(crate) async fn membership_of(
    app: &AppState,
    caller: &Caller,
    uuid: &str,
) -> Result<Membership, ApiError> {
    let id: OrgId = uuid
        .parse()
        .map_err(|_| ApiError::not_found("organization"))?;
    app.store
        .membership(id, caller.user()?)
        .await?
        .ok_or(ApiError::not_found("organization"))
}

pub(crate) async fn create_org(
    app: &AppState,
    caller: &Caller,
    body: CreateOrg,
) -> Result<Membership, ApiError> {
    names::validate_display_name("name", &body.name)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    let user = caller.user()?;
    let row = OrgRow {
        id: OrgId::new_random(),
        name: body.name.trim().to_owned(),
        created_at: caller.now,
    };
    app.store.create_org(&row, user, RoleGrants::OWNER).await?;
    app.audit
        .record(
            kind::ORG_CREATED,
            Some(row.id),
            &caller.actor(),
            json!({"name": row.name}),
        )
        .await?;
    Ok(Membership {
        org: row,
        role: RoleGrants::OWNER.to_owned(),
    })
}
