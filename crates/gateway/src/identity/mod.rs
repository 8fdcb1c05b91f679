//! Who is calling, verified in memory on the hot path: Keyward workload tokens (the platform's
//! JWKS, cached; an unknown `kid` refetches, rate-limited), the organization IdP's access tokens
//! (issuer, audience, JWKS), and Keyward personal access tokens / device-login tokens (looked up
//! once, then cached briefly).
//!
//! SKELETON — the identity helper owns this folder; the types and signatures below are the
//! contract the pipeline codes against (add, do not rename).

use std::path::PathBuf;
use std::sync::Arc;

use keyward_policy::{Accept, Principal};
use keyward_store::Store;
use url::Url;

/// Where tokens come from and what they must say.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// Keyward's URL: its discovery names the workload issuer and its JWKS.
    pub platform_url: Option<Url>,
    /// A CA bundle the platform's certificate chains to (default: the data dir's CA, else the
    /// platform roots).
    pub platform_ca: Option<PathBuf>,
    /// The `aud` workload tokens must carry to be accepted here.
    pub workload_audience: String,
    /// The organization identity provider, when its access tokens are accepted.
    pub idp: Option<IdpSettings>,
}

#[derive(Clone, Debug)]
pub struct IdpSettings {
    pub issuer: String,
    pub audience: String,
    /// Default: from the issuer's discovery document.
    pub jwks_url: Option<Url>,
    /// The claim holding the person's groups (default `groups`).
    pub groups_claim: String,
    pub ca_file: Option<PathBuf>,
}

/// Why a caller was refused: which check failed, never the token itself.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no credential: send Authorization: Bearer <token>")]
    Missing,
    /// The token was read and refused; `check` names the failed check in words.
    #[error("{check}")]
    Refused { check: String },
    /// The route does not take this kind of caller.
    #[error("this route does not accept {kind} callers; it accepts {accepted}")]
    NotAccepted { kind: String, accepted: String },
    /// A key set or the store could not be reached: a 503-class problem, not the caller's.
    #[error("{0}")]
    Unavailable(String),
}

/// The verifiers, built once and shared by every request.
pub struct Verifier {}

impl Verifier {
    pub async fn new(
        settings: IdentitySettings,
        store: Arc<dyn Store>,
    ) -> Result<Verifier, IdentityError> {
        let _ = (settings, store);
        todo!()
    }

    /// Verifies the request's bearer token (`Authorization`) for a route accepting `accept`.
    /// `now` is Unix seconds.
    pub async fn verify(
        &self,
        headers: &http::HeaderMap,
        accept: &[Accept],
        now: i64,
    ) -> Result<Principal, IdentityError> {
        let _ = (headers, accept, now);
        todo!()
    }
}
