//! Operations (issue 19): the Prometheus metrics move with real traffic (a static-credential
//! resolution against cloudsim with a retry, a kickoff, a mint), `/metrics` is readable only as
//! `KEYWARD_METRICS_ACCESS` says, every request has an id that its log line and error body
//! carry, and `/readyz` follows the database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{Sim, SimWorld, world};
use crate::common::{self, BOOTSTRAP_TOKEN, Backend, Server, ServerOptions, call};

const SCRAPE_TOKEN: &str = "scrape-token-for-tests-0123456789";

async fn scrape(server: &Server, bearer: Option<&str>) -> (u16, String) {
    let mut req = server.client().get(format!("{}/metrics", server.url));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The sum of the samples of `name` whose labels include every `want` pair.
fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric == name
                && want
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

fn present(text: &str, name: &str) -> bool {
    text.lines()
        .any(|l| !l.starts_with('#') && l.starts_with(name))
}

async fn kickoff(server: &Server, token: &str) -> Value {
    let (status, plan) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/runtime/kickoff", server.url),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    plan
}

#[tokio::test(flavor = "multi_thread")]
async fn each_named_metric_is_present_and_moves_with_kickoffs_mints_and_cloud_reads() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("server-endpoints.json");
    let options = ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    let org = common::org_id(&server);
    let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
    std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
    let (_, token) = common::automation_with_token(&server, "crew").await;
    let (_, broken_token) = common::automation_with_token(&server, "broken-crew").await;
    common::create_as_owner(
        &server,
        "/secret-providers",
        json!({"name": "aws-static",
        "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
        "static": {"access_key_id": "AKIAKEYWARDSTATIC001",
                   "secret_access_key": "static-reader-secret-access-key-0123456789"}}),
    )
    .await;
    common::create_as_owner(&server, "/environment-variables",
        json!({"key": "OPENAI_API_KEY", "credential": "aws-static", "secret_name": "openai-api-key"})).await;
    // No default GCP credential exists: this variable cannot resolve at kickoff.
    common::create_as_owner(
        &server,
        "/environment-variables",
        json!({"key": "NO_CREDENTIAL", "source": "provider_default",
               "provider": "gcp_secret_manager", "secret_name": "some-secret"}),
    )
    .await;

    let (status, before) = scrape(&server, None).await;
    assert_eq!(status, 200, "loopback is the default: {before}");

    // One transient failure of Secrets Manager: the static resolution at assignment retries.
    sim.fault(json!({"endpoint": "aws.secretsmanager", "count": 1, "status": 503}))
        .await;
    let (ok, _, err) = common::admin_cli(&server, &["env", "assign", "crew", "OPENAI_API_KEY"]);
    assert!(ok, "{err}");
    let (ok, _, err) =
        common::admin_cli(&server, &["env", "assign", "broken-crew", "NO_CREDENTIAL"]);
    assert!(ok, "{err}");
    let plan = kickoff(&server, &token).await;
    assert_eq!(plan["env"][0]["value"], "aws-value-1", "{plan}");
    let broken = kickoff(&server, &broken_token).await;
    assert!(
        broken.to_string().contains("no credential found"),
        "{broken}"
    );
    let (status, minted) = common::mint(&server, &token, "sts.amazonaws.com").await;
    assert_eq!(status, 200, "{minted}");
    // A path with an id: its series is the route template, never the path.
    let (status, _) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/automations/crew", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, after) = scrape(&server, None).await;
    assert_eq!(status, 200);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (was, now) = (sample(&before, name, labels), sample(&after, name, labels));
        assert!(
            now > was,
            "{name}{labels:?} did not move ({was} → {now}):\n{after}"
        );
    };
    let kickoff_route = [
        ("method", "POST"),
        ("route", "/api/v1/runtime/kickoff"),
        ("status", "200"),
    ];
    moved("keyward_http_requests_total", &kickoff_route);
    moved(
        "keyward_http_request_duration_seconds_count",
        &kickoff_route,
    );
    moved(
        "keyward_http_requests_total",
        &[("route", "/api/v1/automations/{id}"), ("status", "200")],
    );
    assert!(
        !after.contains("route=\"/api/v1/automations/crew\""),
        "a raw path became a label:\n{after}"
    );
    // The buckets are ours (sub-millisecond to 30 s), not the exporter's summary default.
    assert!(
        after.contains("keyward_http_request_duration_seconds_bucket{")
            && after.contains("le=\"0.0005\"")
            && after.contains("le=\"30\""),
        "{after}"
    );
    moved(
        "keyward_tokens_minted_total",
        &[("audience", "sts.amazonaws.com")],
    );
    moved("keyward_kickoffs_total", &[("result", "ok")]);
    moved("keyward_kickoffs_total", &[("result", "partial")]);
    moved(
        "keyward_kickoff_failures_total",
        &[("cause", "unresolved_value")],
    );
    moved(
        "keyward_secret_resolutions_total",
        &[("cloud", "aws"), ("result", "ok")],
    );
    moved(
        "keyward_cloud_call_duration_seconds_count",
        &[("cloud", "aws"), ("operation", "aws_get_secret_value")],
    );
    moved(
        "keyward_cloud_call_retries_total",
        &[("cloud", "aws"), ("operation", "aws_get_secret_value")],
    );
    // Gauges of the present: the pool has connections, the generated key has an age.
    assert!(
        present(&after, "keyward_db_pool_connections{state=\"idle\"}"),
        "{after}"
    );
    assert!(
        present(&after, "keyward_db_pool_connections{state=\"in_use\"}"),
        "{after}"
    );
    assert!(
        sample(&after, "keyward_db_pool_max_connections", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("keyward_signing_key_age_seconds{kid=\"")
                && l.contains("state=\"active\"")),
        "{after}"
    );
    let age = sample(
        &after,
        "keyward_signing_key_age_seconds",
        &[("state", "active")],
    );
    server.advance_clock(3600);
    let (_, later) = scrape(&server, None).await;
    let aged = sample(
        &later,
        "keyward_signing_key_age_seconds",
        &[("state", "active")],
    );
    assert!(
        aged >= age + 3600.0,
        "key age refreshed at scrape: {age} → {aged}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_access_is_a_setting_loopback_token_or_public() {
    common::install_crypto();
    // token: refused without or with a wrong bearer, served with the right one.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, dir.path())
            .env("KEYWARD_METRICS_ACCESS", "token")
            .env("KEYWARD_METRICS_TOKEN", SCRAPE_TOKEN),
    );
    let (status, body) = scrape(&server, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("metrics_token_required") && body.contains("KEYWARD_METRICS_TOKEN"),
        "{body}"
    );
    let (status, body) = scrape(&server, Some("scrape-token-for-tests-012345678X")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("metrics_token_invalid"), "{body}");
    assert!(!body.contains(SCRAPE_TOKEN), "{body}");
    let (status, body) = scrape(&server, Some(SCRAPE_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("keyward_http_requests_total"), "{body}");
    assert!(!server.stderr().contains(SCRAPE_TOKEN));
    drop(server);

    // loopback behind a trusted proxy: the forwarded client decides, not the proxy's address.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, dir.path()).arg("--trusted-proxies=127.0.0.1"),
    );
    let res = server
        .client()
        .get(format!("{}/metrics", server.url))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "metrics_loopback_only", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("KEYWARD_METRICS_ACCESS"),
        "{body}"
    );
    let (status, _) = scrape(&server, None).await;
    assert_eq!(status, 200, "a loopback client without a forwarded address");
    drop(server);

    // public, and settings that cannot work are refused at startup, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, dir.path()).arg("--metrics-access=public"),
    );
    let res = server
        .client()
        .get(format!("{}/metrics", server.url))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    drop(server);
    for (access, token, expect) in [
        ("token", None, "needs KEYWARD_METRICS_TOKEN"),
        ("token", Some("short"), "at least 24"),
        ("everyone", None, "loopback, token, public"),
        ("loopback", Some(SCRAPE_TOKEN), "--metrics-access token"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut options =
            ServerOptions::new(&Backend::Sqlite, dir.path()).env("KEYWARD_METRICS_ACCESS", access);
        if let Some(token) = token {
            options = options.env("KEYWARD_METRICS_TOKEN", token);
        }
        let failure = Server::try_start(&options)
            .err()
            .expect("refused at startup");
        assert!(
            failure.stderr.contains(expect),
            "{access}: {}",
            failure.stderr
        );
        if let Some(token) = token {
            assert!(!failure.stderr.contains(token), "{}", failure.stderr);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_in_the_header_the_error_body_and_the_json_log() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, dir.path()).env("KEYWARD_LOG_FORMAT", "json"),
    );
    let client = server.client();
    let get = |id: Option<&'static str>| {
        let mut req = client
            .get(format!("{}/api/v1/automations/no-such-crew", server.url))
            .bearer_auth(BOOTSTRAP_TOKEN);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };

    // A well-formed incoming id is kept.
    let res = get(Some("trace-4f2a.9:x_1")).await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.headers()["x-request-id"], "trace-4f2a.9:x_1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-4f2a.9:x_1", "{body}");
    assert_eq!(body["error"], "not_found", "{body}");

    // None, or one that could forge a log line: a fresh UUID, the same in header and body.
    for id in [None, Some("evil\"id with spaces")] {
        let res = get(id).await.unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&header).is_ok(), "{header}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["request_id"], header.as_str(), "{body}");
    }
    // Successes carry the header; their bodies are untouched.
    let res = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    // A 405 from the router's own fallback gets the id too.
    let res = client
        .delete(format!("{}/healthz", server.url))
        .header("x-request-id", "method-probe")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(
        res.json::<Value>().await.unwrap()["request_id"],
        "method-probe"
    );

    // Every line is JSON; each request's line names its id, route template and status.
    let mut log = String::new();
    for _ in 0..50 {
        log = server.stderr();
        if log.contains("method-probe") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = entries
        .iter()
        .filter(|e| e["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 5, "{log}");
    for entry in &requests {
        assert!(entry["fields"]["request_id"].is_string(), "{entry}");
        assert_eq!(
            entry["span"]["request_id"], entry["fields"]["request_id"],
            "{entry}"
        );
    }
    let kept = requests
        .iter()
        .find(|e| e["fields"]["request_id"] == "trace-4f2a.9:x_1")
        .unwrap_or_else(|| panic!("no request line with the incoming id:\n{log}"));
    assert_eq!(kept["fields"]["status"], 404, "{kept}");
    assert_eq!(kept["span"]["route"], "/api/v1/automations/{id}", "{kept}");
    assert!(!log.contains("evil\""), "{log}");
}

/// A TCP relay to PostgreSQL the test can cut (existing connections dropped, new ones closed at
/// once) and restore.
struct Relay {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    live: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let live = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (gate, conns) = (open.clone(), live.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task);
            }
        });
        Relay { addr, open, live }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn readyz(server: &Server) -> (u16, Value) {
    call(
        &server.client(),
        Method::GET,
        &format!("{}/readyz", server.url),
        None,
        None,
    )
    .await
}

