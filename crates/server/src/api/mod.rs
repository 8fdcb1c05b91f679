//! Handlers of `/api/v1`, one module per resource. Each handler extracts, calls the store
//! through a small amount of domain logic, and returns a wire type.

pub mod audit;
pub mod automations;
pub mod env_vars;
pub mod llm_connections;
pub mod members;
pub mod orgs;
pub mod permissions;
pub mod provider_checks;
pub mod roles;
pub mod runtime;
pub mod secret_providers;
pub mod setup;
pub mod static_values;
pub mod tokens;
pub mod wi_configs;
pub mod workload_identity;

use std::future::Future;
use std::str::FromStr;

use keyward_core::api::v1::TokenInfo;
use keyward_store::{StoreError, TokenRow};

use crate::clock::to_datetime;
use crate::error::{ApiError, or_not_found};

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

pub(crate) fn token_info(row: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: row.id,
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        automation_id: row.automation_id,
        created_at: to_datetime(row.created_at),
        expires_at: row.expires_at.map(to_datetime),
        revoked_at: row.revoked_at.map(to_datetime),
    }
}
