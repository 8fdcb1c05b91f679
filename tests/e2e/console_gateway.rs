//! The console's gateway pages (issue 18) against the real `keyward serve` and `keyward
//! gateway`: a request held for approval is released by the Approve form and refused (with the
//! comment) by the Deny form; a Member, and the requester themself, are refused on the approve
//! POST by the server; a recorded session opens in the replay view with the masked marker and
//! never the secret; the routes page shows each stored route with its validation result.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::{Fixture, fixture};
use crate::common::*;
use crate::console_common::member_session;
use crate::console_common::{csrf_of, get, post};
use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream, write_routes};
use crate::people::{set_owner_password, sign_in};

const POLICY: &str = "@id(\"reads\")\npermit(principal, action, resource) when { context.method == \"GET\" };\n\
@id(\"writes-need-approval\")\n@approval(\"required\")\npermit(principal, action, resource) when { context.method == \"POST\" };\n";

/// Shaped like an AWS access key id: the recording masks it.
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

/// A gateway for the fixture's organization: GETs pass, POSTs need approval (held 20 s).
fn gateway(f: &Fixture, upstream: &Upstream, dir: &std::path::Path) -> GatewayProcess {
    approval_gateway(&f.options, &f.server, upstream, dir)
}

/// A gateway for organization Acme of `server`: route `tools` to `upstream`, GETs pass, POSTs
/// need approval (held 20 s). The console's browser suite uses it too.
pub(crate) fn approval_gateway(
    options: &ServerOptions,
    server: &Server,
    upstream: &Upstream,
    dir: &std::path::Path,
) -> GatewayProcess {
    std::fs::write(dir.join("policy.cedar"), POLICY).unwrap();
    let config = write_routes(
        dir,
        &format!(
            r#"organization = "Acme"

[[route]]
name = "tools"
path_prefix = "/tools"
upstream = "{}"
policies = ["policy.cedar"]
approval_timeout = "20s"
"#,
            upstream.url()
        ),
    );
    GatewayProcess::start(&GatewayOptions::new(options, server, &config))
}

