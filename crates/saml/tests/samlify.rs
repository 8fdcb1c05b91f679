//! keyward-saml against a real SAML IdP: samlify (npm, signing with xml-crypto), driven by
//! `interop/saml/idp.js`. Every response below is made and signed by samlify; the refusal cases
//! either ask samlify for a bad response (wrong key, audience, clock …) or tamper with a validly
//! signed one the way signature wrapping (XSW1–8) attacks do.
//!
//! Needs `node` and `openssl`; runs `npm ci` in interop/saml when its node_modules is missing.
//! Fails (never skips) when they are absent, so that a green run means these cases ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_saml::{
    AuthnRequest, IdpConfig, MemoryReplayCache, SamlError, ServiceProvider, SpConfig,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const IDP_ENTITY: &str = "https://idp.test/metadata";
const SP_ENTITY: &str = "https://keyward.test/saml";
const ACS: &str = "https://keyward.test/auth/saml/acs";
const ROLE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn interop_dir() -> PathBuf {
    repo_root().join("interop/saml")
}

/// `npm ci` once, guarded by a lock directory because nextest runs tests as parallel processes.
fn ensure_node_modules() {
    let dir = interop_dir();
    if dir.join("node_modules/samlify/package.json").exists() {
        return;
    }
    let lock = dir.join(".npm-ci.lock");
    loop {
        if std::fs::create_dir(&lock).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        if dir.join("node_modules/samlify/package.json").exists() {
            return;
        }
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status();
    let _ = std::fs::remove_dir(&lock);
    match status {
        Ok(s) if s.success() => {}
        other => panic!("`npm ci` in {} failed: {other:?}", dir.display()),
    }
}

struct Keys {
    key: String,
    cert: String,
    other_key: String,
    other_cert: String,
}

/// Fresh RSA keys per test process, so no private key is committed.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyward-saml-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let make = |name: &str| {
            let key = dir.join(format!("{name}.key"));
            let cert = dir.join(format!("{name}.crt"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", &format!("/CN={name}")])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("openssl must be installed (scripts/test installs it)");
            assert!(
                out.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                std::fs::read_to_string(key).unwrap(),
                std::fs::read_to_string(cert).unwrap(),
            )
        };
        let (key, cert) = make("idp");
        let (other_key, other_cert) = make("attacker");
        let _ = std::fs::remove_dir_all(&dir);
        Keys {
            key,
            cert,
            other_key,
            other_cert,
        }
    })
}

