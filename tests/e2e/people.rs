//! People and the CLI device flow (SPEC §7) against the real binary: `/auth/parameters`, the
//! RFC 8628 endpoints in `local` mode, the `/device` verification page with a password sign-in,
//! people's access tokens as API bearers, and the provider settings checked at startup.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

pub const PASSWORD: &str = "correct horse battery staple";

/// A client that trusts the server's CA and does not follow redirects (the tests read them).
pub fn browser(server: &Server) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &server.ca_file {
        let pem = std::fs::read(ca).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

pub fn local_options(backend: &Backend, dir: &std::path::Path) -> ServerOptions {
    ServerOptions::new(backend, dir)
        .env("KEYWARD_ALLOW_SHORT_DURATIONS", "1")
        .env("KEYWARD_DEVICE_INTERVAL", "1")
}

/// `POST <path>` form-encoded; returns status and JSON body.
pub async fn form(server: &Server, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let body: String = form_body(fields);
    let res = server
        .client()
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| -> String {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn start_device_flow(server: &Server) -> Value {
    let (status, started) = form(
        server,
        "/oauth2/device_authorization",
        &[
            ("client_id", "keyward-cli"),
            ("scope", "openid profile email"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{started}");
    started
}

pub async fn poll(server: &Server, device_code: &str) -> (u16, Value) {
    form(
        server,
        "/oauth2/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", "keyward-cli"),
        ],
    )
    .await
}

pub async fn set_owner_password(server: &Server) {
    let (status, body) = call(
        &server.client(),
        Method::PUT,
        &format!("{}/api/v1/me/password", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

/// The host:port the CLI uses as `oauth2_domain`.
fn domain(server: &Server) -> String {
    server.url.trim_start_matches("https://").to_owned()
}

/// Signs in on `/login` as a person would and returns the session cookie (`name=value`).
pub async fn sign_in(server: &Server, next: &str) -> String {
    let client = browser(server);
    let res = client
        .post(format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("email", "owner@acme.example"),
            ("password", PASSWORD),
            ("next", next),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "{:?}", res.text().await);
    assert_eq!(res.headers()["location"], next);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// Approves (or denies) `user_code` on the `/device` page with a signed-in session.
pub async fn decide_on_page(
    server: &Server,
    cookie: &str,
    user_code: &str,
    action: &str,
) -> (u16, String) {
    let client = browser(server);
    let page = client
        .get(format!("{}/device?user_code={user_code}", server.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(user_code),
        "the page shows the code to confirm"
    );
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let res = client
        .post(format!("{}/device", server.url))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("csrf", &csrf),
            ("user_code", user_code),
            ("action", action),
        ]))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_signs_in_through_the_device_page_and_uses_its_token() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&local_options(&backend, dir.path()));
        let org = org_id(&server);
        let client = server.client();

        let (status, params) = call(
            &client,
            Method::GET,
            &format!("{}/auth/parameters", server.url),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            params,
            json!({"provider": "workos", "audience": "keyward-api", "domain": domain(&server),
                   "device_authorization_client_id": "keyward-cli", "extra": {}})
        );
        let (_, discovery) = call(
            &client,
            Method::GET,
            &format!("{}/.well-known/openid-configuration", server.url),
            None,
            None,
        )
        .await;
        assert_eq!(
            discovery["token_endpoint"],
            format!("{}/oauth2/token", server.url)
        );

        let started = start_device_flow(&server).await;
        let device_code = started["device_code"].as_str().unwrap();
        let user_code = started["user_code"].as_str().unwrap();
        assert_eq!(started["interval"], 1);
        assert_eq!(started["expires_in"], 600);
        assert_eq!(
            started["verification_uri"],
            format!("{}/device", server.url)
        );
        assert_eq!(user_code.len(), 9);

        // Before approval: pending, and a second poll at once is too fast.
        let (status, body) = poll(&server, device_code).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("authorization_pending")),
            "{body}"
        );
        let (status, body) = poll(&server, device_code).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("slow_down")),
            "{body}"
        );

        // The page sends a stranger to sign in first, then back to the code.
        let res = browser(&server)
            .get(format!("{}/device?user_code={user_code}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/login?next=%2Fdevice"), "{location}");

        set_owner_password(&server).await;
        let cookie = sign_in(&server, &format!("/device?user_code={user_code}")).await;
        let (status, html) = decide_on_page(&server, &cookie, user_code, "approve").await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("approved"), "{html}");

        // A token of the second the password was set would already be revoked.
        server.advance_clock(1);
        let (status, issued) = poll(&server, device_code).await;
        assert_eq!(status, 200, "{issued}");
        assert_eq!(issued["token_type"], "Bearer");
        let access = issued["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(access).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let claims = verify(
            access,
            &jwks(&server).await,
            &format!("https://{}", domain(&server)),
            "keyward-api",
        )
        .unwrap();
        assert!(claims["sub"].as_str().unwrap().starts_with("user:"));
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

        // Single use: the same device code never yields a second token.
        let (status, again) = poll(&server, device_code).await;
        assert_eq!(
            (status, again["error"].as_str()),
            (400, Some("invalid_grant")),
            "{again}"
        );

        // The access token is a person's bearer: the CrewAI organization list and the API...
        let (status, orgs) = call(
            &client,
            Method::GET,
            &format!("{}/crewai_plus/api/v1/me/organizations", server.url),
            Some(access),
            None,
        )
        .await;
        assert_eq!(status, 200, "{orgs}");
        assert_eq!(orgs, json!([{"name": "Acme", "uuid": org}]));
        let (status, _) = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/automations", server.url),
            Some(access),
            None,
        )
        .await;
        assert_eq!(status, 200);
        // ...but never an automation's.
        let (status, body) = call(
            &client,
            Method::POST,
            &format!("{}/api/v1/runtime/kickoff", server.url),
            Some(access),
            Some(json!({})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("wrong_token_kind")),
            "{body}"
        );
        // A forged token (payload swapped) is refused.
        let mut parts: Vec<&str> = access.split('.').collect();
        let forged_payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"sub":"user:x"}"#,
        );
        parts[1] = &forged_payload;
        let (status, _) = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/orgs", server.url),
            Some(&parts.join(".")),
            None,
        )
        .await;
        assert_eq!(status, 401);

        // Approval, sign-in and issuance are audited; the secrets are not.
        let (_, page) = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/audit?limit=500", server.url),
            Some(BOOTSTRAP_TOKEN),
            None,
        )
        .await;
        let text = page.to_string();
        for kind in [
            "auth.login",
            "device.approved",
            "device.token_issued",
            "auth.password_set",
        ] {
            assert!(text.contains(kind), "{kind} missing: {text}");
        }
        for secret in [access, device_code, PASSWORD, user_code] {
            assert!(!text.contains(secret), "audit log leaks a secret");
        }
        assert!(!server.stderr().contains(device_code) && !server.stderr().contains(access));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_and_expired_codes_answer_access_denied_and_expired_token() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server =
            Server::start(&local_options(&backend, dir.path()).env("KEYWARD_DEVICE_CODE_TTL", "3"));
        let client = server.client();

        let denied = start_device_flow(&server).await;
        let expiring = start_device_flow(&server).await;
        let (status, body) = call(
            &client,
            Method::POST,
            &format!("{}/api/v1/device/deny", server.url),
            Some(BOOTSTRAP_TOKEN),
            Some(json!({"user_code": denied["user_code"]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = poll(&server, denied["device_code"].as_str().unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("access_denied")),
            "{body}"
        );

        server.advance_clock(4);
        let (status, body) = poll(&server, expiring["device_code"].as_str().unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("expired_token")),
            "{body}"
        );
        // An expired code can no longer be approved either.
        let (status, body) = call(
            &client,
            Method::POST,
            &format!("{}/api/v1/device/approve", server.url),
            Some(BOOTSTRAP_TOKEN),
            Some(json!({"user_code": expiring["user_code"]})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_user_code")),
            "{body}"
        );
        // A client this server does not know is refused up front.
        let (status, body) = form(
            &server,
            "/oauth2/device_authorization",
            &[("client_id", "someone-else")],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client")),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_user_codes_are_rate_limited_per_person() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    let client = server.client();
    let started = start_device_flow(&server).await;
    let approve = |code: String| {
        let client = client.clone();
        let url = format!("{}/api/v1/device/approve", server.url);
        async move {
            call(
                &client,
                Method::POST,
                &url,
                Some(BOOTSTRAP_TOKEN),
                Some(json!({"user_code": code})),
            )
            .await
        }
    };
    for wrong in [
        "BCDF-GHJK",
        "ZZZZ-ZZZZ",
        "not a code",
        "BBBB-BBBB",
        "CCCC-CCCC",
    ] {
        if Some(wrong) == started["user_code"].as_str() {
            continue;
        }
        let (status, body) = approve(wrong.to_owned()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_user_code")),
            "{body}"
        );
    }
    // Past the limit even the right code is refused for the window, so guessing stops here.
    let (status, body) = approve(started["user_code"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_attempts")),
        "{body}"
    );
    let (status, body) = poll(&server, started["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "authorization_pending", "{status} {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_codes_live_in_the_database_shared_by_replicas() {
    install_crypto();
    let Some(backend) = fresh_postgres().await else {
        eprintln!("skipped: KEYWARD_TEST_DATABASE_URL is not set (scripts/test sets it)");
        return;
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port_a, port_b) = (free_port(), free_port());
    // Both replicas stand behind one public address (here: A's), as behind a load balancer.
    let public = format!("https://127.0.0.1:{port_a}");
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a_opts = local_options(&backend, dir_a.path())
        .env("KEYWARD_MASTER_KEY", master)
        .env("KEYWARD_PUBLIC_URL", &public);
    a_opts.listen = format!("127.0.0.1:{port_a}");
    let mut b_opts = local_options(&backend, dir_b.path())
        .env("KEYWARD_MASTER_KEY", master)
        .env("KEYWARD_PUBLIC_URL", &public);
    b_opts.listen = format!("127.0.0.1:{port_b}");
    b_opts.bootstrap = false;
    let a = Server::start(&a_opts);
    let mut b = Server::start(&b_opts);
    b.url = format!("https://127.0.0.1:{port_b}");

    let started = start_device_flow(&a).await;
    let device_code = started["device_code"].as_str().unwrap();
    let (status, body) = poll(&b, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending")),
        "{body}"
    );
    let (status, body) = call(
        &b.client(),
        Method::POST,
        &format!("{}/api/v1/device/approve", b.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"user_code": started["user_code"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    a.advance_clock(1);
    b.advance_clock(1);
    let (status, issued) = poll(&a, device_code).await;
    assert_eq!(status, 200, "{issued}");
    let access = issued["access_token"].as_str().unwrap();
    // The token A issued is a bearer on B; the code A handed out is spent on B too.
    let (status, orgs) = call(
        &b.client(),
        Method::GET,
        &format!("{}/crewai_plus/api/v1/me/organizations", b.url),
        Some(access),
        None,
    )
    .await;
    assert_eq!(status, 200, "{orgs}");
    assert_eq!(orgs[0]["name"], "Acme");
    let (status, body) = poll(&b, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

/// Moves `server`'s clock to the start of its next minute, so that the requests of the next
/// seconds fall in one of the fixed one-minute windows the server counts starts in.
pub fn advance_to_next_minute(server: &Server) {
    let offset: i64 = std::fs::read_to_string(&server.clock_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let now = keyward_server::clock::now() + offset;
    server.advance_clock(60 - now.rem_euclid(60));
}

#[tokio::test(flavor = "multi_thread")]
async fn starting_device_logins_is_rate_limited_per_client_address() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    // All 61 starts must fall in one window.
    advance_to_next_minute(&server);
    for _ in 0..60 {
        start_device_flow(&server).await;
    }
    let (status, body) = form(
        &server,
        "/oauth2/device_authorization",
        &[("client_id", "keyward-cli")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
}