/// Sends a POST through the gateway as `token` in the background (held until decided).
fn held(
    gw: &GatewayProcess,
    token: &str,
    body: Value,
    session: Option<&str>,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let client = gw.client(false);
    let url = format!("{}/tools/run", gw.url);
    let (token, session) = (token.to_owned(), session.map(str::to_owned));
    tokio::spawn(async move {
        let mut request = client
            .post(url)
            .bearer_auth(token)
            .header(
                "X-Keyward-Approval-Reason",
                "ship the hotfix for incident 7",
            )
            .json(&body);
        if let Some(s) = session {
            request = request.header("x-keyward-session", s);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

/// A POST that asks for approval without waiting (`Prefer: respond-async`): the request's id.
async fn async_request(gw: &GatewayProcess, token: &str, reason: &str) -> String {
    let response = gw
        .client(false)
        .post(format!("{}/tools/run", gw.url))
        .bearer_auth(token)
        .header("X-Keyward-Approval-Reason", reason)
        .header("Prefer", "respond-async")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["approval_state"], "pending", "{body}");
    body["approval_id"].as_str().unwrap().to_owned()
}

/// A POST without a reason: 200 under a grant, 428 when approval is needed.
async fn plain_post(gw: &GatewayProcess, token: &str) -> u16 {
    gw.client(false)
        .post(format!("{}/tools/run", gw.url))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until the console's pending list shows a request and returns its id.
async fn pending_on_page(server: &Server, cookie: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = get(server, cookie, "/console/approvals").await;
        assert_eq!(list.status, 200, "{}", list.body);
        if let Some(id) = list
            .body
            .split("id=\"approval-open-")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            return (id.to_owned(), list.body);
        }
        assert!(
            Instant::now() < deadline,
            "no pending request: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_in_the_console_releases_a_held_request_and_denying_refuses_it() {
    let f = fixture(&Backend::Sqlite, None).await;
    set_owner_password(&f.server).await;
    let owner = sign_in(&f.server, "/console").await;
    let bob = member_session(&f.server).await;
    let alice = f.member("alice@acme.example", "member").await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&f, &upstream, dir.path());
    let server = &f.server;

    // Held: the pending list shows who asked, the reason and the seconds left.
    let request = held(&gw, &alice, json!({"tool": "deploy"}), None);
    let (id, list) = pending_on_page(server, &owner).await;
    assert!(list.contains("alice@acme.example"), "{list}");
    assert!(list.contains("ship the hotfix for incident 7"), "{list}");
    let left: i64 = list
        .split("data-countdown=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no countdown in {list}"));
    assert!((1..=20).contains(&left), "{left}");

    // A Member sees the request but the server refuses their approval; it stays pending.
    let shown = get(server, &bob, &format!("/console/approvals/{id}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let refused = post(
        server,
        &bob,
        &format!("/console/approvals/{id}/approve"),
        &[("csrf", &csrf_of(&shown.body)), ("grant", "once")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("gateway"), "{}", refused.body);
    assert!(!request.is_finished(), "the member's refusal released it");

    // Approved from the detail page's form: released, and the upstream gets it.
    let detail = get(server, &owner, &format!("/console/approvals/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    for needle in [
        "id=\"approval-approve\"",
        "id=\"approval-deny\"",
        "id=\"approval-grant\"",
    ] {
        assert!(detail.body.contains(needle), "{needle}: {}", detail.body);
    }
    let csrf = csrf_of(&detail.body);
    let approved = post(
        server,
        &owner,
        &format!("/console/approvals/{id}/approve"),
        &[("csrf", &csrf), ("grant", "once"), ("comment", "go ahead")],
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(
        approved.location,
        format!("/console/approvals/{id}?done=approved")
    );
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the approved request was not released")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.seen.lock().unwrap().len(), 1);
    let after = get(server, &owner, &approved.location).await;
    assert!(after.body.contains("go ahead"), "{}", after.body);

    // Deny without a comment is refused (the request stays pending); with one, it is denied and
    // the held request gets 403 carrying the comment.
    let request = held(&gw, &alice, json!({"tool": "deploy"}), None);
    let (id, _) = pending_on_page(server, &owner).await;
    let blank = post(
        server,
        &owner,
        &format!("/console/approvals/{id}/deny"),
        &[("csrf", &csrf), ("comment", "  ")],
    )
    .await;
    assert_eq!(blank.status, 400, "{}", blank.body);
    assert!(
        blank.body.contains("a comment is required"),
        "{}",
        blank.body
    );
    let denied = post(
        server,
        &owner,
        &format!("/console/approvals/{id}/deny"),
        &[("csrf", &csrf), ("comment", "not during the freeze")],
    )
    .await;
    assert_eq!(denied.status, 303, "{}", denied.body);
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the denied request was not answered")
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["approval_state"], "denied", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not during the freeze"),
        "{body}"
    );
    assert_eq!(upstream.seen.lock().unwrap().len(), 1);

    // A time-boxed grant from the form lets such requests through without asking; revoked
    // from the console, the next one needs approval again.
    let asked = async_request(&gw, &alice, "nightly deploys").await;
    let boxed = post(
        server,
        &owner,
        &format!("/console/approvals/{asked}/approve"),
        &[("csrf", &csrf), ("grant", "timebox"), ("duration", "30m")],
    )
    .await;
    assert_eq!(boxed.status, 303, "{}", boxed.body);
    let granted = get(server, &owner, &format!("/console/approvals/{asked}")).await;
    assert!(
        granted.body.contains("id=\"grant-countdown\""),
        "{}",
        granted.body
    );
    assert!(
        granted.body.contains("id=\"approval-revoke\""),
        "{}",
        granted.body
    );
    assert_eq!(plain_post(&gw, &alice).await, 200);
    let revoked = post(
        server,
        &owner,
        &format!("/console/approvals/{asked}/revoke"),
        &[("csrf", &csrf), ("comment", "incident 42")],
    )
    .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(plain_post(&gw, &alice).await, 428);

    // The owner's own request: the owner cannot approve it from the console either.
    let (status, body) = call(
        &gw.client(false),
        Method::POST,
        &format!("{}/tools/run", gw.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 428, "{body}");
    let own = async_request(&gw, BOOTSTRAP_TOKEN, "mine").await;
    let mine = post(
        server,
        &owner,
        &format!("/console/approvals/{own}/approve"),
        &[("csrf", &csrf), ("grant", "once")],
    )
    .await;
    assert_eq!(mine.status, 403, "{}", mine.body);
    assert!(mine.body.contains("you made this request"), "{}", mine.body);

    // Without the session's CSRF token the form is refused before anything is decided.
    let forged = post(
        server,
        &owner,
        &format!("/console/approvals/{own}/deny"),
        &[("comment", "forged")],
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let (_, still) = f
        .api(
            BOOTSTRAP_TOKEN,
            Method::GET,
            &format!("/approvals/{own}"),
            None,
        )
        .await;
    assert_eq!(still["state"], "pending", "{still}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_opens_in_the_replay_view_masked() {
    let f = fixture(&Backend::Sqlite, None).await;
    set_owner_password(&f.server).await;
    let owner = sign_in(&f.server, "/console").await;
    let alice = f.member("alice@acme.example", "member").await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&f, &upstream, dir.path());
    let server = &f.server;

    // The routes page shows the stored route with its validation result and policy ids.
    let route = json!({"name": "openai", "path_prefix": "/openai",
        "upstream": upstream.url(), "policy": "@id(\"allow-all\")\npermit(principal, action, resource);"});
    let created = create_as_owner(server, "/gateway/routes", route).await;
    assert_eq!(created["name"], "openai", "{created}");
    let routes = get(server, &owner, "/console/gateway").await;
    assert_eq!(routes.status, 200, "{}", routes.body);
    assert!(
        routes.body.contains("id=\"route-openai-status\">valid<"),
        "{}",
        routes.body
    );
    assert!(routes.body.contains("allow-all"), "{}", routes.body);

    // Alice's held request carries a session id; the echoed key is recorded masked both ways.
    let request = held(
        &gw,
        &alice,
        json!({"tool": "deploy", "key": KEY_ID}),
        Some("console-7"),
    );
    let (id, _) = pending_on_page(server, &owner).await;
    let detail = get(server, &owner, &format!("/console/approvals/{id}")).await;
    let approved = post(
        server,
        &owner,
        &format!("/console/approvals/{id}/approve"),
        &[("csrf", &csrf_of(&detail.body)), ("grant", "once")],
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let (status, body) = request.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_string().contains(KEY_ID),
        "the route itself does not mask: {body}"
    );

    // Listed (searchable by route), then the replay view: masked marker, never the key or the
    // caller's token, and the recording verifies against the audit log.
    let deadline = Instant::now() + Duration::from_secs(20);
    let replay = loop {
        let list = get(server, &owner, "/console/sessions?route=tools").await;
        assert_eq!(list.status, 200, "{}", list.body);
        if list.body.contains("id=\"session-open-console-7\"") {
            let replay = get(server, &owner, "/console/sessions/console-7").await;
            if replay.body.contains("Verified:") {
                break replay;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the session never verified: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert!(
        replay.body.contains("[MASKED:aws_access_key_id]"),
        "{}",
        replay.body
    );
    assert!(
        !replay.body.contains(KEY_ID),
        "the replay shows the key: {}",
        replay.body
    );
    assert!(!replay.body.contains(&alice), "the replay shows a token");
    assert!(replay.body.contains("POST /tools/run"), "{}", replay.body);
    assert!(replay.body.contains("rec-response"), "{}", replay.body);
    let none = get(server, &owner, "/console/sessions?route=nothing-here").await;
    assert!(none.body.contains("id=\"no-sessions\""), "{}", none.body);
    let bad = get(server, &owner, "/console/sessions?since=yesterday").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("since"), "{}", bad.body);
}
