//! AWS: STS `AssumeRoleWithWebIdentity`, `AssumeRole` and `GetCallerIdentity` (query protocol,
//! XML answers) and Secrets Manager (JSON 1.1 protocol), with SigV4 checked on every signed call
//! and IAM trust and identity policies evaluated as AWS does for these actions.

mod caller;
mod policy;
pub mod secrets_manager;
pub mod sigv4;
pub mod sts;
pub mod types;