/// Runs the samlify IdP with `job` (merged over defaults) and returns its answer.
fn samlify(job: Value) -> Value {
    ensure_node_modules();
    let k = keys();
    let mut full = json!({
        "keyPem": k.key,
        "certPem": k.cert,
        "idpEntityId": IDP_ENTITY,
        "spEntityId": SP_ENTITY,
        "acsUrl": ACS,
        "nameId": "ada@example.com",
        "sessionIndex": "_sess-42",
        "attributes": [
            {"name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "values": ["ada@example.com"]},
            {"name": "http://schemas.microsoft.com/identity/claims/displayname", "values": ["Ada Lovelace"]},
            {"name": ROLE, "values": ["member", "factory-admin"]},
            {"name": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "values": ["g-1", "g-2"]}
        ]
    });
    if let (Some(base), Value::Object(extra)) = (full.as_object_mut(), job) {
        base.extend(extra);
    }
    let mut child = Command::new("node")
        .arg(interop_dir().join("idp.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed (Node.js 20+)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(full.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "samlify IdP failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn now() -> OffsetDateTime {
    // Tests pass time in explicitly too; this is the one clock read, as in server::clock.
    #[allow(clippy::disallowed_methods)]
    OffsetDateTime::now_utc()
}

fn sp_with(cert_pem: &str) -> ServiceProvider {
    let idp = IdpConfig::new(IDP_ENTITY, "https://idp.test/sso", cert_pem).unwrap();
    ServiceProvider::new(SpConfig::new(SP_ENTITY, ACS, idp).unwrap()).unwrap()
}

fn sp() -> ServiceProvider {
    sp_with(&keys().cert)
}

fn start(sp: &ServiceProvider) -> AuthnRequest {
    sp.authn_request("r1", now()).unwrap()
}

/// The SAMLRequest query value of our HTTP-Redirect URL, for samlify to parse.
fn saml_request_param(req: &AuthnRequest) -> String {
    let url = url::Url::parse(&req.redirect_url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// A response from samlify answering `req` (samlify parses our AuthnRequest for its ID).
fn respond(req: &AuthnRequest, job: Value) -> String {
    let mut base = json!({"samlRequest": saml_request_param(req), "relayState": "r1"});
    if let (Some(b), Value::Object(extra)) = (base.as_object_mut(), job) {
        b.extend(extra);
    }
    let answer = samlify(base);
    answer["samlResponse"].as_str().unwrap().to_owned()
}

async fn verify(
    sp: &ServiceProvider,
    req: &AuthnRequest,
    b64: &str,
) -> Result<keyward_saml::VerifiedLogin, SamlError> {
    sp.verify_response(b64, &req.pending, now(), &MemoryReplayCache::default())
        .await
}

fn decode(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn encode(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Logins that work

#[tokio::test]
async fn entra_style_login_works_and_yields_roles_groups_and_attributes() {
    let sp = sp();
    let req = start(&sp);
    // samlify parsed our AuthnRequest: its ID and ACS are what the IdP saw.
    let answer = samlify(json!({"samlRequest": saml_request_param(&req), "style": "entra"}));
    assert_eq!(answer["request"]["id"], req.pending.id.as_str());
    assert_eq!(answer["request"]["acsUrl"], ACS);
    assert_eq!(answer["request"]["issuer"], SP_ENTITY);

    let login = verify(&sp, &req, answer["samlResponse"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(login.issuer, IDP_ENTITY);
    assert_eq!(login.name_id, "ada@example.com");
    assert_eq!(login.email.as_deref(), Some("ada@example.com"));
    assert_eq!(login.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(login.roles, vec!["factory-admin", "member"]);
    assert_eq!(login.groups, vec!["g-1", "g-2"]);
    assert_eq!(login.session_index.as_deref(), Some("_sess-42"));
    assert!(login.assertion_id.starts_with('_'));
    // Debug output never shows the subject.
    assert!(!format!("{login:?}").contains("ada@"));
}

#[tokio::test]
async fn generic_login_with_signed_response_and_assertion_works_with_metadata_config() {
    let answer_for_metadata = samlify(json!({"inResponseTo": "_x"}));
    let idp = IdpConfig::from_metadata(answer_for_metadata["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(idp.entity_id, IDP_ENTITY);
    let sp = ServiceProvider::new(SpConfig::new(SP_ENTITY, ACS, idp).unwrap()).unwrap();
    let req = start(&sp);
    let b64 = respond(
        &req,
        json!({"sign": "both", "attributes": [{"name": "Role", "values": ["member"]}, {"name": "groups", "values": ["eng"]}, {"name": "email", "values": ["ada@example.com"]}]}),
    );
    let login = verify(&sp, &req, &b64).await.unwrap();
    assert_eq!(login.roles, vec!["member"]);
    assert_eq!(login.groups, vec!["eng"]);
    assert_eq!(login.email.as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn response_only_signature_needs_the_opt_in() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"sign": "response"}));
    assert_eq!(
        verify(&sp, &req, &b64).await.unwrap_err(),
        SamlError::Unsigned
    );

    let mut cfg = sp.config().clone();
    cfg.accept_response_signature_only = true;
    let sp = ServiceProvider::new(cfg).unwrap();
    let login = verify(&sp, &req, &b64).await.unwrap();
    assert_eq!(login.name_id, "ada@example.com");
}

#[tokio::test]
async fn comment_inside_the_name_id_does_not_truncate_it() {
    // Exclusive c14n drops comments, so this tampering keeps the signature valid; the value
    // read must still be the whole signed string, not the part before the comment.
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"nameId": "admin@victim.test.attacker.test"}));
    let xml = decode(&b64).replacen(
        "admin@victim.test.attacker.test",
        "admin@victim.test<!---->.attacker.test",
        1,
    );
    let login = verify(&sp, &req, &encode(&xml)).await.unwrap();
    assert_eq!(login.name_id, "admin@victim.test.attacker.test");
}

// ---------------------------------------------------------------------------------------------
// Refusals: what samlify itself produces

#[tokio::test]
async fn unsigned_response_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let xml = decode(&respond(&req, json!({})));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sig = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Signature")
        .unwrap();
    let unsigned = format!("{}{}", &xml[..sig.range().start], &xml[sig.range().end..]);
    assert_eq!(
        verify(&sp, &req, &encode(&unsigned)).await.unwrap_err(),
        SamlError::Unsigned
    );
}

#[tokio::test]
async fn response_signed_with_another_key_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let k = keys();
    let b64 = respond(
        &req,
        json!({"keyPem": k.other_key, "certPem": k.other_cert}),
    );
    assert_eq!(
        verify(&sp, &req, &b64).await.unwrap_err(),
        SamlError::BadSignature {
            element: "assertion"
        }
    );
}

#[tokio::test]
async fn certificate_rollover_accepts_either_configured_key() {
    let k = keys();
    let sp = sp_with(&format!("{}{}", k.other_cert, k.cert));
    let req = start(&sp);
    let b64 = respond(&req, json!({}));
    verify(&sp, &req, &b64).await.unwrap();
}

#[tokio::test]
async fn altered_signed_content_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let xml = decode(&respond(&req, json!({})));
    let xml = xml.replacen("factory-admin", "super-admin", 1);
    assert_eq!(
        verify(&sp, &req, &encode(&xml)).await.unwrap_err(),
        SamlError::DigestMismatch {
            element: "assertion"
        }
    );
}

#[tokio::test]
async fn expired_assertion_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let idp_clock = now() - Duration::hours(1);
    let b64 = respond(
        &req,
        json!({"nowMs": idp_clock.unix_timestamp() * 1000, "lifetimeSecs": 300}),
    );
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Expired { .. }), "{err:?}");
}

#[tokio::test]
async fn assertion_from_the_future_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let idp_clock = now() + Duration::hours(1);
    let b64 = respond(&req, json!({"nowMs": idp_clock.unix_timestamp() * 1000}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::NotYetValid { .. }), "{err:?}");
}

#[tokio::test]
async fn small_clock_difference_is_tolerated() {
    let sp = sp();
    let req = start(&sp);
    let idp_clock = now() + Duration::seconds(60);
    let b64 = respond(&req, json!({"nowMs": idp_clock.unix_timestamp() * 1000}));
    verify(&sp, &req, &b64).await.unwrap();
}

#[tokio::test]
async fn wrong_audience_is_refused_with_the_fix() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"audience": "https://other-app.test"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert_eq!(
        err,
        SamlError::Audience {
            got: "https://other-app.test".into(),
            expected: SP_ENTITY.into()
        }
    );
    assert!(err.to_string().contains("set the SP entity id"), "{err}");
}

