//! Verification of a SAMLResponse (HTTP-POST binding) and extraction of the login.
//!
//! Order of the checks, and why:
//! 1. Shape: size, base64, XML without DTD, a protocol `Response` root. Cheap and unauthenticated.
//! 2. Status: an IdP error (user not assigned, MFA failed) comes unsigned and without an
//!    assertion; saying so beats saying "unsigned".
//! 3. Wrapping defences: no duplicate IDs, exactly one `Assertion` in the whole document, as a
//!    direct child of the `Response`, and `ds:Signature` only directly inside the Response or that
//!    Assertion.
//! 4. Signatures, verified on the very nodes that are read afterwards (see `c14n`).
//! 5. Content of the signed assertion: issuer, audience, bearer confirmation (recipient,
//!    expiry, InResponseTo), conditions window, then the login request's age.
//! 6. Replay: last, so that only an otherwise valid assertion consumes its id.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use roxmltree::Node;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::SpConfig;
use crate::dsig;
use crate::error::SamlError;
use crate::replay::ReplayCache;
use crate::request::PendingRequest;
use crate::xml::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, child, children, is, one_child};

/// Bigger than any real response (Entra's with many groups stay under 64 KiB).
const MAX_RESPONSE_BASE64: usize = 512 * 1024;

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Attribute names, Entra ID's claim URIs first, then common generic and LDAP-style names.
const EMAIL_ATTRS: &[&str] = &[
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "email",
    "emailAddress",
    "mail",
    "urn:oid:0.9.2342.19200300.100.1.3",
];
const NAME_ATTRS: &[&str] = &[
    "http://schemas.microsoft.com/identity/claims/displayname",
    "displayName",
    "name",
    "urn:oid:2.16.840.1.113730.3.1.241",
];
const ROLE_ATTRS: &[&str] = &[
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    "Role",
    "role",
    "roles",
];
const GROUP_ATTRS: &[&str] = &[
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "groups",
    "Groups",
    "memberOf",
];

/// A verified login. Holds personal data: log `assertion_id` and `issuer` only.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedLogin {
    pub issuer: String,
    pub assertion_id: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// When the IdP wants this session to end (AuthnStatement SessionNotOnOrAfter).
    pub session_not_on_or_after: Option<OffsetDateTime>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Entra's role claim (`…/claims/role`, where App roles such as `member` and
    /// `factory-admin` arrive) and generic `Role`/`role`/`roles`.
    pub roles: Vec<String>,
    /// Entra's groups claim and generic `groups`/`memberOf`.
    pub groups: Vec<String>,
    /// Every attribute of the signed assertion, by Name.
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for VerifiedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the subject or attribute values: Debug output ends up in logs.
        f.debug_struct("VerifiedLogin")
            .field("issuer", &self.issuer)
            .field("assertion_id", &self.assertion_id)
            .field("session_index", &self.session_index)
            .finish_non_exhaustive()
    }
}

pub(crate) async fn verify(
    cfg: &SpConfig,
    saml_response: &str,
    pending: &PendingRequest,
    now: OffsetDateTime,
    replay: &dyn ReplayCache,
) -> Result<VerifiedLogin, SamlError> {
    let (login, replay_until) = verify_signed(cfg, saml_response, pending, now)?;
    let first = replay
        .first_use(&login.assertion_id, replay_until, now)
        .await
        .map_err(|e| SamlError::ReplayCache(e.0))?;
    if !first {
        return Err(SamlError::Replayed(login.assertion_id));
    }
    Ok(login)
}

