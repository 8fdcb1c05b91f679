//! SSO against a real OpenID Provider: node `oidc-provider` (interop/oidc/idp.js) laid out like
//! Keycloak, with `keyward serve` configured by `AUTH_PROVIDER=keycloak` and the KEYCLOAK_*
//! variables, trusting the IdP's CA through `KEYWARD_SSO_CA_FILE`.
//!
//! The "browser" is an HTTP client with a cookie jar that follows redirects and posts the IdP's
//! sign-in and consent forms as a person would. The refusal cases change only what an attacker
//! or a broken IdP could change — the state in the callback URL, the nonce or PKCE challenge in
//! the authorization URL on its way to the IdP, a callback URL used twice — and every check that
//! refuses them is either Keyward's or oidc-provider's own.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

const REALM: &str = "acme";
const CLIENT_ID: &str = "keyward-web";
const CLIENT_SECRET: &str = "web-client-secret-for-tests";
const DEVICE_CLIENT_ID: &str = "keyward-cli";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/oidc")
}

/// The IdP process; killed on drop.
pub struct Idp {
    child: Child,
    pub issuer: String,
    pub port: u16,
    /// The IdP's CA and Keyward's, in one bundle (for the CLI and the test browser).
    pub trust: PathBuf,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether node and the installed oidc-provider are there; without them the test fails under
/// `KEYWARD_REQUIRE_INTEROP=1` (scripts/test) and is skipped otherwise.
pub fn node_ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = interop_dir()
        .join("node_modules/oidc-provider/package.json")
        .exists();
    if node && installed {
        return true;
    }
    assert!(
        std::env::var_os("KEYWARD_REQUIRE_INTEROP").is_none(),
        "node and interop/oidc's oidc-provider are required: install nodejs and run `npm ci --prefix interop/oidc` (scripts/test does both)"
    );
    eprintln!("skipping: node or interop/oidc/node_modules missing (npm ci --prefix interop/oidc)");
    false
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Where a test writes what the IdP says about particular logins (email, email_verified,
/// roles); idp.js reads it at every sign-in.
pub fn idp_accounts_file(dir: &Path) -> PathBuf {
    dir.join("idp-accounts.json")
}

/// Starts the IdP with its own CA (made like Keyward's self-signed one), for a Keyward that
/// will listen at `keyward_url`.
pub fn start_idp(dir: &Path, keyward_url: &str) -> Idp {
    start_idp_on(dir, keyward_url, 0)
}

/// [`start_idp`] on a given port (0: any), with a fresh signing key each time; the TLS files in
/// `dir` are reused, so a restarted IdP is trusted as before.
pub fn start_idp_on(dir: &Path, keyward_url: &str, port: u16) -> Idp {
    if port != 0 {
        wait_until_free(port);
    }
    // A node started on a port its predecessor just released was seen (once, on a loaded
    // machine) never to listen nor exit: give each start a minute, then try afresh.
    for attempt in 1..=3 {
        if let Some(idp) = try_start_idp(dir, keyward_url, port) {
            return idp;
        }
        eprintln!("idp.js did not start within 60 s (attempt {attempt}); starting it again");
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("idp.js did not start in three attempts");
}

/// Waits (at most 20 s) until nothing listens on `port`, e.g. a killed predecessor's socket.
fn wait_until_free(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} still taken 20 s after the IdP was stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn try_start_idp(dir: &Path, keyward_url: &str, port: u16) -> Option<Idp> {
    let tls_dir = dir.join("idp-tls");
    let tls = keyward_server::tls::ensure_self_signed(
        &tls_dir,
        &["127.0.0.1".to_owned()],
        keyward_server::clock::now(),
    )
    .expect("IdP certificate");
    let mut child = Command::new("node")
        .arg(interop_dir().join("idp.js"))
        .env("IDP_TLS_CERT", &tls.cert)
        .env("IDP_TLS_KEY", &tls.key)
        .env("IDP_REALM", REALM)
        .env("IDP_CLIENT_ID", CLIENT_ID)
        .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "IDP_REDIRECT_URI",
            format!("{keyward_url}/auth/keycloak/callback"),
        )
        .env("IDP_POST_LOGOUT_URI", format!("{keyward_url}/"))
        .env("IDP_DEVICE_CLIENT_ID", DEVICE_CLIENT_ID)
        .env("IDP_AUDIENCE", "account")
        .env("IDP_PORT", port.to_string())
        // Absent unless a test writes it (see `idp_accounts_file`).
        .env("IDP_ACCOUNTS_FILE", idp_accounts_file(dir))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node interop/oidc/idp.js");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let (first_line, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = first_line.send(line);
        // Keep reading: node dies of EPIPE when it writes to a closed pipe.
        std::io::copy(&mut out, &mut std::io::sink())
    });
    // Nothing within a minute, or an exit before listening (the port not yet free): again.
    let line = line_rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .filter(|l| !l.trim().is_empty());
    let Some(line) = line else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let started: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("idp.js did not start ({e}): {line:?}"));
    Some(Idp {
        child,
        issuer: started["issuer"].as_str().expect("issuer").to_owned(),
        port: started["port"].as_u64().expect("port") as u16,
        trust: tls.ca.expect("IdP CA"),
    })
}