#[tokio::test]
async fn wrong_recipient_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"recipient": "https://evil.test/acs"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Recipient { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_destination_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"destination": "https://evil.test/acs"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Destination { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_in_response_to_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"inResponseTo": "_someone-elses-request"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert_eq!(
        err,
        SamlError::InResponseTo {
            got: "_someone-elses-request".into(),
            expected: req.pending.id.clone()
        }
    );
}

#[tokio::test]
async fn unsolicited_response_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"inResponseTo": ""}));
    assert_eq!(
        verify(&sp, &req, &b64).await.unwrap_err(),
        SamlError::Unsolicited
    );
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(
        &req,
        json!({"idpEntityId": "https://sts.windows.net/other-tenant/"}),
    );
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Issuer { .. }), "{err:?}");
}

#[tokio::test]
async fn replayed_response_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({}));
    let cache = MemoryReplayCache::default();
    let login = sp
        .verify_response(&b64, &req.pending, now(), &cache)
        .await
        .unwrap();
    let err = sp
        .verify_response(&b64, &req.pending, now(), &cache)
        .await
        .unwrap_err();
    assert_eq!(err, SamlError::Replayed(login.assertion_id));
}

#[tokio::test]
async fn stale_login_request_is_refused() {
    let sp = sp();
    let req = sp
        .authn_request("r1", now() - Duration::minutes(30))
        .unwrap();
    let b64 = respond(&req, json!({}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::RequestExpired { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Refusals: signature wrapping (Somorovsky et al., "On Breaking SAML", XSW1–XSW8) on real
// samlify-signed responses.

/// Pieces of a samlify response, cut by byte ranges from the parsed document.
struct Cut {
    xml: String,
    /// The signed assertion, with its signature.
    assertion: (usize, usize),
    /// The assertion's signature.
    signature: (usize, usize),
    /// The Response's signature, when the Response is signed.
    response_signature: Option<(usize, usize)>,
}

impl Cut {
    fn new(xml: String) -> Self {
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        let assertion = root
            .children()
            .find(|n| n.tag_name().name() == "Assertion")
            .unwrap();
        let sig = assertion
            .children()
            .find(|n| n.tag_name().name() == "Signature")
            .map(|n| (n.range().start, n.range().end));
        let response_signature = root
            .children()
            .find(|n| n.tag_name().name() == "Signature")
            .map(|n| (n.range().start, n.range().end));
        let a = (assertion.range().start, assertion.range().end);
        drop(doc);
        Self {
            signature: sig.unwrap_or((a.0, a.0)),
            assertion: a,
            response_signature,
            xml,
        }
    }
    fn s(&self, r: (usize, usize)) -> &str {
        &self.xml[r.0..r.1]
    }
    fn signed_assertion(&self) -> String {
        self.s(self.assertion).to_owned()
    }
    fn signature_xml(&self) -> String {
        self.s(self.signature).to_owned()
    }
    /// The assertion without its signature.
    fn bare_assertion(&self) -> String {
        format!(
            "{}{}",
            &self.xml[self.assertion.0..self.signature.0],
            &self.xml[self.signature.1..self.assertion.1]
        )
    }
    /// An attacker's assertion: the bare one with another subject and `id`.
    fn evil(&self, id: &str) -> String {
        let original_id = self.assertion_id();
        self.bare_assertion()
            .replacen(&original_id, id, 1)
            .replace("ada@example.com", "admin@victim.test")
    }
    fn assertion_id(&self) -> String {
        let doc = roxmltree::Document::parse(&self.xml).unwrap();
        doc.descendants()
            .find(|n| n.tag_name().name() == "Assertion")
            .and_then(|n| n.attribute("ID"))
            .unwrap()
            .to_owned()
    }
    /// The document with the assertion replaced by `with`.
    fn replace_assertion(&self, with: &str) -> String {
        format!(
            "{}{}{}",
            &self.xml[..self.assertion.0],
            with,
            &self.xml[self.assertion.1..]
        )
    }
    /// `with` inserted just before the closing tag of element `within_end` (range end).
    fn insert_at(&self, at: usize, what: &str) -> String {
        format!("{}{}{}", &self.xml[..at], what, &self.xml[at..])
    }
}

fn with_object(signature: &str, content: &str) -> String {
    let close = signature.rfind("</").unwrap();
    format!(
        "{}<ds:Object>{}</ds:Object>{}",
        &signature[..close],
        content,
        &signature[close..]
    )
}

/// Opens `evil_assertion` (an `<… Assertion …>…</…Assertion>` string) right after its start tag.
fn inside_start(evil_assertion: &str, content: &str) -> String {
    let gt = evil_assertion.find('>').unwrap() + 1;
    format!(
        "{}{}{}",
        &evil_assertion[..gt],
        content,
        &evil_assertion[gt..]
    )
}

async fn refused(sp: &ServiceProvider, req: &AuthnRequest, xml: &str) -> SamlError {
    match verify(sp, req, &encode(xml)).await {
        Ok(login) => panic!("a wrapped response was accepted: {login:?}"),
        Err(e) => e,
    }
}

async fn signed_cut(sp: &ServiceProvider, req: &AuthnRequest, sign: &str) -> Cut {
    let cut = Cut::new(decode(&respond(req, json!({"sign": sign}))));
    // The untouched response is valid (with the response-only opt-in where needed).
    let mut cfg = sp.config().clone();
    cfg.accept_response_signature_only = true;
    let lenient = ServiceProvider::new(cfg).unwrap();
    verify(&lenient, req, &encode(&cut.xml)).await.unwrap();
    cut
}

#[tokio::test]
async fn xsw1_and_xsw2_wrapped_signed_response_is_refused() {
    // The Response is signed; the attacker builds a new Response around an evil assertion and
    // moves the original signed Response into the signature's Object (XSW1) or next to it (XSW2).
    let mut cfg = sp().config().clone();
    cfg.accept_response_signature_only = true;
    let sp = ServiceProvider::new(cfg).unwrap();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "response").await;
    let rsig = cut.response_signature.unwrap();
    let original_response_unsigned = format!("{}{}", &cut.xml[..rsig.0], &cut.xml[rsig.1..]);
    let evil_response = cut.replace_assertion(&cut.evil("_evil")).replacen(
        " ID=\"",
        " ID=\"_evil-response\" OldID=\"",
        1,
    );
    // Remove the evil response's copy of the signature, then put the original back wrapped.
    let evil_sig = cut.s(rsig).to_owned();
    let evil_response = evil_response.replacen(&evil_sig, "", 1);
    let issuer_end = evil_response.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();

    let xsw1 = format!(
        "{}{}{}",
        &evil_response[..issuer_end],
        with_object(&evil_sig, &original_response_unsigned),
        &evil_response[issuer_end..]
    );
    assert_eq!(
        refused(&sp, &req, &xsw1).await,
        SamlError::AssertionCount(2)
    );

    let xsw2 = format!(
        "{}{}{}{}",
        &evil_response[..issuer_end],
        evil_sig,
        original_response_unsigned,
        &evil_response[issuer_end..]
    );
    assert_eq!(
        refused(&sp, &req, &xsw2).await,
        SamlError::AssertionCount(2)
    );
}

#[tokio::test]
async fn xsw3_evil_assertion_before_the_signed_one_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let xsw3 = cut.insert_at(cut.assertion.0, &cut.evil("_evil"));
    assert_eq!(
        refused(&sp, &req, &xsw3).await,
        SamlError::AssertionCount(2)
    );
    // Same, with the evil copy keeping the signed ID so a lookup by ID could pick either.
    let same_id = cut.insert_at(cut.assertion.0, &cut.evil(&cut.assertion_id()));
    assert_eq!(
        refused(&sp, &req, &same_id).await,
        SamlError::DuplicateId(cut.assertion_id())
    );
}

#[tokio::test]
async fn xsw4_signed_assertion_wrapped_inside_evil_one_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let evil = inside_start(&cut.evil("_evil"), &cut.signed_assertion());
    let xsw4 = cut.replace_assertion(&evil);
    assert_eq!(
        refused(&sp, &req, &xsw4).await,
        SamlError::AssertionCount(2)
    );
}

#[tokio::test]
async fn xsw5_signature_moved_to_evil_assertion_and_original_appended_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let evil = inside_start(&cut.evil("_evil"), &cut.signature_xml());
    let xsw5 = cut.replace_assertion(&format!("{evil}{}", cut.bare_assertion()));
    assert_eq!(
        refused(&sp, &req, &xsw5).await,
        SamlError::AssertionCount(2)
    );
    // Without the second assertion, the moved signature no longer points at its holder.
    let only_evil = cut.replace_assertion(&evil);
    assert!(matches!(
        refused(&sp, &req, &only_evil).await,
        SamlError::ReferenceMismatch { .. }
    ),);
    // And with the signed ID kept, the digest no longer matches the evil content.
    let evil_same_id = inside_start(&cut.evil(&cut.assertion_id()), &cut.signature_xml());
    assert_eq!(
        refused(&sp, &req, &cut.replace_assertion(&evil_same_id)).await,
        SamlError::DigestMismatch {
            element: "assertion"
        }
    );
}