/// Everything but the replay cache; returns the login and how long its id must be remembered.
fn verify_signed(
    cfg: &SpConfig,
    saml_response: &str,
    pending: &PendingRequest,
    now: OffsetDateTime,
) -> Result<(VerifiedLogin, OffsetDateTime), SamlError> {
    // 1. Shape.
    if saml_response.len() > MAX_RESPONSE_BASE64 {
        return Err(SamlError::TooLarge {
            size: saml_response.len(),
            limit: MAX_RESPONSE_BASE64,
        });
    }
    // Form posts may wrap the base64 in lines.
    let compact: String = saml_response
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD
        .decode(compact)
        .map_err(|e| SamlError::Base64(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| SamlError::Xml("not UTF-8".into()))?;
    if text.contains("<!DOCTYPE") {
        return Err(SamlError::Xml("it has a DOCTYPE".into()));
    }
    let doc = xml::parse(&text)?;
    let root = doc.root_element();
    if !is(root, NS_PROTOCOL, "Response") {
        return Err(SamlError::Malformed(format!(
            "the root element is <{}>, not a SAML protocol <Response>",
            root.tag_name().name()
        )));
    }

    // 2. Status.
    let status = one_child(root, NS_PROTOCOL, "Status")?;
    let code = one_child(status, NS_PROTOCOL, "StatusCode")?
        .attribute("Value")
        .unwrap_or("");
    if code != STATUS_SUCCESS {
        // A second-level code says more ("…:RequestDenied"); the free-text message may hold
        // user data and is not repeated.
        let sub = child(status, NS_PROTOCOL, "StatusCode")
            .and_then(|c| child(c, NS_PROTOCOL, "StatusCode"))
            .and_then(|c| c.attribute("Value"));
        return Err(SamlError::Status {
            code: match sub {
                Some(sub) => format!("{code} / {sub}"),
                None => code.to_owned(),
            },
        });
    }

    // 3. Wrapping defences.
    let mut ids = std::collections::HashSet::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        for name in ["ID", "Id", "id"] {
            if let Some(id) = node.attribute(name)
                && !ids.insert(id)
            {
                return Err(SamlError::DuplicateId(id.to_owned()));
            }
        }
    }
    if doc
        .descendants()
        .any(|n| is(n, NS_ASSERTION, "EncryptedAssertion"))
    {
        return Err(SamlError::EncryptedAssertion);
    }
    let assertions: Vec<Node<'_, '_>> = doc
        .descendants()
        .filter(|n| is(*n, NS_ASSERTION, "Assertion"))
        .collect();
    let assertion = match assertions.as_slice() {
        [one] => *one,
        other => return Err(SamlError::AssertionCount(other.len())),
    };
    if assertion.parent() != Some(root) {
        return Err(SamlError::Malformed(
            "the Assertion is not a direct child of the Response".into(),
        ));
    }
    for sig in doc.descendants().filter(|n| is(*n, NS_DSIG, "Signature")) {
        let parent = sig.parent();
        if parent != Some(root) && parent != Some(assertion) {
            return Err(SamlError::MisplacedSignature(format!(
                "inside <{}>",
                parent.map_or("?", |p| p.tag_name().name())
            )));
        }
    }

    // 4. Signatures. A signature that is present must be valid, even when the other would do.
    let certs = &cfg.idp.signing_certs;
    let response_sig = dsig::signature_child(root)?;
    let assertion_sig = dsig::signature_child(assertion)?;
    if let Some(sig) = assertion_sig {
        dsig::verify_enveloped(assertion, sig, certs, "assertion")?;
    }
    if let Some(sig) = response_sig {
        dsig::verify_enveloped(root, sig, certs, "response")?;
    }
    let covered =
        assertion_sig.is_some() || (response_sig.is_some() && cfg.accept_response_signature_only);
    if !covered {
        return Err(SamlError::Unsigned);
    }
    // From here on, everything is read from `assertion`, the node whose canonical bytes were
    // digested; the Response's own attributes are only cross-checked.

    // 5. Content.
    let assertion_id = assertion.attribute("ID").unwrap_or("").to_owned();
    let issuer = xml::trimmed_text(one_child(assertion, NS_ASSERTION, "Issuer")?);
    if issuer != cfg.idp.entity_id {
        return Err(SamlError::Issuer {
            got: issuer,
            expected: cfg.idp.entity_id.clone(),
        });
    }
    if let Some(resp_issuer) = child(root, NS_ASSERTION, "Issuer") {
        let got = xml::trimmed_text(resp_issuer);
        if got != cfg.idp.entity_id {
            return Err(SamlError::Issuer {
                got,
                expected: cfg.idp.entity_id.clone(),
            });
        }
    }
    if let Some(dest) = root.attribute("Destination")
        && dest != cfg.acs_url
    {
        return Err(SamlError::Destination {
            got: dest.to_owned(),
            expected: cfg.acs_url.clone(),
        });
    }
    // Unsigned unless the Response is signed, so only a cross-check; an empty value is how
    // some IdPs write "absent", and the signed SubjectConfirmationData decides.
    if let Some(irt) = root.attribute("InResponseTo").filter(|v| !v.is_empty())
        && irt != pending.id
    {
        return Err(SamlError::InResponseTo {
            got: irt.to_owned(),
            expected: pending.id.clone(),
        });
    }

    let skew = cfg.clock_skew;
    let conditions =
        child(assertion, NS_ASSERTION, "Conditions").ok_or(SamlError::Missing("Conditions"))?;
    let restrictions: Vec<_> = children(conditions, NS_ASSERTION, "AudienceRestriction").collect();
    if restrictions.is_empty() {
        return Err(SamlError::Missing("AudienceRestriction"));
    }
    // Each AudienceRestriction must be satisfied on its own (saml-core §2.5.1.4).
    for r in restrictions {
        let audiences: Vec<String> = children(r, NS_ASSERTION, "Audience")
            .map(xml::trimmed_text)
            .collect();
        if !audiences.contains(&cfg.entity_id) {
            return Err(SamlError::Audience {
                got: audiences.join("', '"),
                expected: cfg.entity_id.clone(),
            });
        }
    }

    let subject = one_child(assertion, NS_ASSERTION, "Subject")?;
    let confirmed_until = bearer_confirmation(cfg, subject, pending, now)?;

    let not_before = opt_time(conditions.attribute("NotBefore"), "Conditions NotBefore")?;
    if let Some(nb) = not_before
        && now + skew < nb
    {
        return Err(SamlError::NotYetValid {
            not_before: fmt(nb),
            now: fmt(now),
            skew_secs: skew.whole_seconds(),
        });
    }
    let conditions_until = opt_time(
        conditions.attribute("NotOnOrAfter"),
        "Conditions NotOnOrAfter",
    )?;
    if let Some(noa) = conditions_until
        && now - skew >= noa
    {
        return Err(SamlError::Expired {
            not_on_or_after: fmt(noa),
            now: fmt(now),
            skew_secs: skew.whole_seconds(),
        });
    }

    let issued_at = OffsetDateTime::from_unix_timestamp(pending.issued_at)
        .map_err(|_| SamlError::Config("the pending request's issued_at is out of range".into()))?;
    if now > issued_at + cfg.request_lifetime {
        return Err(SamlError::RequestExpired {
            id: pending.id.clone(),
            issued_at: fmt(issued_at),
            lifetime_secs: cfg.request_lifetime.whole_seconds(),
        });
    }

    // 6. What the login carries.
    let name_id_node =
        child(subject, NS_ASSERTION, "NameID").ok_or(SamlError::Missing("NameID"))?;
    let name_id = xml::trimmed_text(name_id_node);
    if name_id.is_empty() {
        return Err(SamlError::Missing("NameID value"));
    }
    let authn = child(assertion, NS_ASSERTION, "AuthnStatement")
        .ok_or(SamlError::Missing("AuthnStatement"))?;
    let session_not_on_or_after = opt_time(
        authn.attribute("SessionNotOnOrAfter"),
        "AuthnStatement SessionNotOnOrAfter",
    )?;

    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in children(assertion, NS_ASSERTION, "AttributeStatement") {
        for attr in children(statement, NS_ASSERTION, "Attribute") {
            let Some(name) = attr.attribute("Name") else {
                continue;
            };
            let values = attributes.entry(name.to_owned()).or_default();
            for v in children(attr, NS_ASSERTION, "AttributeValue") {
                if let Some(text) = xml::simple_text(v) {
                    let text = text.trim();
                    if !text.is_empty() {
                        values.push(text.to_owned());
                    }
                }
            }
        }
    }
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| attributes.get(*n).and_then(|v| v.first()).cloned())
    };
    let all = |names: &[&str]| {
        let mut out: Vec<String> = names
            .iter()
            .filter_map(|n| attributes.get(*n))
            .flatten()
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    };

    // Remember the id as long as any copy of the assertion could still pass the time checks.
    let replay_until = [Some(confirmed_until), conditions_until]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(confirmed_until)
        + skew;

    let login = VerifiedLogin {
        issuer,
        assertion_id,
        name_id,
        name_id_format: name_id_node.attribute("Format").map(str::to_owned),
        session_index: authn.attribute("SessionIndex").map(str::to_owned),
        session_not_on_or_after,
        email: first(EMAIL_ATTRS),
        name: first(NAME_ATTRS),
        roles: all(ROLE_ATTRS),
        groups: all(GROUP_ATTRS),
        attributes,
    };
    Ok((login, replay_until))
}