/// Keyward, `AUTH_PROVIDER=keycloak`, pointing at `idp`, listening on `port`.
pub fn keycloak_options(backend: &Backend, dir: &Path, idp: &Idp, port: u16) -> ServerOptions {
    let mut options = ServerOptions::new(backend, &dir.join("keyward"))
        .env("AUTH_PROVIDER", "keycloak")
        .env("KEYCLOAK_CLIENT_ID", CLIENT_ID)
        .env("KEYCLOAK_CLIENT_SECRET", CLIENT_SECRET)
        .env("KEYCLOAK_SITE", &format!("https://127.0.0.1:{}", idp.port))
        .env("KEYCLOAK_REALM", REALM)
        .env("KEYCLOAK_AUDIENCE", "account")
        .env("KEYCLOAK_DEVICE_AUTHORIZATION_CLIENT_ID", DEVICE_CLIENT_ID)
        .env("KEYWARD_SSO_CA_FILE", idp.trust.to_str().expect("path"));
    options.listen = format!("127.0.0.1:{port}");
    options
}

/// A person's browser: a cookie jar, redirects followed by hand (so the test sees each hop).
pub struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new(cas: &[&Path]) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        for ca in cas {
            let pem = std::fs::read(ca).expect("read CA");
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        Browser {
            http: builder.build().unwrap(),
            jar: BTreeMap::new(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&String> {
        self.jar.get(name)
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.insert(name.to_owned(), value.to_owned());
    }

    /// Both hosts are 127.0.0.1, and browsers do not tell cookies apart by port either; the
    /// names differ (keyward_*, _interaction*, _session*).
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = if self.jar.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let res = req.send().await.expect("request");
        for set in res.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = set.to_ascii_lowercase().contains("max-age=0")
                || set
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
            if expired || value.is_empty() {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap_or_default();
        Answer {
            status,
            location,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let req = self.http.get(url);
        self.send(req).await
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> Answer {
        let req = self.http.post(url).form(fields);
        self.send(req).await
    }
}

fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(location))
        .expect("a URL")
        .to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The first POST form of a page: its action and fields (hidden or pre-filled).
fn form(body: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = body.find("<form")?;
    let end = body[start..].find("</form>")? + start;
    let html = &body[start..end];
    let head = &html[..html.find('>')?];
    let action = attr(head, "action")?;
    let mut fields = Vec::new();
    for piece in html.split("<input").skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((name, value));
        }
    }
    Some((action, fields))
}

pub enum Outcome {
    /// The browser was sent to this URL of `stop_at` (not followed).
    Stopped(String),
    /// A page that is not a redirect and has no form to post: the end of the road.
    Page(Answer),
}

/// Follows redirects from `url` and fills the IdP's forms as `login` would (sign in, consent,
/// device code confirmation), until the browser is sent to a URL starting with `stop_at`.
pub async fn drive(browser: &mut Browser, url: &str, login: &str, stop_at: &str) -> Outcome {
    let mut url = url.to_owned();
    let mut answer = browser.get(&url).await;
    for _ in 0..30 {
        if let Some(location) = answer.location.clone() {
            let next = absolute(&url, &location);
            if next.starts_with(stop_at) {
                return Outcome::Stopped(next);
            }
            url = next;
            answer = browser.get(&url).await;
            continue;
        }
        let Some((action, mut fields)) = form(&answer.body).filter(|_| answer.status == 200) else {
            return Outcome::Page(answer);
        };
        if fields.iter().any(|(k, v)| k == "prompt" && v == "login") {
            fields.push(("login".into(), login.to_owned()));
            fields.push(("password".into(), "any password".into()));
        }
        let target = absolute(&url, &action);
        answer = browser.post_form(&target, &fields).await;
        url = target;
    }
    panic!("more than 30 hops from {url}");
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn with_query(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = parsed.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(value) = value {
            q.append_pair(name, value);
        }
    }
    parsed.to_string()
}

/// Starts a sign-in at Keyward: the authorization URL it sends the browser to.
pub async fn start(browser: &mut Browser, server: &Server) -> String {
    let answer = browser
        .get(&format!("{}/auth/keycloak/login", server.url))
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(browser.cookie("keyward_sso_state").is_some());
    answer.location.expect("a redirect to the IdP")
}

pub async fn callback_for(
    browser: &mut Browser,
    server: &Server,
    auth_url: &str,
    login: &str,
) -> String {
    match drive(browser, auth_url, login, &server.url).await {
        Outcome::Stopped(url) => url,
        Outcome::Page(a) => panic!(
            "the IdP did not send the browser back: {} {}",
            a.status, a.body
        ),
    }
}

async fn audit_reasons(server: &Server) -> Vec<String> {
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/audit?type=auth.login_failed", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = body
        .as_array()
        .or_else(|| body["events"].as_array())
        .cloned()
        .unwrap_or_default();
    events
        .iter()
        .filter_map(|e| {
            e["detail"]["reason"]
                .as_str()
                .or_else(|| e["data"]["reason"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sign_in_with_code_pkce_state_and_nonce_and_its_refusals() {
    install_crypto();
    if !node_ready() {
        return;
    }
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let keyward_url = format!("https://127.0.0.1:{port}");
        let idp = start_idp(dir.path(), &keyward_url);
        // Debug logs: even request spans must not carry the code or the state.
        let server = Server::start(
            &keycloak_options(&backend, dir.path(), &idp, port).env("KEYWARD_LOG", "debug"),
        );
        assert_eq!(server.url, keyward_url);
        let ca = server.ca_file.clone().expect("Keyward's CA");
        let new_browser = || Browser::new(&[ca.as_path(), idp.trust.as_path()]);
        let name = backend.name();

        // A member signs in: code flow with PKCE S256, state and nonce, through the IdP's forms.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        assert!(auth_url.starts_with(&format!("{}/protocol/openid-connect/auth?", idp.issuer)));
        assert_eq!(query(&auth_url, "response_type").as_deref(), Some("code"));
        assert_eq!(
            query(&auth_url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert!(query(&auth_url, "code_challenge").is_some_and(|c| c.len() >= 43));
        assert!(query(&auth_url, "nonce").is_some());
        assert_eq!(
            query(&auth_url, "redirect_uri").as_deref(),
            Some(format!("{keyward_url}/auth/keycloak/callback").as_str())
        );
        let state_cookie = browser.cookie("keyward_sso_state").cloned().unwrap();
        assert_eq!(
            query(&auth_url, "state").as_deref(),
            Some(state_cookie.as_str())
        );
        let callback = callback_for(&mut browser, &server, &auth_url, "alice@acme.example").await;
        assert!(callback.starts_with(&format!("{keyward_url}/auth/keycloak/callback?")));
        let code = query(&callback, "code").expect("a code");
        let landed = browser.get(&callback).await;
        assert_eq!(landed.status, 303, "{name}: {}", landed.body);
        assert_eq!(landed.location.as_deref(), Some("/auth/session"));
        assert!(browser.cookie("keyward_session").is_some(), "{name}");
        assert!(browser.cookie("keyward_sso_state").is_none(), "{name}");
        let me = browser.get(&format!("{keyward_url}/auth/session")).await;
        assert_eq!(me.status, 200, "{}", me.body);
        let me: Value = serde_json::from_str(&me.body).unwrap();
        assert_eq!(me["signed_in"], true);
        assert_eq!(me["user"]["email"], "alice@acme.example");
        assert_eq!(me["provider"], "keycloak");
        assert_eq!(me["organizations"][0]["name"], "Acme", "{me}");
        assert_eq!(me["organizations"][0]["role"], "member", "{me}");

        // The same callback again (a reused code, replayed with the state cookie it came with):
        // the pending sign-in was taken by the first use.
        browser.set_cookie("keyward_sso_state", &state_cookie);
        let again = browser.get(&callback).await;
        assert_eq!(again.status, 400, "{name}: {}", again.body);
        assert!(again.body.contains("already completed"), "{}", again.body);

        // Sign-out goes on to the IdP's end-session endpoint and ends the Keyward session.
        let session = browser.cookie("keyward_session").cloned().unwrap();
        let out = browser
            .post_form(&format!("{keyward_url}/logout"), &[])
            .await;
        assert_eq!(out.status, 303);
        let to = out.location.unwrap();
        assert!(
            to.starts_with(&format!("{}/protocol/openid-connect/logout?", idp.issuer)),
            "{to}"
        );
        assert_eq!(query(&to, "client_id").as_deref(), Some(CLIENT_ID));
        browser.set_cookie("keyward_session", &session);
        let gone = browser.get(&format!("{keyward_url}/auth/session")).await;
        let gone: Value = serde_json::from_str(&gone.body).unwrap();
        assert_eq!(gone["signed_in"], false, "{gone}");
        assert_eq!(gone["login"], "/auth/keycloak/login");

        // Tampered state: the callback's state is not the one this browser started with.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        let callback = callback_for(&mut browser, &server, &auth_url, "alice@acme.example").await;
        let tampered = with_query(&callback, "state", Some("attacker-chosen-state"));
        let refused = browser.get(&tampered).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.body.contains("state mismatch"), "{}", refused.body);
        assert!(browser.cookie("keyward_session").is_none());

        // Wrong nonce: the nonce is changed on the way to the IdP, which puts the changed one
        // into the (validly signed) ID token; Keyward expects the one it stored.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        let auth_url = with_query(&auth_url, "nonce", Some("nonce-of-another-sign-in"));
        let callback = callback_for(&mut browser, &server, &auth_url, "alice@acme.example").await;
        let refused = browser.get(&callback).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(
            refused.body.contains("ID token was refused"),
            "{}",
            refused.body
        );
        assert!(
            refused.body.to_lowercase().contains("nonce"),
            "{}",
            refused.body
        );
        assert!(browser.cookie("keyward_session").is_none());

        // PKCE: a code obtained with another challenge (an injected code) is redeemed with this
        // sign-in's verifier, which oidc-provider refuses.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        let other_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let auth_url = with_query(&auth_url, "code_challenge", Some(other_challenge));
        let callback = callback_for(&mut browser, &server, &auth_url, "alice@acme.example").await;
        let refused = browser.get(&callback).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(
            refused
                .body
                .contains("refused the authorization code (invalid_grant"),
            "{}",
            refused.body
        );
        // And a sign-in without a PKCE challenge at all never gets a code.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        let auth_url = with_query(&auth_url, "code_challenge", None);
        let auth_url = with_query(&auth_url, "code_challenge_method", None);
        let callback = callback_for(&mut browser, &server, &auth_url, "alice@acme.example").await;
        assert!(query(&callback, "code").is_none(), "{callback}");
        let refused = browser.get(&callback).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("invalid_request"), "{}", refused.body);
        assert!(refused.body.contains("requires PKCE"), "{}", refused.body);

        // Signed in at the IdP but assigned neither role: 403, and no account is created.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        let callback = callback_for(&mut browser, &server, &auth_url, "nobody@acme.example").await;
        let refused = browser.get(&callback).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(
            refused
                .body
                .contains("nobody@acme.example signed in, but is not assigned to this application"),
            "{}",
            refused.body
        );
        assert!(browser.cookie("keyward_session").is_none());

        // factory-admin administers: Owner of the organization on first sign-in.
        let mut browser = new_browser();
        let auth_url = start(&mut browser, &server).await;
        let callback = callback_for(&mut browser, &server, &auth_url, "root@acme.example").await;
        assert_eq!(browser.get(&callback).await.status, 303);
        let me: Value = serde_json::from_str(
            &browser
                .get(&format!("{keyward_url}/auth/session"))
                .await
                .body,
        )
        .unwrap();
        assert_eq!(me["organizations"][0]["role"], "owner", "{me}");

        // Every refusal is in the audit log, with its reason.
        let reasons = audit_reasons(&server).await;
        for reason in ["state", "verification", "provider_error", "not_assigned"] {
            assert!(reasons.iter().any(|r| r == reason), "{name}: {reasons:?}");
        }
        // No code, state or client secret reached the server's log.
        let log = server.stderr();
        assert!(!log.contains(CLIENT_SECRET));
        assert!(!log.contains(&state_cookie));
        assert!(
            !log.contains(&code),
            "{name}: the authorization code is in the log"
        );
        assert!(
            log.contains("/auth/keycloak/callback"),
            "debug spans name the path"
        );
    }
}
