//! Handlers of `/api/v1`, one module per resource. Each handler extracts, calls the store
//! through a small amount of domain logic, and returns a wire type.

pub mod audit;
pub mod automations;
pub mod llm_connections;
pub mod orgs;
pub mod runtime;
pub mod setup;
pub mod tokens;
pub mod wi_configs;
pub mod workload_identity;

use keyward_core::api::v1::TokenInfo;
use keyward_store::TokenRow;

use crate::clock::to_datetime;

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
