//! Security review findings L3 and L4 (people part) against the real binary, on SQLite and
//! PostgreSQL: a TOTP code works once, turning TOTP off needs the password and a fresh code, a
//! password change ends the person's other sessions and CLI access tokens, sign-out ends the
//! session for good, and personal access tokens must expire within `KEYWARD_MAX_PAT_TTL`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::people::{
    PASSWORD, browser, decide_on_page, local_options, poll, set_owner_password, sign_in,
    start_device_flow,
};
use crate::people_local::{base32_decode, form_body};

#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 6238 (SHA-1, 30 s, 6 digits) for the step holding `unix`, computed apart from the server.
fn totp_at(secret: &[u8], unix: u64) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = aws_lc_rs::hmac::sign(&key, &(unix / 30).to_be_bytes());
    let d = tag.as_ref();
    let o = (d[19] & 0x0f) as usize;
    let v = u32::from_be_bytes([d[o] & 0x7f, d[o + 1], d[o + 2], d[o + 3]]);
    format!("{:06}", v % 1_000_000)
}

/// Signs the owner in with a TOTP code; returns the status.
async fn sign_in_with_code(server: &Server, code: &str) -> u16 {
    browser(server)
        .post(format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("email", "owner@acme.example"),
            ("password", PASSWORD),
            ("totp", code),
        ]))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn api(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(
        &server.client(),
        method,
        &format!("{}{path}", server.url),
        Some(token),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_totp_code_works_once_and_turning_totp_off_needs_password_and_a_fresh_code() {
    install_crypto();
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&local_options(&backend, dir.path()));
        set_owner_password(&server).await;
        let (status, enabled) = api(
            &server,
            Method::POST,
            "/api/v1/me/totp",
            BOOTSTRAP_TOKEN,
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(status, 201, "{enabled}");
        let secret = base32_decode(enabled["secret"].as_str().unwrap());

        // The replay: the code that just signed in, again within its window.
        let code = totp_at(&secret, unix_now());
        assert_eq!(sign_in_with_code(&server, &code).await, 303, "{name}");
        assert_eq!(
            sign_in_with_code(&server, &code).await,
            403,
            "{name}: a used code is refused"
        );
        // An older step in the window is refused too; the next step is still good.
        let older = totp_at(&secret, unix_now() - 30);
        if older != code {
            assert_eq!(sign_in_with_code(&server, &older).await, 403, "{name}");
        }

        // A bearer token alone does not turn TOTP off.
        let path = "/api/v1/me/totp";
        let (status, body) = api(&server, Method::DELETE, path, BOOTSTRAP_TOKEN, None).await;
        assert!(matches!(status, 400 | 415), "{name}: {status} {body}");
        let next = totp_at(&secret, unix_now() + 30);
        for (attempt, refusal) in [
            (json!({"password": "not the password", "totp": next}), 403),
            (json!({"password": PASSWORD}), 403),
            (json!({"password": PASSWORD, "totp": code}), 403),
            (json!({"password": PASSWORD, "totp": "000000x"}), 403),
        ] {
            let (status, body) = api(
                &server,
                Method::DELETE,
                path,
                BOOTSTRAP_TOKEN,
                Some(attempt.clone()),
            )
            .await;
            assert_eq!(status, refusal, "{name}: {attempt}: {body}");
            assert_eq!(body["error"], "reauthentication_failed", "{body}");
        }
        // TOTP is still on: the password alone does not sign in.
        assert_eq!(sign_in_with_code(&server, "").await, 200, "{name}");
        // Password and a fresh code: off.
        let (status, body) = api(
            &server,
            Method::DELETE,
            path,
            BOOTSTRAP_TOKEN,
            Some(json!({"password": PASSWORD, "totp": next})),
        )
        .await;
        assert_eq!(status, 204, "{name}: {body}");
        assert_eq!(sign_in_with_code(&server, "").await, 303, "{name}");
    }
}

/// Whether the browser holding `cookie` is signed in.
async fn signed_in(server: &Server, cookie: &str) -> bool {
    let body: Value = browser(server)
        .get(format!("{}/auth/session", server.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["signed_in"] == json!(true)
}

/// A CLI access token of the owner through the device flow.
async fn cli_token(server: &Server) -> String {
    let cookie = sign_in(server, "/device").await;
    let started = start_device_flow(server).await;
    let (status, html) = decide_on_page(
        server,
        &cookie,
        started["user_code"].as_str().unwrap(),
        "approve",
    )
    .await;
    assert_eq!(status, 200, "{html}");
    server.advance_clock(1);
    let (status, issued) = poll(server, started["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{issued}");
    issued["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_ends_other_sessions_and_cli_tokens_and_sign_out_ends_its_session() {
    install_crypto();
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&local_options(&backend, dir.path()));
        set_owner_password(&server).await;
        let orgs = "/crewai_plus/api/v1/me/organizations";

        // Sign-out: the cookie is dead on the server, not only cleared in this browser.
        let cookie = sign_in(&server, "/device").await;
        assert!(signed_in(&server, &cookie).await);
        let out = browser(&server)
            .post(format!("{}/logout", server.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(out.status().as_u16(), 303);
        assert!(
            !signed_in(&server, &cookie).await,
            "{name}: replayed cookie"
        );

        // Two browsers and a CLI hold the old password's sign-ins.
        let laptop = sign_in(&server, "/device").await;
        let phone = sign_in(&server, "/device").await;
        let token = cli_token(&server).await;
        assert_eq!(api(&server, Method::GET, orgs, &token, None).await.0, 200);
        server.advance_clock(1);

        let (status, body) = api(
            &server,
            Method::PUT,
            "/api/v1/me/password",
            BOOTSTRAP_TOKEN,
            Some(json!({"password": "a brand new long password", "current_password": PASSWORD})),
        )
        .await;
        assert_eq!(status, 204, "{name}: {body}");
        assert!(!signed_in(&server, &laptop).await, "{name}: laptop session");
        assert!(!signed_in(&server, &phone).await, "{name}: phone session");
        let (status, body) = api(&server, Method::GET, orgs, &token, None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"], "token_revoked", "{body}");
        // Personal access tokens are managed on their own and keep working.
        assert_eq!(
            api(&server, Method::GET, orgs, BOOTSTRAP_TOKEN, None)
                .await
                .0,
            200
        );

        // Signing in again with the new password gives a working CLI token.
        let (status, _) = api(
            &server,
            Method::PUT,
            "/api/v1/me/password",
            BOOTSTRAP_TOKEN,
            Some(json!({"password": PASSWORD, "current_password": "a brand new long password"})),
        )
        .await;
        assert_eq!(status, 204);
        server.advance_clock(1);
        let fresh = cli_token(&server).await;
        let (status, body) = api(&server, Method::GET, orgs, &fresh, None).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_access_tokens_must_expire_within_the_configured_limit() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let create = |body: Value| {
        api(
            &server,
            Method::POST,
            "/api/v1/tokens",
            BOOTSTRAP_TOKEN,
            Some(body),
        )
    };
    // The default: 90 days.
    for body in [
        json!({"name": "forever"}),
        json!({"name": "too long", "expires_in": 90 * 86_400 + 1}),
        json!({"name": "ten years", "expires_in": 10 * 365 * 86_400}),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["field"], "expires_in", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains("7776000 seconds (90 days)")
                && message.contains("KEYWARD_MAX_PAT_TTL"),
            "{message}"
        );
    }
    let (status, answer) = create(json!({"name": "quarter", "expires_in": 90 * 86_400})).await;
    assert_eq!(status, 201, "{answer}");
    drop(server);

    // An operator's own limit.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, dir.path()).env("KEYWARD_MAX_PAT_TTL", "7d"),
    );
    let create = |body: Value| {
        api(
            &server,
            Method::POST,
            "/api/v1/tokens",
            BOOTSTRAP_TOKEN,
            Some(body),
        )
    };
    let (status, answer) = create(json!({"name": "month", "expires_in": 30 * 86_400})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("604800 seconds (7 days)"),
        "{answer}"
    );
    let (status, answer) = create(json!({"name": "week", "expires_in": 7 * 86_400})).await;
    assert_eq!(status, 201, "{answer}");
    // Automation tokens are not personal access tokens: unchanged.
    let (_, _) = automation_with_token(&server, "crew").await;
}

/// Changing a password goes through the re-authentication throttle and the second factor: a
/// stolen bearer token is no unthrottled oracle for the current password, and no way around TOTP.
#[tokio::test(flavor = "multi_thread")]
async fn changing_a_password_is_no_password_oracle_and_needs_the_second_factor() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    set_owner_password(&server).await;
    let change = |current: &'static str, totp: Option<String>| {
        let server = &server;
        async move {
            let mut body =
                json!({"password": "another long password 1", "current_password": current});
            if let Some(code) = totp {
                body["totp"] = json!(code);
            }
            api(
                server,
                Method::PUT,
                "/api/v1/me/password",
                BOOTSTRAP_TOKEN,
                Some(body),
            )
            .await
        }
    };
    let (status, enabled) = api(
        &server,
        Method::POST,
        "/api/v1/me/totp",
        BOOTSTRAP_TOKEN,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{enabled}");
    // The right password without the code is refused.
    let (status, body) = change(PASSWORD, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("current_password_required")),
        "{body}"
    );
    let mut throttled = None;
    for attempt in 0..12 {
        let (status, body) = change("a wrong password guess", None).await;
        if status == 429 {
            throttled = Some(attempt);
            break;
        }
        assert_eq!(status, 403, "{body}");
    }
    assert!(
        throttled.is_some(),
        "wrong current passwords are never throttled"
    );
    // Throttled, even the right password and a fresh code wait.
    let secret = base32_decode(enabled["secret"].as_str().unwrap());
    let (status, _) = change(PASSWORD, Some(totp_at(&secret, unix_now()))).await;
    assert_eq!(status, 429);
}
