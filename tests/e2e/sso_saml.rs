//! SAML sign-in through the server's routes, with responses made and signed by a real SAML IdP
//! (samlify, `interop/saml/idp.js`): `GET /auth/saml/login` → the IdP → `POST /auth/saml/acs`
//! lands a session; the same response posted again is refused by the database replay cache —
//! still after a restart, which an in-memory cache would not survive. (The verification's own
//! refusal cases — signature, wrapping, audience, recipient, time, InResponseTo — are covered
//! against samlify in crates/saml/tests.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::*;
use crate::sso_oidc::Browser;

const IDP_ENTITY: &str = "https://idp.test/metadata";
const IDP_SSO: &str = "https://idp.test/sso";
const ROLE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
const EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";

fn saml_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/saml")
}

pub(crate) fn samlify_ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node
        && saml_dir()
            .join("node_modules/samlify/package.json")
            .exists()
    {
        return true;
    }
    assert!(
        std::env::var_os("KEYWARD_REQUIRE_INTEROP").is_none(),
        "node and interop/saml's samlify are required: run `npm ci --prefix interop/saml` (scripts/test does)"
    );
    eprintln!("skipping: node or interop/saml/node_modules missing");
    false
}

/// The IdP's signing key and certificate, fresh per test.
pub(crate) fn idp_keys(dir: &Path) -> (String, String, PathBuf) {
    let key = dir.join("idp.key");
    let cert = dir.join("idp.crt");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=samlify-idp"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
    (
        std::fs::read_to_string(&key).unwrap(),
        std::fs::read_to_string(&cert).unwrap(),
        cert,
    )
}

