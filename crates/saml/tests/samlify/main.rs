//! keyward-saml against a real SAML IdP: samlify (npm, signing with xml-crypto), driven by
//! `interop/saml/idp.js`. Every response below is made and signed by samlify; the refusal cases
//! either ask samlify for a bad response (wrong key, audience, clock …) or tamper with a validly
//! signed one the way signature wrapping (XSW1–8) attacks do.
//!
//! Needs `node` and `openssl`; runs `npm ci` in interop/saml when its node_modules is missing.
//! Fails (never skips) when they are absent, so that a green run means these cases ran.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

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

mod login;
mod refusals;
mod xsw;
