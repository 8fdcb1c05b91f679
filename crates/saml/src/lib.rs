//! Keyward's SAML 2.0 service provider: SP-initiated Web Browser SSO with the HTTP-Redirect or
//! HTTP-POST binding for the request and the HTTP-POST binding for the response, for Microsoft
//! Entra ID and any standard SAML IdP.
//!
//! Verification is strict and only trusts what the IdP's signature covers: the signature is
//! checked (exclusive c14n, RSA-SHA256/384/512 with aws-lc-rs) on the very parsed node that is
//! then read, the document must hold exactly one assertion and no duplicate IDs, and the issuer,
//! audience, recipient, InResponseTo, time window and a replay cache are all enforced.
//!
//! ```no_run
//! # async fn demo(metadata_xml: &str, saml_response: &str, now: time::OffsetDateTime) -> Result<(), keyward_saml::SamlError> {
//! use keyward_saml::{IdpConfig, MemoryReplayCache, ServiceProvider, SpConfig};
//! let idp = IdpConfig::from_metadata(metadata_xml)?;
//! let sp = ServiceProvider::new(SpConfig::new(
//!     "https://keyward.example.com/saml",
//!     "https://keyward.example.com/auth/saml/acs",
//!     idp,
//! )?)?;
//! // GET /auth/saml/login: remember `req.pending` (signed cookie), redirect the browser.
//! let req = sp.authn_request("r=/console", now)?;
//! // POST /auth/saml/acs: SAMLResponse from the form, `pending` from the cookie.
//! let replay = MemoryReplayCache::default();
//! let login = sp.verify_response(saml_response, &req.pending, now, &replay).await?;
//! println!("signed in: assertion {} from {}", login.assertion_id, login.issuer);
//! # Ok(()) }
//! ```

mod c14n;
mod cert;
mod config;
mod dsig;
mod error;
mod replay;
mod request;
mod response;
mod xml;

pub use cert::IdpCert;
pub use config::{IdpConfig, SpConfig};
pub use error::SamlError;
pub use replay::{MemoryReplayCache, ReplayCache, ReplayCacheError};
pub use request::{AuthnRequest, PendingRequest, PostForm};
pub use response::VerifiedLogin;

use time::OffsetDateTime;

/// Entry points for the fuzz targets (crates/fuzz), which reach the canonicalization directly;
/// not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Exclusive c14n of the document's root element, as the verifier runs it (parsed with the
    /// same limits), without comments unless `with_comments`.
    pub fn canonicalize(xml: &str, with_comments: bool) -> Result<String, String> {
        let doc = crate::xml::parse(xml).map_err(|e| e.to_string())?;
        let opts = crate::c14n::Options {
            exclude: None,
            inclusive_prefixes: &[],
            with_comments,
        };
        crate::c14n::canonicalize(doc.root_element(), &opts)
    }
}

/// A configured service provider. Cheap to share (`Arc`) across requests.
#[derive(Debug, Clone)]
pub struct ServiceProvider {
    config: SpConfig,
}

impl ServiceProvider {
    pub fn new(config: SpConfig) -> Result<Self, SamlError> {
        config.validate()?;
        Ok(Self { config })
    }

    pub fn config(&self) -> &SpConfig {
        &self.config
    }

    /// Starts a login: a new AuthnRequest for the IdP. Keep `pending` (it is not secret, but it
    /// must not be forgeable by the browser: a signed cookie or a server-side row) and send the
    /// browser to `redirect_url` (or post `post_form`). `relay_state` (≤ 80 bytes) comes back
    /// with the response, unsigned: use it only as a hint such as the page to return to.
    pub fn authn_request(
        &self,
        relay_state: &str,
        now: OffsetDateTime,
    ) -> Result<AuthnRequest, SamlError> {
        request::build(&self.config, relay_state, now)
    }

    /// Verifies the `SAMLResponse` form field posted to the ACS URL against the login this
    /// browser started (`pending`), and consumes the assertion id in `replay`.
    pub async fn verify_response(
        &self,
        saml_response: &str,
        pending: &PendingRequest,
        now: OffsetDateTime,
        replay: &dyn ReplayCache,
    ) -> Result<VerifiedLogin, SamlError> {
        response::verify(&self.config, saml_response, pending, now, replay).await
    }

    /// This SP's metadata XML, to upload to the IdP (an unsigned EntityDescriptor with the
    /// entity id and the HTTP-POST ACS URL, and `WantAssertionsSigned="true"`).
    pub fn metadata_xml(&self) -> String {
        format!(
            concat!(
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{id}">"#,
                r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
                r#"<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>"#,
                r#"</md:SPSSODescriptor></md:EntityDescriptor>"#
            ),
            id = request::escape(&self.config.entity_id),
            acs = request::escape(&self.config.acs_url),
        )
    }
}
