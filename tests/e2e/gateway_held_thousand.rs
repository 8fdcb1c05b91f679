//! Issue 17, acceptance d, through the real processes: 1,000 requests held at once by one
//! `keyward gateway` (ten callers × 100, the per-caller bound; the route's bound is 1,000) are all
//! pending in the API, cost the gateway bounded memory and no thread each, the 1,001st of the
//! route is refused with 429, and one batch approval from the
//! `keyward approval approve <id>...` CLI of another process releases every one of them to the
//! upstream's 200. On SQLite (polling) and PostgreSQL (LISTEN/NOTIFY). Prints the figures.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::{Fixture, fixture};
use crate::common::*;
use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream, write_routes};

const CALLERS: usize = 10;
const PER_CALLER: usize = 100;
const HELD: usize = CALLERS * PER_CALLER;
/// What holding 1,000 requests may add to the gateway's resident memory: 96 KiB each. Measured
/// ≈ 68 KiB (debug build), nearly all of it the request's own HTTPS connection (rustls and hyper
/// buffers); the hold itself is a task and a map entry. The route's bound (1,000) caps the total,
/// so this is the memory the acceptance calls bounded. A leak, or a body buffered per request
/// beyond the inspection limit, breaks it.
const RSS_BOUND_KB: u64 = 96 * 1024;
/// Threads the gateway may start while holding them: the SQLite pool opens up to 8 connections
/// under load, each with its own worker thread (sqlx), and the runtime's blocking pool may add a
/// few; far below one per held request.
const THREAD_BOUND: u64 = 16;

const POLICY: &str = "@id(\"reads\")\npermit(principal, action, resource) when { context.method == \"GET\" };\n\
@id(\"writes-need-approval\")\n@approval(\"required\")\npermit(principal, action, resource) when { context.method == \"POST\" };\n";

/// `VmRSS` (kB) and `Threads` of a process, from /proc.
fn rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("Threads:"))
}

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
approval = "hold"
approval_timeout = "120s"
"#,
            upstream.url()
        ),
    );
    GatewayProcess::start(&GatewayOptions::new(&f.options, &f.server, &config))
}

