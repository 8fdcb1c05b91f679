//! Just-in-time approval through `keyward gateway` (issue 17, acceptance a): a request that a
//! permitting policy marks `@approval("required")` needs a reason (428), is held until a person
//! decides with the `keyward approval` CLI from another process (released within a second, on
//! SQLite and PostgreSQL, and on either of two gateway replicas on PostgreSQL), is refused when
//! denied or undecided (`expired`), and a time-boxed grant lets repeated requests through until
//! it expires or is revoked. Every transition is in the audit log, which verifies.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::{Fixture, approval_events, audit_verifies, fixture};
use crate::common::*;
use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream, write_routes};

const POLICY: &str = "@id(\"reads\")\npermit(principal, action, resource) when { context.method == \"GET\" };\n\
@id(\"writes-need-approval\")\n@approval(\"required\")\npermit(principal, action, resource) when { context.method == \"POST\" };\n";

fn gateway(f: &Fixture, upstream: &Upstream, dir: &std::path::Path) -> GatewayProcess {
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
approval_timeout = "3s"
"#,
            upstream.url()
        ),
    );
    let mut options = GatewayOptions::new(&f.options, &f.server, &config);
    // The grant's time box is checked on the gateway's clock: the test moves it with the server's.
    options.env.insert(
        "KEYWARD_TEST_CLOCK_FILE".into(),
        f.options.clock_file().display().to_string(),
    );
    GatewayProcess::start(&options)
}

fn hits(upstream: &Upstream) -> usize {
    upstream.seen.lock().unwrap().len()
}

/// A POST through the gateway as `token`, with `reason` and extra headers.
async fn post(
    gw: &GatewayProcess,
    token: &str,
    reason: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, Value, Instant) {
    let mut request = gw
        .client(false)
        .request(Method::POST, format!("{}/tools/run", gw.url))
        .bearer_auth(token)
        .json(&json!({"tool": "deploy"}));
    if let Some(reason) = reason {
        request = request.header("X-Keyward-Approval-Reason", reason);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, Instant::now())
}

/// `keyward approval <args>` as the owner, from another process; `Instant` when it exited.
async fn approval_cli(f: &Fixture, args: &[&str]) -> (bool, String, Instant) {
    let args: Vec<&str> = ["approval"].iter().chain(args).copied().collect();
    let (ok, stdout, stderr) = admin_cli_async(&f.server, &args).await;
    (ok, format!("{stdout}{stderr}"), Instant::now())
}