#[tokio::test]
async fn xsw6_original_inside_the_moved_signatures_object_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let sig = with_object(&cut.signature_xml(), &cut.bare_assertion());
    let evil = inside_start(&cut.evil("_evil"), &sig);
    let xsw6 = cut.replace_assertion(&evil);
    assert_eq!(
        refused(&sp, &req, &xsw6).await,
        SamlError::AssertionCount(2)
    );
}

#[tokio::test]
async fn xsw7_signed_assertion_hidden_in_extensions_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let ext = format!(
        "<samlp:Extensions>{}</samlp:Extensions>{}",
        cut.signed_assertion(),
        cut.evil("_evil")
    );
    let xsw7 = cut.replace_assertion(&ext);
    assert_eq!(
        refused(&sp, &req, &xsw7).await,
        SamlError::AssertionCount(2)
    );
    // Only the signature hidden there, around an unsigned evil assertion.
    let sig_only = cut.replace_assertion(&format!(
        "<samlp:Extensions>{}</samlp:Extensions>{}",
        cut.signature_xml(),
        cut.evil("_evil")
    ));
    assert!(matches!(
        refused(&sp, &req, &sig_only).await,
        SamlError::MisplacedSignature(_)
    ));
}

#[tokio::test]
async fn xsw8_original_without_signature_in_object_of_evil_assertion_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let sig = with_object(&cut.signature_xml(), &cut.bare_assertion());
    let evil = inside_start(&cut.evil(&cut.assertion_id()), &sig);
    let xsw8 = cut.replace_assertion(&evil);
    // Two elements now carry the signed ID (evil assertion, original in Object).
    assert_eq!(
        refused(&sp, &req, &xsw8).await,
        SamlError::DuplicateId(cut.assertion_id())
    );
    // With a harmless Object but no second assertion: ds:Object is refused outright.
    let obj_only = with_object(&cut.signature_xml(), "<x/>");
    let tampered = cut.replace_assertion(&cut.signed_assertion().replacen(
        &cut.signature_xml(),
        &obj_only,
        1,
    ));
    assert!(matches!(
        refused(&sp, &req, &tampered).await,
        SamlError::MisplacedSignature(_)
    ));
}

