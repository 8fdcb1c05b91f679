//! The domain layer: lookups, validation, sealing, cloud sessions and minting, as services that
//! take the caller and the organization. Handlers in `api` extract, call one of these and map
//! the result to a wire type; the permission layer resolves entities through them too.

pub mod access;
pub mod approval_service;
pub mod approval_webhook;
pub mod approvals;
pub mod audit;
pub mod automations;
pub mod env_vars;
pub mod gateway_routes;
pub mod gateway_sessions;
pub mod invitations;
pub mod kickoff;
pub mod llm_connections;
pub mod members;
pub mod minting;
pub mod orgs;
pub mod permissions;
pub mod roles;
pub mod secret_providers;
pub mod sessions;
pub mod static_values;
pub mod tokens;
pub mod wi_configs;

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;

use keyward_core::{AutomationId, OrgId, SecretProviderId, WorkloadIdentityConfigId};
use keyward_store::StoreError;

use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

/// A request body naming something the organization does not have: a 400 on that field (a 404
/// would read as if the route itself were missing).
pub(crate) fn unknown_reference(
    field: &'static str,
    what: &'static str,
    value: &str,
) -> impl FnOnce(ApiError) -> ApiError {
    let value = value.to_owned();
    move |e| match e {
        ApiError::NotFound { .. } => {
            ApiError::invalid(field, format!("no {what} '{value}' in this organization"))
        }
        other => other,
    }
}

/// A path's `{id}`: the resource's UUID, else its name. Either way another organization's is 404.
pub(crate) async fn by_id_or_name<Id, T, ById, ByName>(
    id_or_name: &str,
    what: &'static str,
    by_id: impl FnOnce(Id) -> ById,
    by_name: impl FnOnce(String) -> ByName,
) -> Result<T, ApiError>
where
    Id: FromStr,
    ById: Future<Output = Result<T, StoreError>>,
    ByName: Future<Output = Result<Option<T>, StoreError>>,
{
    match id_or_name.parse::<Id>() {
        Ok(id) => by_id(id).await.map_err(or_not_found(what)),
        Err(_) => by_name(id_or_name.to_owned())
            .await?
            .ok_or(ApiError::not_found(what)),
    }
}

/// What a unique-index violation means for one resource.
pub(crate) struct Taken {
    /// The field a taken name or key is reported on (409).
    pub field: &'static str,
    pub message: String,
    /// The "one default of its kind" index, with its sentence: a 400 on that field, since the
    /// request cannot be right as long as the other default stands.
    pub default: Option<(&'static str, String)>,
}

/// The one mapping of a store conflict to the API's answer; any other error passes through.
pub(crate) fn taken(e: StoreError, taken: Taken) -> ApiError {
    match (e, taken.default) {
        (StoreError::Conflict { field }, Some((default, message))) if field == default => {
            ApiError::invalid(default, message)
        }
        (StoreError::Conflict { .. }, _) => ApiError::Conflict {
            field: taken.field,
            message: taken.message,
        },
        (other, _) => other.into(),
    }
}

/// Names by id, for showing references by name.
fn by_id<K: Ord>(rows: impl IntoIterator<Item = (K, String)>) -> BTreeMap<K, String> {
    rows.into_iter().collect()
}

pub(crate) async fn automation_names(
    app: &AppState,
    org: OrgId,
) -> Result<BTreeMap<AutomationId, String>, ApiError> {
    let rows = app.store.list_automations(org).await?;
    Ok(by_id(rows.into_iter().map(|a| (a.id, a.name))))
}

pub(crate) async fn config_names(
    app: &AppState,
    org: OrgId,
) -> Result<BTreeMap<WorkloadIdentityConfigId, String>, ApiError> {
    let rows = app.store.list_wi_configs(org).await?;
    Ok(by_id(rows.into_iter().map(|c| (c.id, c.name))))
}

pub(crate) async fn credential_names(
    app: &AppState,
    org: OrgId,
) -> Result<BTreeMap<SecretProviderId, String>, ApiError> {
    let rows = app.store.list_secret_providers(org).await?;
    Ok(by_id(rows.into_iter().map(|c| (c.id, c.name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Taken {
        Taken {
            field: "name",
            message: "taken".into(),
            default: Some(("default_for_cloud", "one default".into())),
        }
    }

    #[test]
    fn a_taken_name_is_a_409_and_a_second_default_a_400_on_its_field() {
        match taken(StoreError::Conflict { field: "name" }, rule()) {
            ApiError::Conflict { field, message } => {
                assert_eq!((field, &*message), ("name", "taken"))
            }
            other => panic!("{other:?}"),
        }
        match taken(
            StoreError::Conflict {
                field: "default_for_cloud",
            },
            rule(),
        ) {
            ApiError::Invalid { field, message, .. } => {
                assert_eq!(
                    (field, &*message),
                    (Some("default_for_cloud"), "one default")
                )
            }
            other => panic!("{other:?}"),
        }
        let no_default = Taken {
            default: None,
            ..rule()
        };
        assert!(matches!(
            taken(
                StoreError::Conflict {
                    field: "default_for_cloud"
                },
                no_default
            ),
            ApiError::Conflict { field: "name", .. }
        ));
        assert!(matches!(
            taken(StoreError::NotFound, rule()),
            ApiError::NotFound { .. }
        ));
    }
}
