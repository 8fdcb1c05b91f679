//! `keyward gateway` end to end: the real binary beside a real `keyward serve` (the caller is the
//! bootstrap owner's personal access token), real test upstreams. Acceptance e (502 naming the
//! upstream, 504 within the timeout, a disconnect closing the upstream), c (SSE spacing over
//! HTTP/1.1 and HTTP/2), b (a policy change on disk applies while an older stream completes;
//! a bad file is refused with file:line:column), f (10,000 requests → 10,000 audit events,
//! `keyward audit verify`), metrics, healthz and `keyward gateway check`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, BOOTSTRAP_TOKEN, Backend, Server, ServerOptions, call};
use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream, closed_port, write_routes};

const ALLOW: &str = "@id(\"allow-all\")\npermit(principal, action, resource);\n";
const DENY: &str = "@id(\"deny-all\")\nforbid(principal, action, resource);\n";

/// One route `echo` under `/echo` to `upstream`, its policy in `policy.cedar` beside the file.
fn route_file(dir: &std::path::Path, upstream: &str, policy: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("policy.cedar"), policy).unwrap();
    write_routes(
        dir,
        &format!(
            r#"organization = "Acme"

[[route]]
name = "echo"
path_prefix = "/echo"
upstream = "{upstream}"
policies = ["policy.cedar"]
connect_timeout = "2s"
timeout = "1s"
"#
        ),
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    routes_dir: std::path::PathBuf,
    options: ServerOptions,
    platform: Server,
    gateway: GatewayProcess,
}

async fn setup(backend: &Backend, upstream: &str, policy: &str) -> Setup {
    setup_with(backend, upstream, policy, &[]).await
}