async fn wait_ready(server: &Server, want: u16) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let started = std::time::Instant::now();
        let (status, body) = readyz(server).await;
        // A probe must get its answer well within its own timeout, even with the database gone.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        if status == want {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {status} (wanted {want}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_postgres_is_unreachable_and_200_when_it_returns() {
    common::install_crypto();
    let Some(Backend::Postgres { url }) = common::fresh_postgres().await else {
        eprintln!("skipped: KEYWARD_TEST_DATABASE_URL is not set");
        return;
    };
    let mut relayed = url::Url::parse(&url).unwrap();
    let host = relayed.host_str().unwrap().to_owned();
    let port = relayed.port().unwrap_or(5432);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.addr.port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(
        &Backend::Postgres {
            url: relayed.to_string(),
        },
        dir.path(),
    ));
    let body = wait_ready(&server, 200).await;
    assert_eq!(body["database"], "ok", "{body}");

    relay.cut();
    let body = wait_ready(&server, 503).await;
    assert_eq!(body["database"], "unreachable", "{body}");
    assert_eq!(body["status"], "not_ready", "{body}");
    // Liveness is not readiness: the process is fine.
    let (status, _) = call(
        &server.client(),
        Method::GET,
        &format!("{}/healthz", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);

    relay.restore();
    let body = wait_ready(&server, 200).await;
    assert_eq!(body["database"], "ok", "{body}");
}
