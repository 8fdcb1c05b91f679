//! Typed errors. Each message says what failed, why, and what to do next. None of them carries
//! a subject's personal data (NameID, attribute values): only ids, URLs and entity ids, which are
//! configuration, so they are safe to log.

use thiserror::Error;

/// Why a SAML response was refused (or a configuration was not accepted).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SamlError {
    // ---- configuration ----
    #[error("SAML configuration: {0}")]
    Config(String),
    #[error(
        "the IdP signing certificate could not be read: {0}; paste the certificate (PEM or base64 DER) from the IdP's SAML signing certificate section, or its federation metadata XML"
    )]
    Certificate(String),
    #[error(
        "the IdP metadata could not be read: {0}; download the federation metadata XML from the IdP again (for Entra ID: Enterprise application > Single sign-on > SAML Certificates > Federation Metadata XML)"
    )]
    Metadata(String),

    // ---- transport and shape ----
    #[error(
        "SAMLResponse is not valid base64 ({0}); the IdP must post it with the HTTP-POST binding"
    )]
    Base64(String),
    #[error("SAMLResponse is {size} bytes, more than the {limit} allowed; refused unread")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "SAMLResponse is not well-formed XML without a DTD ({0}); refused because SAML messages never carry a DTD"
    )]
    Xml(String),
    #[error("SAMLResponse is malformed: {0}")]
    Malformed(String),
    #[error(
        "the SAML response carries an EncryptedAssertion, which this service provider does not decrypt; turn off token encryption in the IdP's application"
    )]
    EncryptedAssertion,
    #[error(
        "the SAML response holds {0} assertions; exactly one is accepted (more than one is how signature wrapping attacks smuggle an unsigned assertion)"
    )]
    AssertionCount(usize),
    #[error(
        "the ID '{0}' appears on more than one element; refused because duplicate IDs let a signature reference point at content other than what is read"
    )]
    DuplicateId(String),
    #[error(
        "the IdP reported status '{code}' instead of Success: the IdP did not sign the user in"
    )]
    Status { code: String },

    // ---- signature ----
    #[error(
        "the SAML assertion is not signed; configure the IdP to sign the assertion (Entra ID: SAML Signing Certificate > Signing Option 'Sign SAML assertion' or 'Sign SAML response and assertion')"
    )]
    Unsigned,
    #[error(
        "a ds:Signature sits where no signature belongs ({0}); only a signature directly inside the Response or the Assertion is accepted"
    )]
    MisplacedSignature(String),
    #[error(
        "the signature's Reference URI '{uri}' does not point at the element that holds it (ID '{id}'); refused as signature wrapping"
    )]
    ReferenceMismatch { uri: String, id: String },
    #[error(
        "the signature uses {what} '{algorithm}', which is not accepted; configure the IdP to sign with RSA-SHA256 and SHA-256 digests and exclusive canonicalization"
    )]
    UnsupportedAlgorithm {
        what: &'static str,
        algorithm: String,
    },
    #[error(
        "the digest of the signed {element} does not match: its content was changed after the IdP signed it"
    )]
    DigestMismatch { element: &'static str },
    #[error(
        "the {element} signature does not verify with any configured IdP signing certificate; if the IdP rotated its certificate, load its new certificate or metadata"
    )]
    BadSignature { element: &'static str },

    // ---- content of the signed assertion ----
    #[error(
        "the assertion was issued by '{got}', not by the configured IdP '{expected}'; set the IdP entity id (Entra ID: 'Microsoft Entra Identifier') to the IdP's real issuer"
    )]
    Issuer { got: String, expected: String },
    #[error(
        "SAML response audience '{got}' does not include this service provider's entity id '{expected}': set the SP entity id (Entra ID: 'Identifier (Entity ID)') in the IdP's app to '{expected}'"
    )]
    Audience { got: String, expected: String },
    #[error(
        "the assertion's Recipient '{got}' is not this service provider's ACS URL '{expected}': set the Reply URL (Assertion Consumer Service URL) in the IdP's app to '{expected}'"
    )]
    Recipient { got: String, expected: String },
    #[error(
        "the response's Destination '{got}' is not this service provider's ACS URL '{expected}': set the Reply URL in the IdP's app to '{expected}'"
    )]
    Destination { got: String, expected: String },
    #[error(
        "the assertion answers request '{got}', not the login this browser started ('{expected}'); start the login again from the sign-in page"
    )]
    InResponseTo { got: String, expected: String },
    #[error(
        "the assertion answers no request (IdP-initiated login), which is not accepted; start the login from the sign-in page"
    )]
    Unsolicited,
    #[error(
        "the assertion expired at {not_on_or_after} (now {now}, {skew_secs}s clock skew allowed); sign in again, and check the clocks of the IdP and this server"
    )]
    Expired {
        not_on_or_after: String,
        now: String,
        skew_secs: i64,
    },
    #[error(
        "the assertion is not valid before {not_before} (now {now}, {skew_secs}s clock skew allowed); check the clocks of the IdP and this server"
    )]
    NotYetValid {
        not_before: String,
        now: String,
        skew_secs: i64,
    },
    #[error(
        "the login request '{id}' was started at {issued_at} and is older than the {lifetime_secs}s allowed; start the login again"
    )]
    RequestExpired {
        id: String,
        issued_at: String,
        lifetime_secs: i64,
    },
    #[error(
        "the assertion has no bearer SubjectConfirmation with a Recipient and NotOnOrAfter; the IdP's response is not a Web Browser SSO response"
    )]
    NoBearerConfirmation,
    #[error("the assertion has no {0}; the IdP's response is not a Web Browser SSO response")]
    Missing(&'static str),
    #[error(
        "assertion '{0}' was already used to sign in; each SAML response is accepted once (sign in again)"
    )]
    Replayed(String),
    #[error(
        "the replay cache failed: {0}; the login was refused because replay could not be ruled out"
    )]
    ReplayCache(String),
}