/// The id of the one pending request (waits for the gateway to have asked).
async fn pending_id(f: &Fixture) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::GET,
                "/approvals?state=pending",
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page.as_array().cloned().unwrap_or_default();
        if let Some(first) = items.first() {
            assert_eq!(items.len(), 1, "{page}");
            return first["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway asked for no approval"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a held request, decides it with the CLI once it is pending, and returns the answer
/// and how long after the CLI exited it came.
async fn held_then(
    f: &Fixture,
    gw: &GatewayProcess,
    token: &str,
    decide: &[&str],
) -> (u16, Value, Duration, String) {
    let (gw_url, ca, token) = (gw.url.clone(), gw.ca_file.clone(), token.to_owned());
    let held = tokio::spawn(async move {
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).unwrap();
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let response = builder
            .build()
            .unwrap()
            .post(format!("{gw_url}/tools/run"))
            .bearer_auth(token)
            .header(
                "X-Keyward-Approval-Reason",
                "ship the hotfix for incident 7",
            )
            .json(&json!({"tool": "deploy"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body, Instant::now())
    });
    let id = pending_id(f).await;
    let mut args = vec![decide[0], id.as_str()];
    args.extend(&decide[1..]);
    let (ok, out, exited) = approval_cli(f, &args).await;
    assert!(ok, "keyward approval {args:?}: {out}");
    let (status, body, answered) = held.await.unwrap();
    (status, body, answered.saturating_duration_since(exited), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_holds_a_request_until_a_person_decides_it_with_the_cli() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let alice = f.member("alice@acme.example", "member").await;
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&f, &upstream, dir.path());
        let name = backend.name();

        // Reads pass without anyone; a write without a reason is refused, naming the header.
        let (status, body) = call(
            &gw.client(false),
            Method::GET,
            &format!("{}/tools/list", gw.url),
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let (status, body, _) = post(&gw, &alice, None, &[]).await;
        assert_eq!(status, 428, "{name}: {body}");
        assert_eq!(body["error"], "reason_required");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("x-keyward-approval-reason")
        );

        // Held, approved with the CLI from another process: through within a second.
        let before = hits(&upstream);
        let (status, body, lag, approved) =
            held_then(&f, &gw, &alice, &["approve", "--comment", "ok"]).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(
            lag < Duration::from_secs(1),
            "{name}: released {lag:?} after the CLI"
        );
        assert_eq!(hits(&upstream), before + 1);

        // Denied: 403 naming the approval and its state; the upstream never sees it.
        let (status, body, lag, denied) = held_then(
            &f,
            &gw,
            &alice,
            &["deny", "--comment", "not during the freeze"],
        )
        .await;
        assert_eq!(status, 403, "{name}: {body}");
        assert_eq!(
            (
                body["approval_id"].as_str(),
                body["approval_state"].as_str()
            ),
            (Some(denied.as_str()), Some("denied"))
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not during the freeze")
        );
        assert!(lag < Duration::from_secs(1), "{name}: denial took {lag:?}");
        assert_eq!(hits(&upstream), before + 1);

        // Nobody decides: 403 `expired` after the route's 3 s.
        let started = Instant::now();
        let (status, body, _) = post(&gw, &alice, Some("rotate the staging keys"), &[]).await;
        assert_eq!(status, 403, "{name}: {body}");
        assert_eq!(body["approval_state"], "expired", "{body}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_secs(8),
            "{waited:?}"
        );

        // Asynchronous: 403 at once with the pending id; a 2-minute time box then lets every
        // such request through without asking, until the clock passes it.
        let (status, body, _) = post(
            &gw,
            &alice,
            Some("nightly deploys"),
            &[("Prefer", "respond-async")],
        )
        .await;
        assert_eq!(
            (status, body["approval_state"].as_str()),
            (403, Some("pending")),
            "{body}"
        );
        let boxed = body["approval_id"].as_str().unwrap().to_owned();
        let (ok, out, _) = approval_cli(
            &f,
            &["approve", &boxed, "--grant", "timebox", "--for", "2m"],
        )
        .await;
        assert!(ok, "{out}");
        for _ in 0..3 {
            let (status, body, _) = post(&gw, &alice, None, &[]).await;
            assert_eq!(status, 200, "{name}: {body}");
        }
        f.server.advance_clock(121);
        let (status, body, _) = post(&gw, &alice, None, &[]).await;
        assert_eq!(
            status, 428,
            "{name}: the grant outlived its time box: {body}"
        );

        // A new time box, revoked: the next request needs approval again at once.
        let (_, body, _) = post(&gw, &alice, Some("again"), &[("Prefer", "respond-async")]).await;
        let revoked = body["approval_id"].as_str().unwrap().to_owned();
        let (ok, out, _) = approval_cli(
            &f,
            &["approve", &revoked, "--grant", "timebox", "--for", "30m"],
        )
        .await;
        assert!(ok, "{out}");
        assert_eq!(post(&gw, &alice, None, &[]).await.0, 200);
        let (ok, out, _) =
            approval_cli(&f, &["revoke", &revoked, "--comment", "incident 42"]).await;
        assert!(ok, "{out}");
        assert_eq!(post(&gw, &alice, None, &[]).await.0, 428);

        // The owner's own request: the owner cannot approve it.
        let (_, body, _) = post(
            &gw,
            BOOTSTRAP_TOKEN,
            Some("mine"),
            &[("Prefer", "respond-async")],
        )
        .await;
        let own = body["approval_id"].as_str().unwrap().to_owned();
        let (ok, out, _) = approval_cli(&f, &["approve", &own]).await;
        assert!(
            !ok,
            "{name}: the requester approved their own request: {out}"
        );

        // Every transition is audited, and the chain verifies.
        let events = approval_events(&f).await;
        for (kind, id) in [
            ("approval.requested", &approved),
            ("approval.approved", &approved),
            ("approval.executed", &approved),
            ("approval.denied", &denied),
            ("approval.approved", &boxed),
            ("approval.revoked", &revoked),
        ] {
            assert!(
                events.iter().any(|(k, i)| k == kind && i == id),
                "{name}: no {kind} for {id} in {events:?}"
            );
        }
        assert!(
            events.iter().any(|(k, _)| k == "approval.expired"),
            "{events:?}"
        );
        audit_verifies(&f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_of_two_gateway_replicas_on_postgres_is_released_by_a_decision() {
    let Some(backend) = backends()
        .await
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres { .. }))
    else {
        return;
    };
    let f = fixture(&backend, None).await;
    let alice = f.member("alice@acme.example", "member").await;
    let upstream = Upstream::start().await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = gateway(&f, &upstream, one.path());
    let second = gateway(&f, &upstream, two.path());
    for gw in [&first, &second] {
        let (status, body, lag, _) = held_then(&f, gw, &alice, &["approve"]).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            lag < Duration::from_secs(1),
            "released {lag:?} after the CLI"
        );
    }
}

/// The per-caller bound holds under a flood: requests checked at the same moment must not all
/// pass a bound with one slot left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_concurrent_requests_from_one_caller_stops_at_the_bound() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let alice = f.member("alice@acme.example", "member").await;
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let gw = std::sync::Arc::new(gateway(&f, &upstream, dir.path()));
        let bound = keyward_gateway::approval::MAX_PENDING_PER_CALLER as usize;
        let mut tasks = Vec::new();
        for _ in 0..bound + 50 {
            let (gw, alice) = (gw.clone(), alice.clone());
            tasks.push(tokio::spawn(async move {
                post(&gw, &alice, Some("flood"), &[("Prefer", "respond-async")])
                    .await
                    .0
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        let asked = statuses.iter().filter(|s| **s == 403).count();
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(
            (asked, refused),
            (bound, 50),
            "{}: {statuses:?}",
            backend.name()
        );
        let (status, page) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::GET,
                "/approvals?state=pending&limit=500",
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page.as_array().map(Vec::len),
            Some(bound),
            "{}",
            backend.name()
        );
        assert_eq!(hits(&upstream), 0);
    }
}
