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

impl PostForm {
    /// A minimal page that posts the form at once. `script_nonce` is the CSP nonce of the page,
    /// if the server sends a `script-src 'nonce-…'` policy; without script the button remains.
    pub fn html(&self, script_nonce: Option<&str>) -> String {
        let nonce = script_nonce
            .map(|n| format!(" nonce=\"{}\"", escape(n)))
            .unwrap_or_default();
        let relay = if self.relay_state.is_empty() {
            String::new()
        } else {
            format!(
                r#"<input type="hidden" name="RelayState" value="{}">"#,
                escape(&self.relay_state)
            )
        };
        format!(
            concat!(
                r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signing in…</title></head><body>"#,
                r#"<form method="post" action="{action}">"#,
                r#"<input type="hidden" name="SAMLRequest" value="{req}">{relay}"#,
                r#"<noscript><button type="submit">Continue to sign in</button></noscript></form>"#,
                r#"<script{nonce}>document.forms[0].submit();</script></body></html>"#
            ),
            action = escape(&self.action),
            req = escape(&self.saml_request),
            relay = relay,
            nonce = nonce,
        )
    }
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
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::config::IdpConfig;
    use crate::config::tests::CERT_B64;

    fn cfg() -> SpConfig {
        let idp = IdpConfig::new(
            "https://idp.test",
            "https://idp.test/sso?tenant=a",
            CERT_B64,
        )
        .unwrap();
        SpConfig::new("https://sp.test/saml", "https://sp.test/acs?x=1&y=2", idp).unwrap()
    }

    #[test]
    fn redirect_url_carries_the_deflated_request_and_relay_state() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let req = build(&cfg(), "back=/c", now).unwrap();
        assert!(req.pending.id.starts_with('_'));
        assert_eq!(req.pending.issued_at, 1_800_000_000);
        let url = url::Url::parse(&req.redirect_url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "a");
        assert_eq!(q["RelayState"], "back=/c");
        let deflated = STANDARD.decode(&q["SAMLRequest"]).unwrap();
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .read_to_string(&mut xml)
            .unwrap();
        assert_eq!(xml, req.xml);
        assert!(xml.contains(&format!(r#"ID="{}""#, req.pending.id)));
        assert!(xml.contains(r#"IssueInstant="2027-01-15T08:00:00Z""#));
        assert!(xml.contains(r#"AssertionConsumerServiceURL="https://sp.test/acs?x=1&amp;y=2""#));
        assert!(roxmltree::Document::parse(&xml).is_ok());
        assert_eq!(
            STANDARD.decode(&req.post_form.saml_request).unwrap(),
            xml.as_bytes()
        );
    }

    #[test]
    fn post_form_page_escapes_its_values() {
        let form = PostForm {
            action: "https://idp.test/sso?a=1&b=\"2\"".into(),
            saml_request: "PHg+".into(),
            relay_state: "<script>".into(),
        };
        let html = form.html(Some("n0"));
        assert!(html.contains(r#"action="https://idp.test/sso?a=1&amp;b=&quot;2&quot;""#));
        assert!(html.contains(r#"value="&lt;script&gt;""#));
        assert!(html.contains(r#"<script nonce="n0">"#));
    }

    #[test]
    fn long_relay_state_is_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let err = build(&cfg(), &"x".repeat(81), now).unwrap_err();
        assert!(err.to_string().contains("at most 80"), "{err}");
    }
}
