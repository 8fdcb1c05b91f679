//! Security review M5 and L9, newcomer trial B8: sign-in, invitation and setup attempts back off
//! per account and per client address instead of locking accounts; the client address comes
//! from X-Forwarded-For only behind a trusted proxy; every 429 says when to retry; failed setup
//! attempts are limited and audited; typed text that is not an email stays out of the audit log.

use serde_json::json;

use crate::common::*;
use crate::people::{
    PASSWORD, advance_to_next_minute, browser, local_options, set_owner_password, start_device_flow,
};

const OWNER: &str = "owner@acme.example";

/// Status, Retry-After, whether a session cookie was set.
async fn login(
    server: &Server,
    forwarded: Option<&str>,
    email: &str,
    password: &str,
) -> (u16, Option<String>, bool) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    let mut req = browser(server)
        .post(format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let res = req.send().await.unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let cookie = res.headers().contains_key("set-cookie");
    (res.status().as_u16(), retry, cookie)
}

/// Moves every recorded failure `secs` into the past, as if the test had waited that long.
async fn wait_out(options: &ServerOptions, secs: i64) {
    exec_sql(
        options,
        &format!(
            "UPDATE auth_failures SET last_ms = last_ms - {}",
            secs * 1000
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_sign_ins_back_off_exponentially_instead_of_locking_the_account() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = local_options(&backend, dir.path()).env("KEYWARD_LOGIN_BACKOFF_MAX", "4");
        let server = Server::start(&options);
        set_owner_password(&server).await;
        for _ in 0..5 {
            assert_eq!(
                login(&server, None, OWNER, "wrong password!").await,
                (403, None, false)
            );
        }
        // While backing off even the right password is not checked: no oracle, no session.
        let mut waits = Vec::new();
        for _ in 0..4 {
            let (status, retry, cookie) = login(&server, None, OWNER, PASSWORD).await;
            assert_eq!((status, cookie), (429, false));
            waits.push(retry.expect("Retry-After on the 429"));
            wait_out(&options, 100).await;
            assert_eq!(login(&server, None, OWNER, "wrong password!").await.0, 403);
        }
        assert_eq!(
            waits,
            ["1", "2", "4", "4"],
            "doubling, capped at the setting"
        );
        // However long a stranger kept failing, the owner gets in once the capped wait is over.
        wait_out(&options, 4).await;
        let (status, _, cookie) = login(&server, None, OWNER, PASSWORD).await;
        assert_eq!((status, cookie), (303, true));
        // Success forgets the account's failures.
        assert_eq!(login(&server, None, OWNER, "wrong password!").await.0, 403);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spraying_from_one_address_backs_off_whatever_the_email() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = local_options(&backend, dir.path());
        let server = Server::start(&options);
        set_owner_password(&server).await;
        for i in 0..10 {
            let email = format!("person{i}@acme.example");
            assert_eq!(login(&server, None, &email, PASSWORD).await.0, 403);
        }
        let (status, retry, _) = login(&server, None, "person10@acme.example", PASSWORD).await;
        assert_eq!((status, retry.as_deref()), (429, Some("1")));
        // The address backs off for every account, the owner's too, until the wait is over.
        let (status, retry, cookie) = login(&server, None, OWNER, PASSWORD).await;
        assert_eq!((status, cookie), (429, false));
        assert!(retry.is_some());
        wait_out(&options, 100).await;
        assert_eq!(login(&server, None, OWNER, PASSWORD).await.0, 303);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    install_crypto();
    // Not trusted (the default): a spoofed X-Forwarded-For changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    for i in 0..10 {
        let spoofed = format!("198.51.100.{i}");
        let email = format!("p{i}@acme.example");
        assert_eq!(
            login(&server, Some(&spoofed), &email, "x-password-x")
                .await
                .0,
            403
        );
    }
    let (status, retry, _) = login(
        &server,
        Some("198.51.100.99"),
        "q@acme.example",
        "x-password-x",
    )
    .await;
    assert_eq!((status, retry.is_some()), (429, true));
    drop(server);

    // Behind a trusted proxy (here: loopback) each client has its own budget.
    let dir = tempfile::tempdir().unwrap();
    let options = local_options(&Backend::Sqlite, dir.path())
        .env("KEYWARD_TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8");
    let server = Server::start(&options);
    for i in 0..10 {
        let email = format!("p{i}@acme.example");
        let chain = "203.0.113.50, 10.1.1.1";
        assert_eq!(
            login(&server, Some(chain), &email, "x-password-x").await.0,
            403
        );
    }
    // 203.0.113.50 is backing off, whatever it prepends; other clients are not.
    let (status, retry, _) = login(
        &server,
        Some("198.51.100.7, 203.0.113.50"),
        "q@acme.example",
        "x-password-x",
    )
    .await;
    assert_eq!((status, retry.is_some()), (429, true));
    assert_eq!(
        login(
            &server,
            Some("203.0.113.51"),
            "q@acme.example",
            "x-password-x"
        )
        .await
        .0,
        403
    );
    assert_eq!(
        login(&server, None, "q@acme.example", "x-password-x")
            .await
            .0,
        403
    );
    let db = String::from_utf8_lossy(&raw_database(&options).await).into_owned();
    assert!(
        db.contains("203.0.113.50"),
        "failed sign-ins record the client address"
    );

    // Device logins are counted per client too, and their 429 says when to retry.
    advance_to_next_minute(&server);
    let start = |client: &'static str| {
        let req = browser(&server)
            .post(format!("{}/oauth2/device_authorization", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", client)
            .body("client_id=keyward-cli");
        async move { req.send().await.unwrap() }
    };
    for _ in 0..60 {
        assert_eq!(start("198.51.100.1").await.status().as_u16(), 200);
    }
    let refused = start("198.51.100.1").await;
    assert_eq!(refused.status().as_u16(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(start("198.51.100.2").await.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_attempts_are_limited_per_address_and_audited() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions::new(&backend, dir.path());
        options.bootstrap = false;
        let server = Server::start(&options);
        let link = server
            .banner
            .iter()
            .find_map(|l| l.strip_prefix("First login (one-time setup link, valid 24 h): "))
            .expect("setup link printed")
            .to_owned();
        let secret = link.split("#token=").nth(1).unwrap().to_owned();
        let attempt = |token: String| {
            let req = server
                .client()
                .post(format!("{}/api/v1/setup", server.url))
                .json(
                    &json!({"setup_token": token, "org_name": "Acme", "email": "me@acme.example"}),
                );
            async move { req.send().await.unwrap() }
        };
        for i in 0..10 {
            let res = attempt(format!("kws_guess-{i}")).await;
            assert_eq!(res.status().as_u16(), 401);
        }
        let res = attempt("kws_guess-10".into()).await;
        assert_eq!(res.status().as_u16(), 429);
        assert!(res.headers().contains_key("retry-after"));
        // Backing off refuses even the right secret (it is not even looked at).
        let res = attempt(secret.clone()).await;
        assert_eq!(res.status().as_u16(), 429);
        wait_out(&options, 100).await;
        let res = attempt(secret.clone()).await;
        assert_eq!(res.status().as_u16(), 201, "{:?}", res.text().await);

        let db = String::from_utf8_lossy(&raw_database(&options).await).into_owned();
        // A no-op update counts the rows.
        let audited = exec_sql(
            &options,
            "UPDATE audit_events SET kind = kind WHERE kind = 'setup.failed'",
        )
        .await;
        assert_eq!(audited, 10, "each checked guess is audited");
        assert!(!db.contains("kws_guess"), "never the typed token");
        assert!(!server.stderr().contains("kws_guess"));
        assert!(server.stderr().contains("invalid setup token"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_typed_into_the_email_box_stays_out_of_the_audit_log() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = local_options(&backend, dir.path());
        let server = Server::start(&options);
        let typed = "my secret passphrase in the wrong box";
        assert_eq!(login(&server, None, typed, typed).await.0, 403);
        assert_eq!(
            login(&server, None, "Typo@Acme.example", typed).await.0,
            403
        );
        let db = String::from_utf8_lossy(&raw_database(&options).await).into_owned();
        assert!(!db.contains("passphrase"), "the typed text is not stored");
        assert!(db.contains("<not an email>"));
        assert!(
            db.contains("typo@acme.example"),
            "an email is still recorded"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_user_codes_get_a_429_with_retry_after() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    start_device_flow(&server).await;
    let approve = || {
        server
            .client()
            .post(format!("{}/api/v1/device/approve", server.url))
            .bearer_auth(BOOTSTRAP_TOKEN)
            .json(&json!({"user_code": "ZZZZ-ZZZZ"}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(approve().await.unwrap().status().as_u16(), 400);
    }
    let res = approve().await.unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
}