async fn setup_with(
    backend: &Backend,
    upstream: &str,
    policy: &str,
    env: &[(&str, &str)],
) -> Setup {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let routes_dir = dir.path().join("routes");
    std::fs::create_dir_all(&routes_dir).unwrap();
    let options = ServerOptions::new(backend, &data);
    let platform = Server::start(&options);
    let config = route_file(&routes_dir, upstream, policy);
    let mut gateway_options = GatewayOptions::new(&options, &platform, &config);
    for (k, v) in env {
        gateway_options.env.insert((*k).to_owned(), (*v).to_owned());
    }
    let gateway = GatewayProcess::start(&gateway_options);
    Setup {
        _dir: dir,
        routes_dir,
        options,
        platform,
        gateway,
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    call(
        client,
        reqwest::Method::GET,
        url,
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await
}

#[tokio::test]
async fn gateway_names_a_refusing_upstream_and_times_out_a_slow_one() {
    let port = closed_port();
    let s = setup(
        &Backend::Sqlite,
        &format!("http://127.0.0.1:{port}/v1"),
        ALLOW,
    )
    .await;
    let client = s.gateway.client(false);
    let (status, body) = get(&client, &format!("{}/echo/x", s.gateway.url)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "bad_gateway");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{body}"
    );

    // No token: 401 before the upstream is involved, and the token is never echoed.
    let (status, body) = call(
        &client,
        reqwest::Method::GET,
        &format!("{}/echo/x", s.gateway.url),
        Some("kwp_not-a-real-token-0123456789abcdef0123"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert!(!body.to_string().contains("kwp_not-a-real-token"));

    let upstream = Upstream::start().await;
    std::fs::write(
        s.routes_dir.join("routes.toml"),
        std::fs::read_to_string(s.routes_dir.join("routes.toml"))
            .unwrap()
            .replace(&format!("http://127.0.0.1:{port}/v1"), &upstream.url()),
    )
    .unwrap();
    // The file change is picked up within a poll (generation 2 replaces the first).
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.gateway.healthz().await["generation"] != 2 {
        assert!(Instant::now() < deadline, "the new upstream was not loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let (status, body) = get(&client, &format!("{}/echo/slow", s.gateway.url)).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "gateway_timeout");
    // The route's timeout is 1 s; the upstream would answer after 5 s.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn gateway_strips_caller_credentials_and_a_disconnect_closes_the_upstream() {
    let upstream = Upstream::start().await;
    let s = setup(&Backend::Sqlite, &upstream.url(), ALLOW).await;
    let client = s.gateway.client(true);
    let response = client
        .post(format!("{}/echo/chat?x=1", s.gateway.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .header("x-api-key", "caller-key")
        .header("cookie", "a=b")
        .body("{\"model\":\"m\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = upstream.last();
    assert_eq!(seen.path, "/v1/chat?x=1");
    assert_eq!(seen.body, b"{\"model\":\"m\"}");
    assert_eq!(seen.headers["host"], upstream.addr.to_string());
    for header in ["authorization", "x-api-key", "cookie"] {
        assert!(
            !seen.headers.contains_key(header),
            "{header} reached the upstream"
        );
    }

    for http1_only in [true, false] {
        upstream
            .closed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let client = s.gateway.client(http1_only);
        let mut response = client
            .get(format!("{}/echo/endless", s.gateway.url))
            .bearer_auth(BOOTSTRAP_TOKEN)
            .send()
            .await
            .unwrap();
        assert!(response.chunk().await.unwrap().is_some());
        drop(response);
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !upstream.closed.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the upstream kept streaming after the caller left"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads an SSE response; returns the arrival time of each complete event.
async fn sse_arrivals(mut response: reqwest::Response) -> (Vec<Instant>, String) {
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while arrivals.len() < text.matches("\n\n").count() {
            arrivals.push(Instant::now());
        }
    }
    (arrivals, text)
}

#[tokio::test]
async fn gateway_streams_sse_at_the_upstreams_spacing_over_http1_and_http2() {
    let upstream = Upstream::start().await;
    let s = setup(&Backend::Sqlite, &upstream.url(), ALLOW).await;
    for (http1_only, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let response = s
            .gateway
            .client(http1_only)
            .get(format!("{}/echo/sse", s.gateway.url))
            .bearer_auth(BOOTSTRAP_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version);
        let (arrivals, text) = sse_arrivals(response).await;
        assert_eq!(arrivals.len(), 20, "{text}");
        for pair in arrivals.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap > Duration::from_millis(100) && gap < Duration::from_millis(400),
                "{version:?}: events {gap:?} apart; sent 200 ms apart"
            );
        }
    }
}

#[tokio::test]
async fn gateway_reload_applies_a_policy_change_refuses_a_bad_file_and_keeps_streams() {
    let upstream = Upstream::start().await;
    let s = setup(&Backend::Sqlite, &upstream.url(), ALLOW).await;
    let client = s.gateway.client(false);
    assert_eq!(s.gateway.healthz().await["generation"], 1);

    // A stream that starts before the change runs on the routes it started with.
    let stream = client
        .get(format!("{}/echo/sse", s.gateway.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let reading = tokio::spawn(sse_arrivals(stream));
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(s.routes_dir.join("policy.cedar"), DENY).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = get(&client, &format!("{}/echo/x", s.gateway.url)).await;
        if status == 403 {
            assert_eq!(body["error"], "forbidden");
            assert!(!body["policy_ids"].as_array().unwrap().is_empty(), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the policy change did not apply within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (arrivals, text) = reading.await.unwrap();
    assert_eq!(arrivals.len(), 20, "the older stream was cut: {text}");
    assert_eq!(s.gateway.healthz().await["generation"], 2);

    // A typo is refused with its place, and the previous routes keep serving.
    std::fs::write(
        s.routes_dir.join("routes.toml"),
        format!(
            "organization = \"Acme\"\n\n[[route]]\nname = \"echo\"\npath_prefx = \"/echo\"\nupstream = \"{}\"\n",
            upstream.url()
        ),
    )
    .unwrap();
    let line = s
        .gateway
        .wait_for_log("gateway configuration refused", Duration::from_secs(5))
        .await;
    assert!(line.contains("routes.toml:5:"), "{line}");
    let (status, _) = get(&client, &format!("{}/echo/x", s.gateway.url)).await;
    assert_eq!(status, 403);
    assert_eq!(s.gateway.healthz().await["generation"], 2);
    let metrics = s.gateway.metrics().await;
    assert!(
        metrics.contains("keyward_gateway_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn gateway_audits_ten_thousand_requests_and_the_chain_verifies() {
    let upstream = Upstream::start().await;
    for backend in common::backends().await {
        // The audit chain under load; recording (a segment per request) has its own tests.
        let s = setup_with(
            &backend,
            &upstream.url(),
            ALLOW,
            &[("KEYWARD_RECORDINGS", "off")],
        )
        .await;
        let client = s.gateway.client(false);
        let url = format!("{}/echo/x", s.gateway.url);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let response = client
                        .get(&url)
                        .bearer_auth(BOOTSTRAP_TOKEN)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Events are written off the hot path: wait for the last batch.
        let platform = s.platform.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        let events = loop {
            let mut events = Vec::new();
            let mut after = 0;
            loop {
                let (status, page) = call(
                    &platform,
                    reqwest::Method::GET,
                    &format!(
                        "{}/api/v1/audit?type=gateway.request&limit=1000&after={after}",
                        s.platform.url
                    ),
                    Some(BOOTSTRAP_TOKEN),
                    None,
                )
                .await;
                assert_eq!(status, 200, "{page}");
                events.extend(page["events"].as_array().unwrap().iter().cloned());
                match page["next_after"].as_i64() {
                    Some(next) => after = next,
                    None => break,
                }
            }
            if events.len() >= 10_000 || Instant::now() > deadline {
                break events;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(events.len(), 10_000, "{}", backend.name());
        let org = common::org_id(&s.platform);
        for event in &events {
            // The route's organization (the file names "Acme"), the person's subject.
            assert_eq!(event["org_id"], org.as_str(), "{event}");
            assert!(
                event["actor"].as_str().unwrap().starts_with("user:"),
                "{event}"
            );
            assert_eq!(event["data"]["principal_kind"], "pat");
            assert_eq!(event["data"]["status"], 200);
            assert_eq!(event["data"]["upstream_status"], 200);
            assert_eq!(event["data"]["decision"], "allow");
            assert_eq!(event["data"]["route"], "echo");
            assert!(
                !event["data"]["policy_ids"].as_array().unwrap().is_empty(),
                "{event}"
            );
            assert!(!event.to_string().contains(BOOTSTRAP_TOKEN));
        }
        let (ok, out, err) = common::keyward_cli(&s.options, &["audit", "verify"]);
        assert!(ok, "{}: audit verify: {out}{err}", backend.name());
    }
}

#[tokio::test]
async fn gateway_reports_metrics_and_health_on_the_admin_listener() {
    let upstream = Upstream::start().await;
    let s = setup(&Backend::Sqlite, &upstream.url(), ALLOW).await;
    let client = s.gateway.client(false);
    for _ in 0..3 {
        let (status, _) = get(&client, &format!("{}/echo/x", s.gateway.url)).await;
        assert_eq!(status, 200);
    }
    let (status, body) = get(&client, &format!("{}/nowhere", s.gateway.url)).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("no_route")));
    let health = s.gateway.healthz().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["generation"], 1);
    let (status, ready) = s.gateway.readyz().await;
    assert_eq!(
        (status, ready["status"].as_str(), ready["database"].as_str()),
        (200, Some("ready"), Some("ok")),
        "{ready}"
    );
    assert_eq!(ready["routes"], health["routes"], "{ready}");
    let metrics = s.gateway.metrics().await;
    for needle in [
        "keyward_gateway_requests_total{route=\"echo\",decision=\"allow\",status=\"200\"} 3",
        "keyward_gateway_request_duration_seconds_bucket{route=\"echo\"",
        "keyward_gateway_config_reloads_total{result=\"ok\"} 1",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn gateway_check_validates_a_route_file_and_names_the_place_of_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let good = route_file(dir.path(), "http://127.0.0.1:9/v1", ALLOW);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["gateway", "check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok: 1 routes");

    std::fs::write(
        dir.path().join("policy.cedar"),
        "permit(principal, action, resource)\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["gateway", "check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("policy.cedar:"), "{stderr}");
}

#[tokio::test]
async fn gateway_sighup_reloads_and_sigterm_lets_a_running_stream_finish() {
    let upstream = Upstream::start().await;
    let mut s = setup(&Backend::Sqlite, &upstream.url(), ALLOW).await;
    // SIGHUP re-reads at once, even when nothing changed: a new generation.
    s.gateway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(3);
    while s.gateway.healthz().await["generation"] != 2 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = s.gateway.client(true);
    let stream = client
        .get(format!("{}/echo/sse", s.gateway.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let reading = tokio::spawn(sse_arrivals(stream));
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.gateway.signal("TERM");
    // The running stream completes although shutdown has begun.
    let (arrivals, text) = reading.await.unwrap();
    assert_eq!(
        arrivals.len(),
        20,
        "the stream was cut by the shutdown: {text}"
    );
    let status = s.gateway.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.gateway.stderr());
    // Its audit event was written before the process ended.
    let platform = s.platform.client();
    let (_, page) = call(
        &platform,
        reqwest::Method::GET,
        &format!("{}/api/v1/audit?type=gateway.request", s.platform.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    let events = page["events"].as_array().unwrap();
    assert!(
        events.iter().any(
            |e| e["data"]["path"] == "/echo/sse" && e["data"]["bytes_out"].as_u64() > Some(200)
        ),
        "{page}"
    );
}

/// Without `--config` the routes are the database's (`/api/v1/gateway/routes`), and a change
/// through the API reaches the running gateway within its 2 s poll. Needs the store's
/// `all_gateway_routes` wired into the gateway (`StoreRoutes` in crates/gateway/src/lib.rs).
#[tokio::test]
async fn gateway_without_a_route_file_serves_the_stored_routes_and_follows_changes() {
    let upstream = Upstream::start().await;
    for backend in common::backends().await {
        common::install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let platform = Server::start(&options);
        let route = |policy: &str| {
            serde_json::json!({
                "name": "stored",
                "path_prefix": "/stored",
                "upstream": upstream.url(),
                "policy": policy,
            })
        };
        common::create_as_owner(
            &platform,
            "/gateway/routes",
            route("permit(principal, action, resource);"),
        )
        .await;
        let mut gateway_options =
            GatewayOptions::new(&options, &platform, std::path::Path::new("unused"));
        gateway_options.config = None;
        let gateway = GatewayProcess::start(&gateway_options);
        let client = gateway.client(false);
        let (status, body) = get(&client, &format!("{}/stored/x", gateway.url)).await;
        assert_eq!(status, 200, "{}: {body}", backend.name());
        assert_eq!(upstream.last().path, "/v1/x");

        let (status, body) = call(
            &platform.client(),
            reqwest::Method::PUT,
            &format!("{}/api/v1/gateway/routes/stored", platform.url),
            Some(BOOTSTRAP_TOKEN),
            Some(route("forbid(principal, action, resource);")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            let (status, _) = get(&client, &format!("{}/stored/x", gateway.url)).await;
            if status == 403 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the stored change did not reach the gateway within 6 s",
                backend.name()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(gateway.healthz().await["generation"], 2);
    }
}

/// An HTTP/2 request the gateway refuses before reading its body can still finish sending it and
/// reads the refusal: the refusal waits for the rest of the body (up to 64 KiB, a second). Before,
/// the answer and an RST_STREAM overtook the body, and curl exited 92 with nothing printed now and
/// then on the README's `premium` call (a JSON body answered 428 without being read).
#[tokio::test]
async fn a_refused_http2_request_finishes_sending_its_body_and_reads_the_refusal() {
    let upstream = Upstream::start().await;
    let s = setup_with(
        &Backend::Sqlite,
        &upstream.url(),
        ALLOW,
        &[("KEYWARD_GATEWAY_HTTP", "true")],
    )
    .await;
    let authority = s
        .gateway
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // HTTP/2 with prior knowledge, as curl speaks it to a TLS listener after ALPN.
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // No token: refused (401) before anything reads the body, which comes late.
    let request = http::Request::post(format!("http://{authority}/echo/x"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, mut send) = h2.send_request(request, false).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    send.send_data(bytes::Bytes::from_static(br#"{"model":"o1-pro"}"#), true)
        .expect("the gateway reset the stream before the caller finished its request");
    let response = response.await.expect("the refusal's head");
    assert_eq!(response.status(), 401);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the refusal's body, not a reset stream");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    let answer: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(answer["error"], "unauthenticated", "{answer}");
}
