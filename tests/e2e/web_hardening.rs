//! The browser-facing hardening of security review findings M2, L1, L2 and L8, against the real
//! binary: no redirect off-site after sign-in (`next` with a tab or newline), the security
//! headers, cross-site sign-in/sign-out/invitation forms refused, and the bounds on pending SSO
//! sign-ins written by anonymous GETs.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::people::{PASSWORD, browser, local_options, set_owner_password};

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Posted {
    status: u16,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

/// POSTs a console form with extra request headers (Origin, Referer, a cookie, …).
async fn post(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> Posted {
    let mut req = browser(server)
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    Posted {
        status: res.status().as_u16(),
        location: res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned()),
        cookie: res
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned()),
        body: res.text().await.unwrap(),
    }
}

/// Whether a browser that follows `location` stays on the server (it strips tab and newline,
/// and reads `\` as `/`).
fn stays_on_site(location: &str) -> bool {
    let cleaned: String = location
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    cleaned.starts_with('/') && !cleaned.starts_with("//")
}

fn owner_fields(next: &str) -> [(&str, &str); 3] {
    [
        ("email", "owner@acme.example"),
        ("password", PASSWORD),
        ("next", next),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_never_redirects_off_site() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    set_owner_password(&server).await;
    let client = browser(&server);
    for hostile in [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d%0a/evil.example",
        "/%5c/evil.example",
        "%2f%2fevil.example",
        "/%2509/evil.example",
    ] {
        // The page carries the return path into its form: only a safe one.
        let page = client
            .get(format!("{}/login?next={hostile}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        let carried = html
            .split("name=\"next\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        assert_eq!(carried, "/device", "{hostile}: {html}");
    }
    // An attacker's own form posts the raw value (tab, newline, backslash) straight to /login.
    for raw in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\\/evil.example",
        "/%09/evil.example",
        " //evil.example",
        "https://evil.example/",
    ] {
        let signed = post(&server, "/login", &[], &owner_fields(raw)).await;
        assert_eq!(signed.status, 303, "{raw:?}: {}", signed.body);
        let location = signed.location.unwrap();
        assert!(stays_on_site(&location), "{raw:?} → {location:?}");
        assert_eq!(location, "/device", "{raw:?}");
    }
    // A path of this server is still returned to.
    let signed = post(
        &server,
        "/login",
        &[],
        &owner_fields("/device?user_code=BCDF-GHJK"),
    )
    .await;
    assert_eq!(
        signed.location.as_deref(),
        Some("/device?user_code=BCDF-GHJK")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sso_sign_in_never_redirects_off_site() {
    install_crypto();
    if !crate::sso_oidc::node_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let keyward_url = format!("https://127.0.0.1:{port}");
    let idp = crate::sso_oidc::start_idp(dir.path(), &keyward_url);
    let server = Server::start(&crate::sso_oidc::keycloak_options(
        &Backend::Sqlite,
        dir.path(),
        &idp,
        port,
    ));
    let ca = server.ca_file.clone().unwrap();
    for hostile in [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%5c/evil.example",
    ] {
        let mut browser = crate::sso_oidc::Browser::new(&[ca.as_path(), idp.trust.as_path()]);
        let started = browser
            .get(&format!("{keyward_url}/auth/keycloak/login?next={hostile}"))
            .await;
        assert_eq!(started.status, 303, "{}", started.body);
        let auth_url = started.location.unwrap();
        let callback = match crate::sso_oidc::drive(
            &mut browser,
            &auth_url,
            "alice@acme.example",
            &keyward_url,
        )
        .await
        {
            crate::sso_oidc::Outcome::Stopped(url) => url,
            crate::sso_oidc::Outcome::Page(a) => panic!("{} {}", a.status, a.body),
        };
        let landed = browser.get(&callback).await;
        assert_eq!(landed.status, 303, "{hostile}: {}", landed.body);
        let location = landed.location.unwrap();
        assert!(stays_on_site(&location), "{hostile} → {location:?}");
        assert_eq!(location, "/auth/session", "{hostile}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    // The default server: self-signed TLS, so people reach it over HTTPS.
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let client = browser(&server);
    for (method, path, status) in [
        (Method::GET, "/healthz", 200),
        (Method::GET, "/.well-known/openid-configuration", 200),
        (Method::GET, "/login", 200),
        (Method::GET, "/api/v1/orgs", 401),
        (Method::GET, "/no/such/route", 404),
        (Method::GET, "/setup", 200),
    ] {
        let res = client
            .request(method.clone(), format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["strict-transport-security"], "max-age=31536000", "{path}");
    }

    // The setup page shows the owner's first token: not framed, not cached, only its own script.
    let res = client
        .get(format!("{}/setup", server.url))
        .send()
        .await
        .unwrap();
    let h = res.headers().clone();
    let html = res.text().await.unwrap();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    // The script allowed by hash is exactly the page's script, so the page still works.
    let script = html
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .unwrap()
        .0;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, script.as_bytes());
    let hash = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest);
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}'")),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline'; script") && !csp.contains("script-src 'unsafe"));
    drop(server);

    // Plain HTTP (loopback, no proxy): no HSTS, the other headers still.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()).arg("--http"));
    assert!(server.url.starts_with("http://"), "{}", server.url);
    let res = server
        .client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("strict-transport-security").is_none());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_sign_in_sign_out_and_invitation_forms_are_refused() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    set_owner_password(&server).await;
    let own = server.url.clone();
    let own_referer = format!("{own}/login?next=/device");
    let cross_site: Vec<Vec<(&str, &str)>> = vec![
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("referer", "https://evil.example/login")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site"), ("origin", &own)],
    ];

    // Login CSRF: an attacker's page posts the attacker's credentials.
    for headers in &cross_site {
        let signed = post(&server, "/login", headers, &owner_fields("/device")).await;
        assert_eq!(signed.status, 403, "{headers:?}: {}", signed.body);
        assert!(signed.cookie.is_none(), "{headers:?}");
        assert!(
            signed.body.contains("sent from") && signed.body.contains(&own),
            "the page says why: {}",
            signed.body
        );
    }
    // The same form from this server's own page signs in.
    for headers in [
        vec![("origin", own.as_str())],
        vec![("referer", own_referer.as_str())],
        vec![("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
    ] {
        let signed = post(&server, "/login", &headers, &owner_fields("/device")).await;
        assert_eq!(signed.status, 303, "{headers:?}: {}", signed.body);
        assert!(signed.cookie.is_some());
    }

    // Logout CSRF: a cross-site post does not end the session; a same-origin one does.
    let cookie = post(
        &server,
        "/login",
        &[("origin", &own)],
        &owner_fields("/device"),
    )
    .await
    .cookie
    .unwrap();
    let signed_in = |cookie: String| {
        let server = &server;
        async move {
            let res = browser(server)
                .get(format!("{}/auth/session", server.url))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = res.json().await.unwrap();
            body["signed_in"] == json!(true)
        }
    };
    for headers in &cross_site {
        let mut headers = headers.clone();
        headers.push(("cookie", &cookie));
        let out = post(&server, "/logout", &headers, &[]).await;
        assert_eq!(out.status, 403, "{headers:?}: {}", out.body);
    }
    assert!(signed_in(cookie.clone()).await, "still signed in");
    let out = post(
        &server,
        "/logout",
        &[("origin", &own), ("cookie", &cookie)],
        &[],
    )
    .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(!signed_in(cookie.clone()).await, "signed out");

    // Invitation acceptance is a sign-in too.
    let (status, invited) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/invitations", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"email": "bob@acme.example", "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let token = invited["invitation_url"]
        .as_str()
        .unwrap()
        .split_once("#token=")
        .unwrap()
        .1
        .to_owned();
    let fields = [
        ("token", token.as_str()),
        ("password", "bob's long password"),
    ];
    let refused = post(
        &server,
        "/invite",
        &[("origin", "https://evil.example")],
        &fields,
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.cookie.is_none());
    // Refused before anything happened: the invitation still works from this server's page.
    let joined = post(&server, "/invite", &[("origin", &own)], &fields).await;
    assert_eq!(joined.status, 303, "{}", joined.body);
}

/// A throwaway IdP certificate: SAML sign-in starts need only the IdP's settings, not the IdP.
fn idp_cert(dir: &Path) -> std::path::PathBuf {
    let cert = dir.join("idp.crt");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=test-idp"])
        .arg("-keyout")
        .arg(dir.join("idp.key"))
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(out.status.success(), "{out:?}");
    cert
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_sign_in_starts_are_bounded() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let cert = idp_cert(dir.path());
        let options = ServerOptions::new(&backend, &dir.path().join("kw"))
            .env("AUTH_PROVIDER", "entra_id")
            .env("ENTRA_ID_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
            .env("ENTRA_ID_CLIENT_SECRET", "unused-in-this-test")
            .env("ENTRA_ID_TENANT_ID", "00000000-0000-0000-0000-000000000002")
            .env("SAML_IDP_ENTITY_ID", "https://idp.test/metadata")
            .env("SAML_IDP_SSO_URL", "https://idp.test/sso")
            .env("SAML_IDP_CERT_FILE", cert.to_str().unwrap());
        let server = Server::start(&options);
        let name = backend.name();
        let client = browser(&server);
        let start = |next: String| {
            let client = client.clone();
            let url = format!("{}/auth/saml/login?next={next}", server.url);
            async move { client.get(url).send().await.unwrap() }
        };

        // The stored return path is the safe default, not the tab trick.
        let res = start("/%09/evil.example".into()).await;
        assert_eq!(res.status().as_u16(), 303, "{name}");
        assert_eq!(
            exec_sql(
                &options,
                "DELETE FROM sso_pending WHERE next_path = '/auth/session'"
            )
            .await,
            1,
            "{name}: the pending row holds the default return path"
        );

        // An oversized return path is refused before anything is written.
        let res = start(format!("/{}", "a".repeat(4096))).await;
        assert_eq!(res.status().as_u16(), 400, "{name}");
        assert!(res.text().await.unwrap().contains("longer than 2048 bytes"));

        // One address: a few starts a minute, then 429 with Retry-After.
        let mut limited = None;
        for i in 0..70 {
            let res = start("/device".into()).await;
            if res.status().as_u16() == 429 {
                limited = Some((i, res));
                break;
            }
            assert_eq!(res.status().as_u16(), 303, "{name}: start {i}");
        }
        let (i, res) = limited.expect("a per-address limit");
        // The oversized one above did not count; the first start did. The window may turn
        // over once while this runs.
        assert!((29..70).contains(&i), "{name}: limited after {i} starts");
        let retry: i64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");

        // The table is capped: filled with live rows (as from many addresses), a new start is
        // refused and nothing is written.
        exec_sql(&options, "DELETE FROM rate_counters").await;
        exec_sql(&options, "DELETE FROM sso_pending").await;
        let filled = exec_sql(
            &options,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
             INSERT INTO sso_pending (state_hash, protocol, nonce, pkce_verifier, next_path, created_at, expires_at) \
             SELECT 'filler-' || i, 'saml', 'x', '', '/device', 0, 4000000000 FROM n",
        )
        .await;
        assert_eq!(filled, 10_000);
        let res = start("/device".into()).await;
        assert_eq!(res.status().as_u16(), 503, "{name}");
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(
            exec_sql(
                &options,
                "DELETE FROM sso_pending WHERE state_hash NOT LIKE 'filler-%'"
            )
            .await,
            0,
            "{name}: nothing was written"
        );
        // Expired rows do not count: once they lapse, sign-ins start again.
        exec_sql(
            &options,
            "UPDATE sso_pending SET expires_at = 1 WHERE state_hash LIKE 'filler-%'",
        )
        .await;
        let res = start("/device".into()).await;
        assert_eq!(res.status().as_u16(), 303, "{name}");
        assert_eq!(
            exec_sql(
                &options,
                "DELETE FROM sso_pending WHERE state_hash LIKE 'filler-%'"
            )
            .await,
            0,
            "{name}: expired rows were purged"
        );
        assert_eq!(
            exec_sql(&options, "DELETE FROM sso_pending").await,
            1,
            "{name}"
        );
    }
}
