//! Credential injection: the upstream credential is the gateway's, never the caller's. The
//! caller's `Authorization`, `Cookie`, `x-api-key`, `api-key` and `x-goog-api-key` are stripped
//! (`strip_caller_credentials`), then one route credential is added: a secrets-manager secret as
//! a header, a GCP access token (workload identity federation), an Entra token for a scope,
//! AWS SigV4 with federated session credentials, or a Keyward token for an audience. Each is
//! cached with its expiry and refreshed before it.
//!
//! SKELETON — the credentials helper owns this folder; the signatures below are the contract
//! the pipeline codes against (add, do not rename).

use std::path::PathBuf;

use keyward_policy::CredentialSpec;

/// The headers a caller may carry its own credential in; none reaches the upstream.
pub const CALLER_CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

/// Removes every caller credential header.
pub fn strip_caller_credentials(headers: &mut http::HeaderMap) {
    for name in CALLER_CREDENTIAL_HEADERS {
        headers.remove(name);
    }
}

#[derive(Clone, Debug)]
pub struct CredentialSettings {
    /// Keyward's URL, for kickoff plans and minting with an automation's token.
    pub platform_url: Option<url::Url>,
    pub platform_ca: Option<PathBuf>,
    /// `KEYWARD_CLOUD_ENDPOINTS`: where the cloud calls go (cloudsim in tests).
    pub cloud_endpoints: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The credential could not be had; the message names the route's credential, the step and
    /// the fix, never a secret.
    #[error("{0}")]
    Unavailable(String),
}

/// Every route's credentials, cached until shortly before they expire.
pub struct Injector {}

impl Injector {
    pub fn new(settings: CredentialSettings) -> Result<Injector, CredentialError> {
        let _ = settings;
        todo!()
    }

    /// Adds the route's credential to an outgoing request whose caller credentials were already
    /// stripped. `body` is the whole request body when the credential signs it (AWS), which the
    /// pipeline buffers for such routes (within the inspection limit).
    pub async fn apply(
        &self,
        route: &str,
        spec: &CredentialSpec,
        request: &mut http::request::Parts,
        body: Option<&[u8]>,
    ) -> Result<(), CredentialError> {
        let _ = (route, spec, request, body);
        todo!()
    }

    /// Whether the credential signs the body (the pipeline must buffer it).
    pub fn needs_body(spec: &CredentialSpec) -> bool {
        matches!(spec, CredentialSpec::Aws { .. })
    }
}