#[tokio::test]
async fn foreign_response_signature_is_refused_even_with_a_signed_assertion() {
    // A present signature must verify even when the other one alone would do.
    let sp = sp();
    let req = start(&sp);
    let k = keys();
    let evil = Cut::new(decode(&respond(
        &req,
        json!({"sign": "response", "keyPem": k.other_key, "certPem": k.other_cert}),
    )));
    let good = Cut::new(decode(&respond(&req, json!({"sign": "assertion"}))));
    let issuer_end = good.xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    let mixed = good.insert_at(issuer_end, evil.s(evil.response_signature.unwrap()));
    assert!(matches!(
        refused(&sp, &req, &mixed).await,
        SamlError::ReferenceMismatch { .. }
    ));
    // Pointed at this response, the foreign signature still fails: the digest, then the key.
    let good_id = roxmltree::Document::parse(&good.xml)
        .unwrap()
        .root_element()
        .attribute("ID")
        .unwrap()
        .to_owned();
    let evil_id = roxmltree::Document::parse(&evil.xml)
        .unwrap()
        .root_element()
        .attribute("ID")
        .unwrap()
        .to_owned();
    let retargeted = mixed.replacen(
        &format!("URI=\"#{evil_id}\""),
        &format!("URI=\"#{good_id}\""),
        1,
    );
    assert_eq!(
        refused(&sp, &req, &retargeted).await,
        SamlError::BadSignature {
            element: "response"
        }
    );
}

#[tokio::test]
async fn idp_error_status_is_reported() {
    let sp = sp();
    let req = start(&sp);
    let xml = decode(&respond(&req, json!({}))).replacen(
        "urn:oasis:names:tc:SAML:2.0:status:Success\"/>",
        "urn:oasis:names:tc:SAML:2.0:status:Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:RequestDenied\"/></samlp:StatusCode>",
        1,
    );
    let err = refused(&sp, &req, &xml).await;
    assert!(
        matches!(&err, SamlError::Status { code } if code.ends_with("RequestDenied")),
        "{err:?}"
    );
}

#[tokio::test]
async fn doctype_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let xml = format!(
        "<!DOCTYPE r [<!ENTITY x \"y\">]>{}",
        decode(&respond(&req, json!({})))
    );
    assert!(matches!(refused(&sp, &req, &xml).await, SamlError::Xml(_)));
}
