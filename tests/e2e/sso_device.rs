//! `keyward login` (RFC 8628 device flow) against a real OpenID Provider laid out like Keycloak
//! (node `oidc-provider`, whose device response has no `interval`: the CLI must wait the default
//! 5 s), approved in the IdP's own verification pages; the access token it yields is then
//! accepted by Keyward as an API bearer token — validated against the IdP's issuer, the
//! configured audience and its JWKS.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::sso_oidc::{
    Browser, Outcome, drive, keycloak_options, node_ready, start_idp, start_idp_on,
};

pub fn people_cli(home: &Path, trust: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.env("KEYWARD_CONFIG_DIR", home)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("KEYWARD_CREDENTIAL_STORE")
        .env("KEYWARD_CA_FILE", trust);
    cmd
}

/// Runs `keyward login`, approves it in the IdP's pages as `person`; returns the access token.
pub async fn device_login(
    home: &Path,
    trust: &Path,
    browser: &mut Browser,
    person: &str,
) -> String {
    let started = Instant::now();
    let mut login = people_cli(home, trust)
        .arg("login")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread, so a CLI that never prints its URL fails the test instead of hanging it.
    let (line_tx, lines) = std::sync::mpsc::channel();
    let stdout = BufReader::new(login.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let open = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("1. Open: ") {
                    break url.to_owned();
                }
            }
            Err(e) => {
                let _ = login.kill();
                let _ = login.wait();
                panic!("keyward login printed no URL within 60 s: {e}");
            }
        }
    };
    assert!(open.contains("/realms/acme/device?user_code="), "{open}");
    match drive(browser, &open, person, "https://never.invalid").await {
        Outcome::Page(page) => {
            assert_eq!(page.status, 200, "{}", page.body);
            assert!(page.body.contains("Sign-in Success"), "{}", page.body);
        }
        Outcome::Stopped(url) => panic!("unexpected redirect to {url}"),
    }
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..300 {
            if let Some(status) = login.try_wait().unwrap() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut login.stderr.take().unwrap(), &mut err);
                return (status, err);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = login.kill();
        panic!("keyward login did not finish within 30 s of approval");
    })
    .await
    .unwrap();
    // The CLI has exited: what is left of its output arrives at once (bounded all the same).
    let rest: Vec<String> =
        std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(5)).ok()).collect();
    assert!(status.0.success(), "{rest:?} {}", status.1);
    // No `interval` in the IdP's answer: the CLI waited RFC 8628's default 5 s before polling.
    assert!(started.elapsed() >= Duration::from_secs(5));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(home.join("credentials.json")).unwrap()).unwrap();
    stored["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn keyward_login_against_the_idp_yields_a_bearer_token_keyward_accepts() {
    install_crypto();
    if !node_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let keyward_url = format!("https://127.0.0.1:{port}");
    let idp = start_idp(dir.path(), &keyward_url);
    let server = Server::start(&keycloak_options(&Backend::Sqlite, dir.path(), &idp, port));
    let ca = server.ca_file.clone().unwrap();
    // The CLI talks to both Keyward and the IdP: one bundle with both CAs.
    let trust = dir.path().join("trust.pem");
    let mut bundle = std::fs::File::create(&trust).unwrap();
    bundle.write_all(&std::fs::read(&ca).unwrap()).unwrap();
    bundle
        .write_all(&std::fs::read(&idp.trust).unwrap())
        .unwrap();
    drop(bundle);

    let home = tempfile::tempdir().unwrap();
    let out = people_cli(home.path(), &trust)
        .args(["configure", &keyward_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = people_cli(home.path(), &trust)
        .args(["config", "list"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(listing.contains("oauth2_provider = keycloak"), "{listing}");
    assert!(listing.contains("oauth2_audience = account"), "{listing}");

    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);
    let token = device_login(home.path(), &trust, &mut browser, "alice@acme.example").await;

    // Keyward accepts the IdP's access token as a bearer and provisions alice as a member.
    let client = server.client();
    let (status, orgs) = call(
        &client,
        Method::GET,
        &format!("{keyward_url}/crewai_plus/api/v1/me/organizations"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{orgs}");
    assert_eq!(orgs, json!([{"name": "Acme", "uuid": org_id(&server)}]));
    let out = people_cli(home.path(), &trust)
        .args(["org", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Acme"));

    // A token whose signature was altered is refused (the JWKS decides, not the payload).
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{keyward_url}/crewai_plus/api/v1/me/organizations"),
        Some(&forged),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");

    // The same token at a Keyward that expects another audience, or trusts another IdP (its
    // own issuer and keys): refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let other = Server::start(
        &keycloak_options(&Backend::Sqlite, other_dir.path(), &idp, other_port)
            .env("KEYCLOAK_AUDIENCE", "another-api"),
    );
    let (status, body) = call(
        &other.client(),
        Method::GET,
        &format!("{}/crewai_plus/api/v1/me/organizations", other.url),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // The caller learns nothing of which check failed; whoever runs Keyward reads it in the log.
    assert_eq!(
        body["message"], "the bearer token is not known to this server",
        "{body}"
    );
    let log = other.stderr();
    assert!(
        log.contains("is not for audience \\\"another-api\\\"")
            || log.contains("is not for audience \"another-api\""),
        "the refusal's reason is not in the server log:\n{log}"
    );
    drop(other);
    let third_dir = tempfile::tempdir().unwrap();
    let third_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let another_idp = start_idp(third_dir.path(), &format!("https://127.0.0.1:{third_port}"));
    let third = Server::start(&keycloak_options(
        &Backend::Sqlite,
        third_dir.path(),
        &another_idp,
        third_port,
    ));
    let (status, body) = call(
        &third.client(),
        Method::GET,
        &format!("{}/crewai_plus/api/v1/me/organizations", third.url),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    drop(third);

    // A token from the right IdP for a person without either role: 403, not assigned.
    let home2 = tempfile::tempdir().unwrap();
    let out = people_cli(home2.path(), &trust)
        .args(["configure", &keyward_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);
    let nobody = device_login(home2.path(), &trust, &mut browser, "nobody@acme.example").await;
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{keyward_url}/crewai_plus/api/v1/me/organizations"),
        Some(&nobody),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "not_assigned");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not assigned to this application"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_idp_key_is_fetched_on_its_first_token_but_at_most_every_30_seconds() {
    install_crypto();
    if !node_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let keyward_url = format!("https://127.0.0.1:{port}");
    let idp = start_idp(dir.path(), &keyward_url);
    let idp_port = idp.port;
    let server = Server::start(&keycloak_options(&Backend::Sqlite, dir.path(), &idp, port));
    let ca = server.ca_file.clone().unwrap();
    let trust = dir.path().join("trust.pem");
    let mut bundle = std::fs::File::create(&trust).unwrap();
    bundle.write_all(&std::fs::read(&ca).unwrap()).unwrap();
    bundle
        .write_all(&std::fs::read(&idp.trust).unwrap())
        .unwrap();
    drop(bundle);
    let home = tempfile::tempdir().unwrap();
    let out = people_cli(home.path(), &trust)
        .args(["configure", &keyward_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let orgs = format!("{keyward_url}/crewai_plus/api/v1/me/organizations");
    let client = server.client();

    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);
    let first = device_login(home.path(), &trust, &mut browser, "alice@acme.example").await;
    let (status, body) = call(&client, Method::GET, &orgs, Some(&first), None).await;
    assert_eq!(status, 200, "{body}");
    let keys_fetched = Instant::now();

    // The IdP restarts with a new signing key (same address, same TLS certificate).
    drop(idp);
    let idp = start_idp_on(dir.path(), &keyward_url, idp_port);
    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);
    let second = device_login(home.path(), &trust, &mut browser, "alice@acme.example").await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(&first), kid(&second));

    // Within 30 s of the last fetch the unknown key is not fetched: refused, saying why. The
    // server's clock is set back by the wall time the second sign-in took, so a slow machine
    // cannot carry the server past the window (it would rightly refetch).
    let took = keys_fetched.elapsed().as_secs() as i64 + 1;
    server.advance_clock(-took);
    let (status, body) = call(&client, Method::GET, &orgs, Some(&second), None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["message"], "the bearer token is not known to this server",
        "{body}"
    );
    assert!(
        server
            .stderr()
            .contains("keys are refetched at most every 30 s"),
        "the refusal's reason is not in the server log"
    );
    // Once the window has passed, the token's unknown kid makes Keyward fetch the new keys.
    server.advance_clock(took + 31);
    let (status, body) = call(&client, Method::GET, &orgs, Some(&second), None).await;
    assert_eq!(status, 200, "{body}");
    drop(idp);
}
