//! Wire types of the HTTP API, by version. Serde only; validated at the edge by the server.

pub mod approvals;
pub mod gateway;
pub mod rbac;
pub mod secrets;
pub mod sessions;
pub mod v1;
