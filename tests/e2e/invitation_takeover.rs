//! Security review C1, H1 and H2: an invitation never sets or checks an existing account's
//! password, and inviting obeys the same "may assign this role" rule as adding a member.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::people::{PASSWORD, browser, decide_on_page, local_options, poll, start_device_flow};

const ATTACKER_PASSWORD: &str = "the attacker's chosen password";

fn encode(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

/// POSTs a console form, with a session cookie when given; returns status, the session cookie
/// if one was set, the Location and the body.
pub async fn post_form(
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, Option<String>, String, String) {
    let mut req = browser(server)
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(fields));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.ends_with('='));
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, set_cookie, location, res.text().await.unwrap())
}

async fn api(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    org: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .client()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(token);
    if let Some(org) = org {
        req = req.header("X-Keyward-Organization-Id", org);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An invitation's secret, created by `token` in `org`.
async fn invite(
    server: &Server,
    token: &str,
    org: Option<&str>,
    email: &str,
    role: &str,
) -> String {
    let (status, body) = api(
        server,
        Method::POST,
        "/api/v1/invitations",
        token,
        org,
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let link = body["invitation_url"].as_str().unwrap();
    link.split_once("#token=").unwrap().1.to_owned()
}

/// A new person (invited by the bootstrap owner with `role`) with a console session and a CLI
/// access token from the device flow.
async fn new_person(server: &Server, email: &str, role: &str) -> (String, String) {
    let token = invite(server, BOOTSTRAP_TOKEN, None, email, role).await;
    let password = format!("{email} has a long password");
    let (status, cookie, _, body) = post_form(
        server,
        "/invite",
        None,
        &[("token", &token), ("password", &password)],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let cookie = cookie.expect("a new account is signed in");
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
    (cookie, issued["access_token"].as_str().unwrap().to_owned())
}

/// The owner's stored passwords and sessions, counted by deleting them (the test's last step).
async fn wipe_owner_credentials(options: &ServerOptions) -> (u64, u64) {
    let owner = "(SELECT id FROM users WHERE email = 'owner@acme.example')";
    let passwords = exec_sql(
        options,
        &format!("DELETE FROM local_credentials WHERE user_id IN {owner}"),
    )
    .await;
    let sessions = exec_sql(
        options,
        &format!("DELETE FROM web_sessions WHERE user_id IN {owner}"),
    )
    .await;
    (passwords, sessions)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_cannot_give_an_existing_account_a_password_or_a_session() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = local_options(&backend, dir.path());
        let server = Server::start(&options);

        // The review's attack: any person creates an organization, invites the bootstrap owner
        // (who has no password) and accepts with a password of their choice.
        let (mallory_cookie, mallory) = new_person(&server, "mallory@evil.example", "member").await;
        let (status, evil) = api(
            &server,
            Method::POST,
            "/api/v1/orgs",
            &mallory,
            None,
            Some(json!({"name": "Evil"})),
        )
        .await;
        assert_eq!(status, 201, "{evil}");
        let evil = evil["uuid"].as_str().unwrap().to_owned();
        let link = invite(
            &server,
            &mallory,
            Some(&evil),
            "owner@acme.example",
            "owner",
        )
        .await;

        let (status, cookie, _, body) = post_form(
            &server,
            "/invite",
            None,
            &[("token", &link), ("password", ATTACKER_PASSWORD)],
        )
        .await;
        assert_eq!((status, &cookie), (403, &None), "{body}");
        assert!(body.contains("already exists") && body.contains("/login?next=%2Finvite"));
        // Signed in as the attacker is no better.
        let (status, cookie, _, body) = post_form(
            &server,
            "/invite",
            Some(&mallory_cookie),
            &[("token", &link), ("password", ATTACKER_PASSWORD)],
        )
        .await;
        assert_eq!((status, &cookie), (403, &None), "{body}");

        // The chosen password does not sign the owner in, so no session can approve a device
        // login for them.
        let (status, cookie, _, _) = post_form(
            &server,
            "/login",
            None,
            &[
                ("email", "owner@acme.example"),
                ("password", ATTACKER_PASSWORD),
            ],
        )
        .await;
        assert_eq!((status, cookie), (403, None));
        let started = start_device_flow(&server).await;
        let page = browser(&server)
            .get(format!(
                "{}/device?user_code={}",
                server.url,
                started["user_code"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 303, "no session, no approval");
        let (status, _) = poll(&server, started["device_code"].as_str().unwrap()).await;
        assert_eq!(status, 400);

        // The same for an account that has a password: it stays the owner's own.
        let (status, body) = api(
            &server,
            Method::PUT,
            "/api/v1/me/password",
            BOOTSTRAP_TOKEN,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(status, 204, "{body}");
        for password in [ATTACKER_PASSWORD, PASSWORD] {
            let (status, cookie, _, body) = post_form(
                &server,
                "/invite",
                None,
                &[("token", &link), ("password", password)],
            )
            .await;
            assert_eq!((status, &cookie), (403, &None), "{body}");
        }
        let (status, cookie, _, _) = post_form(
            &server,
            "/login",
            None,
            &[
                ("email", "owner@acme.example"),
                ("password", ATTACKER_PASSWORD),
            ],
        )
        .await;
        assert_eq!((status, cookie), (403, None));

        // The owner, signed in, can still accept the (unspent) invitation: only the membership
        // is added, and their session goes on unchanged.
        let (status, owner_cookie, _, body) = post_form(
            &server,
            "/login",
            None,
            &[
                ("email", "owner@acme.example"),
                ("password", PASSWORD),
                ("next", "/invite"),
            ],
        )
        .await;
        assert_eq!(status, 303, "{body}");
        let owner_cookie = owner_cookie.unwrap();
        let page = browser(&server)
            .get(format!("{}/invite", server.url))
            .header("cookie", &owner_cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Join as owner@acme.example"), "{page}");
        assert!(
            page.contains("sessionStorage"),
            "the token survives sign-in"
        );
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        // Without the form token (another site's form) nothing happens.
        let (status, _, _, _) =
            post_form(&server, "/invite", Some(&owner_cookie), &[("token", &link)]).await;
        assert_eq!(status, 403);
        let (status, cookie, location, body) = post_form(
            &server,
            "/invite",
            Some(&owner_cookie),
            &[("token", &link), ("csrf", &csrf)],
        )
        .await;
        assert_eq!(
            (status, cookie, location.as_str()),
            (303, None, "/device"),
            "{body}"
        );
        let (status, orgs) = api(
            &server,
            Method::GET,
            "/api/v1/orgs",
            BOOTSTRAP_TOKEN,
            None,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(orgs.as_array().unwrap().len(), 2, "{orgs}");

        // Before the owner set one, the stored password was never the attacker's; now exactly
        // the owner's one password and the one session they started exist.
        assert_eq!(wipe_owner_credentials(&options).await, (1, 1));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_to_a_passwordless_account_leaves_it_passwordless() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = local_options(&backend, dir.path());
        let server = Server::start(&options);
        let (_, mallory) = new_person(&server, "mallory@evil.example", "member").await;
        let (_, evil) = api(
            &server,
            Method::POST,
            "/api/v1/orgs",
            &mallory,
            None,
            Some(json!({"name": "Evil"})),
        )
        .await;
        let evil = evil["uuid"].as_str().unwrap().to_owned();
        let link = invite(
            &server,
            &mallory,
            Some(&evil),
            "Owner@Acme.example",
            "owner",
        )
        .await;
        for _ in 0..3 {
            let (status, cookie, _, body) = post_form(
                &server,
                "/invite",
                None,
                &[("token", &link), ("password", ATTACKER_PASSWORD)],
            )
            .await;
            assert_eq!((status, &cookie), (403, &None), "{body}");
        }
        assert_eq!(
            wipe_owner_credentials(&options).await,
            (0, 0),
            "no password and no session for the owner"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_is_no_password_oracle_for_an_existing_account() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    let (status, _) = api(
        &server,
        Method::PUT,
        "/api/v1/me/password",
        BOOTSTRAP_TOKEN,
        None,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 204);
    let link = invite(
        &server,
        BOOTSTRAP_TOKEN,
        None,
        "owner@acme.example",
        "member",
    )
    .await;
    let mut answers = Vec::new();
    for i in 0..15 {
        let password = if i % 5 == 4 {
            PASSWORD.to_owned()
        } else {
            format!("wrong guess number {i}")
        };
        let (status, cookie, _, body) = post_form(
            &server,
            "/invite",
            None,
            &[("token", &link), ("password", &password)],
        )
        .await;
        assert_eq!(cookie, None, "never a session");
        answers.push((status, body));
    }
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "right and wrong passwords get the same answer: {answers:?}"
    );
    assert_eq!(answers[0].0, 403);
    // Nothing was counted against the account either: its owner signs in at once.
    let (status, cookie, _, _) = post_form(
        &server,
        "/login",
        None,
        &[("email", "owner@acme.example"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(status, 303);
    assert!(cookie.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn inviting_grants_only_roles_the_inviter_may_assign() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&local_options(&backend, dir.path()));
        let (status, body) = api(
            &server,
            Method::POST,
            "/api/v1/roles",
            BOOTSTRAP_TOKEN,
            None,
            Some(json!({"name": "recruiter", "grants": {"invitations": "manage"}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (_, recruiter) = new_person(&server, "rita@acme.example", "recruiter").await;
        let invite_as = |role: &'static str| {
            let recruiter = recruiter.clone();
            let server = &server;
            async move {
                api(
                    server,
                    Method::POST,
                    "/api/v1/invitations",
                    &recruiter,
                    None,
                    Some(json!({"email": "accomplice@evil.example", "role": role})),
                )
                .await
            }
        };
        // The review's attack: a recruiter invites an address of their own as owner.
        let (status, body) = invite_as("owner").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("role_escalation")),
            "{body}"
        );
        // A custom role the recruiter holds: allowed, custom roles work in invitations.
        let (status, body) = invite_as("recruiter").await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["role"], "recruiter");
        let (status, body) = invite_as("no-such-role").await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], "role");
        assert!(
            body["message"].as_str().unwrap().contains("no-such-role"),
            "{body}"
        );
        // The owner may still invite an owner.
        invite(
            &server,
            BOOTSTRAP_TOKEN,
            None,
            "co-owner@acme.example",
            "owner",
        )
        .await;
    }
}