/// Finds a bearer SubjectConfirmation that this SP satisfies and returns its NotOnOrAfter. When
/// none does, the error of the first explains why.
fn bearer_confirmation(
    cfg: &SpConfig,
    subject: Node<'_, '_>,
    pending: &PendingRequest,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, SamlError> {
    let mut first_err = None;
    for sc in children(subject, NS_ASSERTION, "SubjectConfirmation") {
        if sc.attribute("Method") != Some(CM_BEARER) {
            continue;
        }
        match check_confirmation(cfg, sc, pending, now) {
            Ok(until) => return Ok(until),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(SamlError::NoBearerConfirmation))
}

fn check_confirmation(
    cfg: &SpConfig,
    sc: Node<'_, '_>,
    pending: &PendingRequest,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, SamlError> {
    let data = child(sc, NS_ASSERTION, "SubjectConfirmationData")
        .ok_or(SamlError::NoBearerConfirmation)?;
    let recipient = data
        .attribute("Recipient")
        .ok_or(SamlError::NoBearerConfirmation)?;
    if recipient != cfg.acs_url {
        return Err(SamlError::Recipient {
            got: recipient.to_owned(),
            expected: cfg.acs_url.clone(),
        });
    }
    let until = opt_time(
        data.attribute("NotOnOrAfter"),
        "SubjectConfirmationData NotOnOrAfter",
    )?
    .ok_or(SamlError::NoBearerConfirmation)?;
    if now - cfg.clock_skew >= until {
        return Err(SamlError::Expired {
            not_on_or_after: fmt(until),
            now: fmt(now),
            skew_secs: cfg.clock_skew.whole_seconds(),
        });
    }
    if let Some(nb) = opt_time(
        data.attribute("NotBefore"),
        "SubjectConfirmationData NotBefore",
    )? && now + cfg.clock_skew < nb
    {
        return Err(SamlError::NotYetValid {
            not_before: fmt(nb),
            now: fmt(now),
            skew_secs: cfg.clock_skew.whole_seconds(),
        });
    }
    match data.attribute("InResponseTo") {
        None | Some("") => Err(SamlError::Unsolicited),
        Some(irt) if irt != pending.id => Err(SamlError::InResponseTo {
            got: irt.to_owned(),
            expected: pending.id.clone(),
        }),
        Some(_) => Ok(until),
    }
}

fn opt_time(value: Option<&str>, what: &str) -> Result<Option<OffsetDateTime>, SamlError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v.trim(), &Rfc3339).map_err(|e| {
                SamlError::Malformed(format!("{what} '{v}' is not a UTC dateTime: {e}"))
            })
        })
        .transpose()
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
