//! GCP: STS token exchange, the OAuth 2.0 JWT bearer grant, IAM Credentials
//! `generateAccessToken`, Secret Manager access/list and a Vertex `generateContent` stand-in,
//! with GCP's checks and error shapes (docs/cloud-wire.md).

mod access;
mod errors;
pub mod iam_credentials;
pub mod keys;
pub mod oauth2;
pub mod secret_manager;
pub mod sts;
pub mod vertex;
