//! The typed client of Keyward's `/api/v1`, shared by the runtime, the admin CLI and the people's CLI.
//!
//! **TLS policy.** With a PEM bundle named by `KEYWARD_CA_FILE` / `--ca-file` (Keyward's generated
//! `keyward-data/tls/ca.pem` for a self-signed server), connections to Keyward trust that bundle
//! only; without one, the platform's root certificates ([`Trust::Keyward`]). The people's CLI also
//! reaches the company's identity provider and trusts both ([`Trust::KeywardAndPlatform`]).
//! Certificate checks are never relaxed.
//!
//! **Redirects are never followed.** reqwest strips the `Authorization` header only across hosts;
//! a redirect to another port or scheme of the same host would carry the bearer along. A 3xx is
//! answered as [`ClientError::Refused`].
//!
//! **Errors.** A refusal with Keyward's error body (`{"error", "message", "field"?}`) becomes
//! [`ClientError::Api`] with the status, code, message and field; anything else that is not a
//! success is [`ClientError::Refused`] with the raw answer.

mod error;
mod http;
mod resources;

pub use error::ClientError;
pub use http::{Client, Trust, http_client, http_client_trusting, segment};
pub use resources::AuditQuery;
