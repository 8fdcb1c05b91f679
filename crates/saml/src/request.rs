//! SP-initiated login: the AuthnRequest, for the HTTP-Redirect or the HTTP-POST binding.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::config::SpConfig;
use crate::error::SamlError;

/// SAML bindings cap RelayState at 80 bytes.
const RELAY_STATE_MAX: usize = 80;

/// A login that was started and not yet answered. The caller keeps it (in a signed, HttpOnly
/// cookie or in the database) and hands it back to `verify_response`: its `id` is the only
/// InResponseTo accepted, and `issued_at` bounds how long the login may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub id: String,
    /// Unix seconds.
    pub issued_at: i64,
}

/// The HTTP-POST binding's form: an auto-submitting HTML form posts these fields to `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostForm {
    pub action: String,
    /// Base64 of the AuthnRequest XML (the `SAMLRequest` field).
    pub saml_request: String,
    pub relay_state: String,
}

/// A new AuthnRequest in both bindings; send the browser to one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequest {
    pub pending: PendingRequest,
    /// HTTP-Redirect binding: answer with `303 See Other` to this URL.
    pub redirect_url: String,
    /// HTTP-POST binding.
    pub post_form: PostForm,
    /// The request XML, for debugging and tests.
    pub xml: String,
}

pub(crate) fn build(
    cfg: &SpConfig,
    relay_state: &str,
    now: OffsetDateTime,
) -> Result<AuthnRequest, SamlError> {
    if relay_state.len() > RELAY_STATE_MAX {
        return Err(SamlError::Config(format!(
            "RelayState is {} bytes; SAML allows at most {RELAY_STATE_MAX}: keep a short key and store the rest server-side",
            relay_state.len()
        )));
    }
    // xs:ID must not start with a digit; a leading underscore is what IdPs do too.
    let id = format!("_{}", uuid::Uuid::new_v4().simple());
    let instant = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| SamlError::Config(format!("clock: {e}")))?
        .format(&Rfc3339)
        .map_err(|e| SamlError::Config(format!("clock: {e}")))?;

    let xml = format!(
        concat!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#,
            r#" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}""#,
            r#" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" AssertionConsumerServiceURL="{acs}">"#,
            r#"<saml:Issuer>{issuer}</saml:Issuer>"#,
            r#"<samlp:NameIDPolicy AllowCreate="true"/>"#,
            r#"</samlp:AuthnRequest>"#
        ),
        id = id,
        instant = instant,
        dest = escape(&cfg.idp.sso_url),
        acs = escape(&cfg.acs_url),
        issuer = escape(&cfg.entity_id),
    );

    // HTTP-Redirect: raw DEFLATE, base64, then URL-encoded (saml-bindings §3.4.4.1).
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    enc.write_all(xml.as_bytes())
        .map_err(|e| SamlError::Config(format!("deflate: {e}")))?;
    let deflated = enc
        .finish()
        .map_err(|e| SamlError::Config(format!("deflate: {e}")))?;
    let mut url = url::Url::parse(&cfg.idp.sso_url)
        .map_err(|e| SamlError::Config(format!("IdP SSO URL: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("SAMLRequest", &STANDARD.encode(deflated));
        if !relay_state.is_empty() {
            q.append_pair("RelayState", relay_state);
        }
    }

    Ok(AuthnRequest {
        pending: PendingRequest {
            id,
            issued_at: now.unix_timestamp(),
        },
        redirect_url: url.into(),
        post_form: PostForm {
            action: cfg.idp.sso_url.clone(),
            saml_request: STANDARD.encode(xml.as_bytes()),
            relay_state: relay_state.to_owned(),
        },
        xml,
    })
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
