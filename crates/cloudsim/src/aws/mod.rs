//! AWS: STS `AssumeRoleWithWebIdentity`, `AssumeRole` and `GetCallerIdentity` (query protocol,
//! XML answers), Secrets Manager (JSON 1.1 protocol) and Bedrock `InvokeModel` (REST), with SigV4 checked on every signed call
//! and IAM trust and identity policies evaluated as AWS does for these actions.

pub mod bedrock;
mod caller;
mod policy;
pub mod secrets_manager;
pub mod sigv4;
pub mod sts;
pub mod types;
