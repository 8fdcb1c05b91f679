//! Gateway masking end to end (issue 17, acceptance b): the real `keyward gateway` injects a
//! secrets-manager secret (GCP Secret Manager in cloudsim) into a route with `[route.mask]`; a
//! test upstream streams SSE echoing that secret, a Luhn-valid card number and an AWS secret key,
//! each split across two chunks at every offset. None reaches the client; a 16-digit number that
//! fails Luhn passes unchanged; a JSON response with a JSON path rule still parses; the audit
//! events carry the counts and the metrics name the detectors.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::cloudsim::server_and_sim;
use crate::common::{self, BOOTSTRAP_TOKEN, Backend, ServerOptions, call};
use crate::gateway_common::{GatewayOptions, GatewayProcess, write_routes};
use crate::run::configure;

const TOKEN_ENV: &str = "CREW_AUTOMATION_TOKEN";
const CARD: &str = "4111 1111 1111 1111";
const BAD_LUHN: &str = "4111111111111112";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// `value` split at `at`, kept inside the value (1..len-1).
fn split(value: &str, at: usize) -> (&str, &str) {
    value.split_at(at.clamp(1, value.len() - 1))
}

/// An HTTP/1.1 upstream. `/v1/sse/<k>`: one event in four chunks (a few ms apart), the bearer
/// token it received, the card and the AWS secret key each split at offset `k`. `/v1/json`: a
/// JSON document with a password, an email and the token.
async fn masking_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(buf) = crate::gateway_common::read_request_head(&mut socket).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let token = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().trim_start_matches("Bearer ").to_owned())
                    })
                    .unwrap_or_default();
                if path == "/v1/json" {
                    let body =
                        json!({"user": {"password": "hunter2-pw", "email": "jane@example.com"},
                                      "note": token, "n": 1})
                        .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    return;
                }
                let k: usize = path.rsplit('/').next().unwrap_or("1").parse().unwrap_or(1);
                let (t1, t2) = split(&token, k);
                let (c1, c2) = split(CARD, k);
                let (a1, a2) = split(AWS_SECRET, k);
                let chunks = [
                    format!("data: token {t1}"),
                    format!("{t2} card {c1}"),
                    format!("{c2} aws_secret_access_key={a1}"),
                    format!("{a2} order {BAD_LUHN}\n\n"),
                ];
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                    .await;
                for c in chunks {
                    let framed = format!("{:x}\r\n{c}\r\n", c.len());
                    if socket.write_all(framed.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = socket.flush().await;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    url
}

async fn gateway_events(platform: &common::Server, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = call(
            &platform.client(),
            reqwest::Method::GET,
            &format!(
                "{}/api/v1/audit?type=gateway.request&limit=1000",
                platform.url
            ),
            Some(BOOTSTRAP_TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= want || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn gateway_masking_keeps_split_secrets_cards_and_keys_from_the_client() {
    let (server, token, sim, dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;
    common::create_as_owner(
        &server,
        "/secret-providers",
        json!({"name": "gcp-sm", "provider": "gcp_secret_manager", "auth": "workload_identity",
               "workload_identity_config": "gcp", "project": "keyward-demo"}),
    )
    .await;
    common::create_as_owner(
        &server,
        "/environment-variables",
        json!({"key": "OPENAI_API_KEY", "credential": "gcp-sm", "secret_name": "openai-api-key"}),
    )
    .await;
    let (status, body) = call(
        &server.client(),
        reqwest::Method::PUT,
        &format!(
            "{}/api/v1/automations/crew/environment-variables",
            server.url
        ),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"environment_variables": ["OPENAI_API_KEY"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let secret = sim.endpoints.gcp.as_ref().unwrap().secrets["openai-api-key"].clone();
    assert!(
        secret.len() >= 8,
        "the test needs a secret long enough to split"
    );

    let upstream = masking_upstream().await;
    let org = common::org_id(&server);
    let routes_dir = dir.path().join("routes");
    std::fs::create_dir_all(&routes_dir).unwrap();
    let config = write_routes(
        &routes_dir,
        &format!(
            r#"organization = "{org}"

[[route]]
name = "masked"
path_prefix = "/m"
upstream = "{upstream}"
policy = 'permit(principal, action, resource);'
credential = {{ kind = "secret", automation = "crew", token_env = "{TOKEN_ENV}", env = "OPENAI_API_KEY" }}

[route.mask]
json_paths = ["$.user.password"]
"#
        ),
    );
    let options = ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw"));
    let mut gateway_options = GatewayOptions::new(&options, &server, &config);
    gateway_options.env.insert(TOKEN_ENV.into(), token.clone());
    gateway_options.env.insert(
        "KEYWARD_CLOUD_ENDPOINTS".into(),
        sim.endpoints_path.to_str().unwrap().into(),
    );
    let gateway = GatewayProcess::start(&gateway_options);
    let client = gateway.client(false);

    let longest = secret.len().max(CARD.len()).max(AWS_SECRET.len());
    for k in 1..longest {
        let response = client
            .get(format!("{}/m/sse/{k}", gateway.url))
            .bearer_auth(BOOTSTRAP_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "offset {k}");
        assert!(response.headers().get("content-length").is_none());
        let text = response.text().await.unwrap();
        for leaked in [secret.as_str(), CARD, AWS_SECRET] {
            assert!(!text.contains(leaked), "offset {k}: {text}");
        }
        assert_eq!(
            text,
            format!(
                "data: token [MASKED:secret] card [MASKED:card_number] aws_secret_access_key=[MASKED:aws_secret_access_key] order {BAD_LUHN}\n\n"
            ),
            "offset {k}"
        );
    }

    let response = client
        .get(format!("{}/m/json", gateway.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(&secret) && !text.contains("hunter2"),
        "{text}"
    );
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["user"]["password"], "[MASKED:json_path]");
    assert_eq!(parsed["user"]["email"], "[MASKED:email]");
    assert_eq!(parsed["note"], "[MASKED:secret]");
    assert_eq!(parsed["n"], 1);

    let events = gateway_events(&server, longest).await;
    assert_eq!(events.len(), longest, "one event per request");
    let mut streamed = 0;
    for event in &events {
        assert!(!event.to_string().contains(&secret), "{event}");
        let masked = &event["data"]["masked"];
        if event["data"]["path"] == "/m/json" {
            assert_eq!(
                masked,
                &json!({"json_path": 1, "email": 1, "secret": 1}),
                "{event}"
            );
        } else {
            assert_eq!(
                masked,
                &json!({"secret": 1, "card_number": 1, "aws_secret_access_key": 1}),
                "{event}"
            );
            streamed += 1;
        }
    }
    assert_eq!(streamed, longest - 1);
    let metrics = gateway.metrics().await;
    for detector in [
        "secret",
        "card_number",
        "aws_secret_access_key",
        "json_path",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("keyward_gateway_masked_total")
                    && l.contains(&format!("detector=\"{detector}\""))
                    && l.contains("route=\"masked\"")),
            "{detector}: {metrics}"
        );
    }

    // Masking runs before recording: every request is a recorded session whose head is in its
    // audit event, and no stored record holds what the caller never saw.
    let storage = keyward_recording::Storage::local(options.data_dir.join("sessions"))
        .within(&org.to_string())
        .unwrap();
    for event in &events {
        let session = &event["data"]["session"];
        let id = session["id"].as_str().unwrap_or_else(|| panic!("{event}"));
        assert!(session["head_hash"].is_string(), "{event}");
        let records = keyward_recording::read_session(&storage, id).await.unwrap();
        let stored = serde_json::to_string(&records).unwrap();
        for leaked in [secret.as_str(), CARD, AWS_SECRET, "hunter2"] {
            assert!(!stored.contains(leaked), "session {id} recorded {leaked}");
        }
        assert!(stored.contains("[MASKED:secret]"), "{stored}");
    }
}
