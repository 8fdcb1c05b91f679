//! The typed client of Keyward's `/api/v1`, shared by the runtime, the admin CLI and the people's CLI.
//!
//! **TLS policy.** Every connection trusts the platform's root certificates and, when given, the
//! PEM bundle named by `KEYWARD_CA_FILE` / `--ca-file` on top of them (Keyward's generated
//! `keyward-data/tls/ca.pem` for a self-signed server, plus an identity provider's CA when the
//! people's CLI reaches one). Nothing else is trusted and certificate checks are never relaxed.
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
pub use http::{Client, http_client, segment};
pub use resources::AuditQuery;
