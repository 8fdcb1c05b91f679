//! Handlers of `/api/v1`, one module per resource. Each handler extracts, calls one service of
//! the domain layer, and maps the result to a wire type.

pub mod approvals;
pub mod audit;
pub mod automations;
pub mod env_vars;
pub mod gateway_routes;
pub mod gateway_sessions;
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

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use keyward_core::api::v1::TokenInfo;
use keyward_store::TokenRow;

use crate::clock::to_datetime;
use crate::error::ApiError;

/// A query string that does not fit the handler is a 400 with the JSON error body, naming the
/// parameters it accepts (axum's own rejection is a text/plain body).
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>, accepted: &str) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::Invalid {
        code: "invalid_query",
        message: format!("{} (accepted: {accepted})", e.body_text()),
        field: None,
    })
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
