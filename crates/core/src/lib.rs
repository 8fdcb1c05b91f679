//! Keyward's domain vocabulary: identifiers, the permission model, audience rules and the wire
//! types of the HTTP API. Nothing here does I/O, so every other crate can depend on it.

pub mod api;
pub mod audience;
pub mod endpoints;
pub mod env_keys;
pub mod error_chain;
pub mod ids;
pub mod names;
pub mod permission;
pub mod secrets;
pub mod subject;
pub mod workload;

pub use audience::{Audience, AudienceError};
pub use ids::{
    ApprovalId, AutomationId, EnvVarId, GatewayRouteId, LlmConnectionId, OrgId, RoleId,
    SecretProviderId, TokenId, UserId, WorkloadIdentityConfigId,
};
pub use permission::{AutomationPermission, Entity, Feature, Level, Need};
