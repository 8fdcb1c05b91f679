//! The web console (`/console`) against the real binary: the strict CSP and the other headers
//! on every console response, CSRF tokens bound to the session, server-side role checks on
//! pages and actions, tokens shown once, the audit page, and the session's idle timeout.

use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::common::*;
use crate::console_common::member_session;
use crate::people::{browser, local_options, set_owner_password, sign_in};
use crate::people_local::form_body;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |l| l.to_str().unwrap())
    }
}

async fn get(server: &Server, cookie: Option<&str>, path: &str) -> Answer {
    let mut req = browser(server).get(format!("{}{path}", server.url));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

async fn post(server: &Server, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
    let res = browser(server)
        .post(format!("{}{path}", server.url))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields))
        .send()
        .await
        .unwrap();
    Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        .to_owned()
}

fn assert_console_headers(a: &Answer, what: &str) {
    assert_eq!(a.headers["content-security-policy"], CSP, "{what}");
    assert_eq!(a.headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(a.headers["referrer-policy"], "no-referrer", "{what}");
}

/// A server with the owner's password set, and the owner's console session.
async fn owner_console(dir: &std::path::Path) -> (Server, String) {
    let server = Server::start(&local_options(&Backend::Sqlite, dir));
    set_owner_password(&server).await;
    let cookie = sign_in(&server, "/console").await;
    (server, cookie)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_console_page_carries_the_strict_headers() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;

    // `/` goes to the console when signed in; otherwise it is what it was (no such route).
    let root = get(&server, Some(&cookie), "/").await;
    assert_eq!((root.status, root.location()), (303, "/console"));
    assert_eq!(get(&server, None, "/").await.status, 404);

    let home = get(&server, Some(&cookie), "/console").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("owner@acme.example") && home.body.contains("Acme"));
    assert!(!home.body.contains("<script>") && !home.body.contains("style="));
    let css = home
        .body
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    for path in [
        "/console",
        "/console/members",
        "/console/tokens",
        "/console/audit",
        "/console/audit?action=auth.login&since=2020-01-01",
        "/login",
    ] {
        let page = get(&server, Some(&cookie), path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_console_headers(&page, path);
        assert_eq!(page.headers["cache-control"], "no-store", "{path}");
    }
    let asset = get(&server, None, &css).await;
    assert_eq!(asset.status, 200);
    assert_console_headers(&asset, &css);
    assert!(
        asset.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        asset.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        get(&server, None, "/console/assets/other.css").await.status,
        404
    );

    // Refusals come in the same frame and headers.
    let refused = post(&server, &cookie, "/console/tokens", &[("name", "x")]).await;
    assert_console_headers(&refused, "refused POST");

    // Not signed in: to the sign-in page, and back here afterwards.
    let away = get(&server, None, "/console/members").await;
    assert_eq!(away.status, 303);
    assert_eq!(away.location(), "/login?next=%2Fconsole%2Fmembers");
    assert_console_headers(&away, "redirect");
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_this_sessions_csrf_token_are_refused() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, owner) = owner_console(dir.path()).await;
    let bob = member_session(&server).await;
    let bobs_token = csrf_of(&get(&server, Some(&bob), "/console/tokens").await.body);
    let owners_token = csrf_of(&get(&server, Some(&owner), "/console/tokens").await.body);
    assert_ne!(bobs_token, owners_token);

    let missing = post(&server, &owner, "/console/tokens", &[("name", "ci")]).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(missing.body.contains("no CSRF token"), "{}", missing.body);
    let foreign = post(
        &server,
        &owner,
        "/console/tokens",
        &[("csrf", &bobs_token), ("name", "ci")],
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert!(foreign.body.contains("another session"), "{}", foreign.body);
    let switch = post(
        &server,
        &owner,
        "/console/org",
        &[("csrf", "forged"), ("org", "x")],
    )
    .await;
    assert_eq!(switch.status, 403);
    // Nothing was created by the refused forms.
    let list = get(&server, Some(&owner), "/console/tokens").await;
    assert!(!list.body.contains(">ci</td>"), "{}", list.body);
    // With its own token the form goes through.
    let made = post(
        &server,
        &owner,
        "/console/tokens",
        &[
            ("csrf", &owners_token),
            ("name", "ci"),
            ("expires_days", "7"),
        ],
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_is_refused_what_its_role_does_not_grant() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, owner) = owner_console(dir.path()).await;
    let bob = member_session(&server).await;
    let page = get(&server, Some(&bob), "/console/members").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.body.contains("id=\"invite-form\""),
        "no invite form for a Member"
    );
    let csrf = csrf_of(&page.body);
    // Member paths take a user id or an email.
    let owner_id = "owner@acme.example";

    // The forms are not shown, and posting them anyway is refused by the server.
    for (path, fields) in [
        (
            "/console/members/invite".to_owned(),
            vec![("email", "eve@evil.example"), ("role", "owner")],
        ),
        (
            format!("/console/members/{owner_id}/role"),
            vec![("role", "member")],
        ),
        (format!("/console/members/{owner_id}/remove"), vec![]),
    ] {
        let mut fields = fields;
        fields.push(("csrf", &csrf));
        let refused = post(&server, &bob, &path, &fields).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(
            refused.body.contains("does not grant"),
            "{path}: {}",
            refused.body
        );
        assert_console_headers(&refused, &path);
    }
    // The owner still is one, alone.
    let members = get(&server, Some(&owner), "/console/members").await;
    assert!(members.body.contains("id=\"invite-form\""));
    assert_eq!(
        members.body.matches(">owner</td>").count(),
        1,
        "{}",
        members.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_token_is_shown_once_and_never_in_the_list() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;
    let csrf = csrf_of(&get(&server, Some(&cookie), "/console/tokens").await.body);
    let made = post(
        &server,
        &cookie,
        "/console/tokens",
        &[("csrf", &csrf), ("name", "laptop"), ("expires_days", "30")],
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let token = made
        .body
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_owned();
    assert!(token.starts_with("kwp_"), "{token}");
    // It works as the owner's bearer token.
    let (status, _) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/tokens", server.url),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The list names it, and never shows the secret again.
    let list = get(&server, Some(&cookie), "/console/tokens").await;
    assert!(list.body.contains("laptop"));
    assert!(!list.body.contains(&token), "the secret is in the list");
    assert!(!list.body.contains(&token[..token.len() - 4]));
    // The row of the new token (the owner's bootstrap token is listed too).
    let id = list
        .body
        .split("<tr id=\"token-")
        .find(|row| row.contains(">laptop</td>"))
        .and_then(|row| row.split('"').next())
        .unwrap()
        .to_owned();
    let revoked = post(
        &server,
        &cookie,
        &format!("/console/tokens/{id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(
        (revoked.status, revoked.location()),
        (303, "/console/tokens?done=revoked")
    );
    let (status, _) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/tokens", server.url),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 401, "a revoked token stops working");
    let after = get(&server, Some(&cookie), "/console/tokens?done=revoked").await;
    assert!(after.body.contains("revoked") && !after.body.contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_page_filters_and_verifies_the_chain() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;
    let page = get(&server, Some(&cookie), "/console/audit?action=auth.login").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<td data-label=\"Action\">auth.login</td>"),
        "{}",
        page.body
    );
    // Only that action: every row's action is auth.login.
    assert_eq!(
        page.body.matches("data-label=\"Action\">").count(),
        page.body
            .matches("data-label=\"Action\">auth.login</td>")
            .count(),
        "{}",
        page.body
    );
    let none = get(
        &server,
        Some(&cookie),
        "/console/audit?actor=nobody%40acme.example",
    )
    .await;
    assert!(none.body.contains("No events match"), "{}", none.body);
    let bad = get(&server, Some(&cookie), "/console/audit?since=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("2026-01-31"), "{}", bad.body);
    let csrf = csrf_of(&page.body);
    let verified = post(
        &server,
        &cookie,
        "/console/audit/verify",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert!(
        verified.body.contains("Chain verified"),
        "{}",
        verified.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_console_session_ends_and_an_active_one_goes_on() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;
    // Activity every 20 minutes keeps it (the deadline slides past the first 30 minutes).
    for _ in 0..3 {
        server.advance_clock(20 * 60);
        assert_eq!(get(&server, Some(&cookie), "/console").await.status, 200);
    }
    server.advance_clock(31 * 60);
    let gone = get(&server, Some(&cookie), "/console/tokens").await;
    assert_eq!(
        (gone.status, gone.location()),
        (303, "/login?next=%2Fconsole%2Ftokens")
    );
}