/// One POST through the gateway as `token` (its own connection: a held request keeps it).
async fn post(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = client
        .post(format!("{url}/tools/run"))
        .bearer_auth(token)
        .header("X-Keyward-Approval-Reason", "nightly batch of deploys")
        .json(&json!({"tool": "deploy"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The pending requests of `email` (at most 100 each, under the API's page cap of 500).
async fn pending_of(f: &Fixture, email: &str) -> Vec<String> {
    let (status, page) = f
        .api(
            BOOTSTRAP_TOKEN,
            Method::GET,
            &format!("/approvals?state=pending&requester={email}&limit=500"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_held_by_the_gateway_all_pass_on_one_batch_approval() {
    for backend in backends().await {
        let name = backend.name();
        let f = fixture(&backend, None).await;
        let mut callers = Vec::new();
        for i in 0..=CALLERS {
            let email = format!("caller{i}@acme.example");
            let token = f.member(&email, "member").await;
            callers.push((email, token));
        }
        // The last one only knocks once the route is full.
        let latecomer = callers.pop().unwrap();
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&f, &upstream, dir.path());
        let pid = gw.child.id();
        // HTTP/1.1: each held request occupies its own connection, the costlier case.
        let client = gw.client(true);

        // Warm: a passing read, so connection pools and caches exist before the baseline.
        for (_, token) in &callers {
            let (status, body) = call(
                &client,
                Method::GET,
                &format!("{}/tools/list", gw.url),
                Some(token),
                None,
            )
            .await;
            assert_eq!(status, 200, "{name}: {body}");
        }
        let (rss_before, threads_before) = rss_and_threads(pid);

        let sent = Instant::now();
        let mut held = Vec::with_capacity(HELD);
        for (_, token) in &callers {
            for _ in 0..PER_CALLER {
                let (client, url, token) = (client.clone(), gw.url.clone(), token.clone());
                held.push(tokio::spawn(async move {
                    let answer = post(&client, &url, &token).await;
                    (answer, Instant::now())
                }));
            }
        }

        // All 1,000 pending, 100 per caller, none answered yet.
        let deadline = Instant::now() + Duration::from_secs(60);
        let ids = loop {
            let mut ids = Vec::with_capacity(HELD);
            for (email, _) in &callers {
                ids.extend(pending_of(&f, email).await);
            }
            if ids.len() == HELD {
                break ids;
            }
            assert!(
                held.iter().all(|h| !h.is_finished()),
                "{name}: a request was answered before any decision"
            );
            assert!(
                Instant::now() < deadline,
                "{name}: only {} of {HELD} requests became pending within 60 s",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let all_pending = sent.elapsed();
        for (email, _) in &callers {
            assert_eq!(pending_of(&f, email).await.len(), PER_CALLER, "{email}");
        }
        let (rss_held, threads_held) = rss_and_threads(pid);

        // The route's bound: one more, from a caller with nothing pending, is refused with 429
        // (the route is counted first, so a caller's 101st would be refused the same way here).
        let (status, body) = post(&client, &gw.url, &latecomer.1).await;
        assert_eq!(status, 429, "{name}: the 1,001st of the route: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("route tools"),
            "{name}: {body}"
        );
        assert!(held.iter().all(|h| !h.is_finished()));
        assert_eq!(
            upstream.seen.lock().unwrap().len(),
            CALLERS,
            "only the reads"
        );

        // One batch from another process: every id on one command line.
        let mut args = vec!["approval", "approve", "--comment", "batch ok", "-o", "json"];
        args.extend(ids.iter().map(String::as_str));
        let started = Instant::now();
        let (ok, out, err) = admin_cli_async(&f.server, &args).await;
        let approved = Instant::now();
        assert!(ok, "{name}: keyward approval approve: {err}");
        let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(listed.len(), HELD);
        assert!(listed.iter().all(|a| a["state"] == "approved"), "{out}");

        let mut last = approved;
        for h in held {
            let ((status, body), at) = tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("a held request was not answered within 30 s of the batch")
                .unwrap();
            assert_eq!(status, 200, "{name}: {body}");
            assert_eq!(
                body["path"], "/v1/run",
                "{name}: the upstream's echo: {body}"
            );
            last = last.max(at);
        }
        let release = last.saturating_duration_since(approved);
        let posts = upstream
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "POST")
            .count();
        assert_eq!(posts, HELD, "{name}: each passed once");
        for (email, _) in &callers {
            assert!(pending_of(&f, email).await.is_empty(), "{email}");
        }
        let (rss_after, threads_after) = rss_and_threads(pid);

        // One line of figures (bench/held.sh collects it): times in ms, memory in kB.
        eprintln!(
            "HELD backend={name} held={HELD} callers={CALLERS} pending_ms={} rss_before_kb={rss_before} \
             rss_held_kb={rss_held} rss_after_kb={rss_after} threads_before={threads_before} \
             threads_held={threads_held} threads_after={threads_after} batch_ms={} release_ms={}",
            all_pending.as_millis(),
            approved.duration_since(started).as_millis(),
            release.as_millis(),
        );
        assert!(
            rss_held < rss_before + RSS_BOUND_KB,
            "{name}: holding {HELD} requests took the gateway from {rss_before} kB to {rss_held} kB \
             (bound: +{RSS_BOUND_KB} kB)"
        );
        assert!(
            threads_held <= threads_before + THREAD_BOUND,
            "{name}: holding {HELD} requests took the gateway from {threads_before} to {threads_held} threads"
        );
        assert!(
            release < Duration::from_secs(10),
            "{name}: the last held request passed {release:?} after the batch"
        );
    }
}
