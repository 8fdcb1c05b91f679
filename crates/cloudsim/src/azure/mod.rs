//! Azure: Entra's v2.0 token endpoint for federated client assertions and client secrets (plus
//! the discovery documents MSAL reads first) and Key Vault secrets with its bearer challenge and
//! Azure RBAC.

pub mod entra;
pub mod key_vault;
pub mod openai;