/// samlify answers the AuthnRequest in `redirect_url` for `name_id` with `attributes`.
pub(crate) fn samlify(
    keys: &(String, String, PathBuf),
    base: &str,
    redirect_url: &str,
    name_id: &str,
    attributes: Value,
) -> String {
    let url = url::Url::parse(redirect_url).unwrap();
    let param = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let job = json!({
        "keyPem": keys.0,
        "certPem": keys.1,
        "idpEntityId": IDP_ENTITY,
        "spEntityId": format!("{base}/auth/saml/metadata"),
        "acsUrl": format!("{base}/auth/saml/acs"),
        "samlRequest": param("SAMLRequest"),
        "relayState": param("RelayState"),
        "nameId": name_id,
        "sessionIndex": "_s1",
        "attributes": attributes,
    });
    let mut child = Command::new("node")
        .arg(saml_dir().join("idp.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["samlResponse"].as_str().unwrap().to_owned()
}

pub(crate) fn options(backend: &Backend, dir: &Path, port: u16, cert: &Path) -> ServerOptions {
    let mut o = ServerOptions::new(backend, &dir.join("keyward"))
        .env("AUTH_PROVIDER", "entra_id")
        .env("ENTRA_ID_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
        .env("ENTRA_ID_CLIENT_SECRET", "unused-in-this-test")
        .env("ENTRA_ID_TENANT_ID", "00000000-0000-0000-0000-000000000002")
        .env("SAML_IDP_ENTITY_ID", IDP_ENTITY)
        .env("SAML_IDP_SSO_URL", IDP_SSO)
        .env("SAML_IDP_CERT_FILE", cert.to_str().unwrap());
    o.listen = format!("127.0.0.1:{port}");
    o
}

/// `GET /auth/saml/login`: the IdP URL the browser is sent to.
pub(crate) async fn start(browser: &mut Browser, base: &str) -> String {
    let a = browser.get(&format!("{base}/auth/saml/login")).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let to = a.location.unwrap();
    assert!(to.starts_with(&format!("{IDP_SSO}?SAMLRequest=")), "{to}");
    assert!(browser.cookie("keyward_saml_relay").is_some());
    to
}

pub(crate) fn relay(redirect_url: &str) -> String {
    url::Url::parse(redirect_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn saml_login_lands_a_session_and_a_replayed_response_is_refused() {
    install_crypto();
    if !samlify_ready() {
        return;
    }
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let keys = idp_keys(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let base = format!("https://127.0.0.1:{port}");
        let opts = options(&backend, dir.path(), port, &keys.2);
        let server = Server::start(&opts);
        let ca = server.ca_file.clone().unwrap();
        let name = backend.name();

        // The SP metadata to give the IdP.
        let mut browser = Browser::new(&[ca.as_path()]);
        let meta = browser.get(&format!("{base}/auth/saml/metadata")).await;
        assert_eq!(meta.status, 200);
        assert!(
            meta.body
                .contains(&format!("entityID=\"{base}/auth/saml/metadata\""))
        );
        assert!(
            meta.body
                .contains(&format!("Location=\"{base}/auth/saml/acs\""))
        );

        // A member signs in.
        let to = start(&mut browser, &base).await;
        let response = samlify(
            &keys,
            &base,
            &to,
            "ada@acme.example",
            json!([{"name": EMAIL, "values": ["ada@acme.example"]}, {"name": ROLE, "values": ["member"]}]),
        );
        let form = vec![
            ("SAMLResponse".to_owned(), response.clone()),
            ("RelayState".to_owned(), relay(&to)),
        ];
        let landed = browser
            .post_form(&format!("{base}/auth/saml/acs"), &form)
            .await;
        assert_eq!(landed.status, 303, "{name}: {}", landed.body);
        assert_eq!(landed.location.as_deref(), Some("/auth/session"));
        assert!(browser.cookie("keyward_session").is_some());
        let me: Value =
            serde_json::from_str(&browser.get(&format!("{base}/auth/session")).await.body).unwrap();
        assert_eq!(me["user"]["email"], "ada@acme.example", "{me}");
        assert_eq!(me["organizations"][0]["role"], "member", "{me}");

        // The same response posted again, from the same browser: refused by the replay cache.
        let relay_cookie = browser.cookie("keyward_saml_relay").cloned().unwrap();
        let mut replayer = Browser::new(&[ca.as_path()]);
        replayer.set_cookie("keyward_saml_relay", &relay_cookie);
        let again = replayer
            .post_form(&format!("{base}/auth/saml/acs"), &form)
            .await;
        assert_eq!(again.status, 403, "{name}: {}", again.body);
        assert!(
            again.body.contains("was already used to sign in"),
            "{}",
            again.body
        );
        assert!(replayer.cookie("keyward_session").is_none());

        // The cache is the database's: a restarted server still refuses it.
        drop(server);
        let server = Server::start(&opts);
        let mut replayer = Browser::new(&[ca.as_path()]);
        replayer.set_cookie("keyward_saml_relay", &relay_cookie);
        let again = replayer
            .post_form(&format!("{base}/auth/saml/acs"), &form)
            .await;
        assert_eq!(again.status, 403, "{name}: {}", again.body);
        assert!(
            again.body.contains("was already used to sign in"),
            "{}",
            again.body
        );

        // A response for another browser's sign-in (RelayState not this browser's) is refused.
        let mut other = Browser::new(&[ca.as_path()]);
        let to = start(&mut other, &base).await;
        let response = samlify(
            &keys,
            &base,
            &to,
            "ada@acme.example",
            json!([{"name": EMAIL, "values": ["ada@acme.example"]}, {"name": ROLE, "values": ["member"]}]),
        );
        let mut stranger = Browser::new(&[ca.as_path()]);
        let _ = start(&mut stranger, &base).await;
        let refused = stranger
            .post_form(
                &format!("{base}/auth/saml/acs"),
                &[
                    ("SAMLResponse".into(), response),
                    ("RelayState".into(), relay(&to)),
                ],
            )
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);

        // Signed in at the IdP without either role: 403, not assigned.
        let mut browser = Browser::new(&[ca.as_path()]);
        let to = start(&mut browser, &base).await;
        let response = samlify(
            &keys,
            &base,
            &to,
            "eve@acme.example",
            json!([{"name": EMAIL, "values": ["eve@acme.example"]}]),
        );
        let refused = browser
            .post_form(
                &format!("{base}/auth/saml/acs"),
                &[
                    ("SAMLResponse".into(), response),
                    ("RelayState".into(), relay(&to)),
                ],
            )
            .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(
            refused
                .body
                .contains("eve@acme.example signed in, but is not assigned to this application"),
            "{}",
            refused.body
        );
        drop(server);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_names_the_missing_saml_settings_and_an_unreadable_certificate() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&Backend::Sqlite, dir.path()).env("SAML_IDP_SSO_URL", IDP_SSO);
    let failure = Server::try_start(&options)
        .err()
        .expect("started without SAML_IDP_ENTITY_ID and SAML_IDP_CERT_FILE");
    assert!(
        failure
            .stderr
            .contains("SAML sign-in needs SAML_IDP_ENTITY_ID, SAML_IDP_CERT_FILE"),
        "{}",
        failure.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&Backend::Sqlite, dir.path())
        .env("SAML_IDP_ENTITY_ID", IDP_ENTITY)
        .env("SAML_IDP_SSO_URL", IDP_SSO)
        .env("SAML_IDP_CERT_FILE", "/nonexistent/idp.pem");
    let failure = Server::try_start(&options)
        .err()
        .expect("started with an unreadable certificate");
    assert!(
        failure
            .stderr
            .contains("SAML_IDP_CERT_FILE: cannot read /nonexistent/idp.pem"),
        "{}",
        failure.stderr
    );
}
