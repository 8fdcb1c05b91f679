//! Masking of static values through the real gateway (SPEC §9: "the exact values of secrets that
//! Keyward itself resolved for that org"): a variable backed by a static credential (AWS access
//! keys, here against cloudsim) is resolved when it is assigned to an automation, and a
//! gateway started afterwards masks that value wherever an upstream echoes it, in a JSON body
//! and in an SSE stream split across two chunks at every offset, although the route injects no
//! credential of its own. The gateway reads the values at start (then every 30 s), so the
//! assignment comes first and the very first request is already masked.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::cloudsim_env::{Sim, SimWorld, world};
use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions, backends};
use crate::gateway_common::{GatewayOptions, GatewayProcess, write_routes};

/// The value in the simulated AWS Secrets Manager: no built-in detector's shape, so only the
/// exact-value matcher can catch it.
const VALUE: &str = "kwstatic-9f3a1c7e5b2d4f60a8e1c3";
/// A secret set directly on an environment variable (`--secret`), not resolved from a cloud.
const DIRECT: &str = "kwdirect-5d8e2a9c1f7b3e6d0a4c";

/// An HTTP/1.1 upstream echoing [`VALUE`]. `/v1/sse/<k>`: one event split at offset `k` of the
/// value over two chunks (a few ms apart), then one with the value whole. `/v1/json`: a JSON
/// document holding it.
async fn echoing_upstream() -> String {
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
                if path == "/v1/json" {
                    let body = json!({"key": VALUE, "direct": DIRECT, "n": 1}).to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    return;
                }
                let k: usize = path.rsplit('/').next().unwrap_or("1").parse().unwrap_or(1);
                let (v1, v2) = VALUE.split_at(k.clamp(1, VALUE.len() - 1));
                let chunks = [
                    format!("data: {{\"delta\":\"key {v1}"),
                    format!("{v2} end\"}}\n\n"),
                    format!("data: whole {VALUE}\n\n"),
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

async fn get(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .bearer_auth(BOOTSTRAP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_static_value_assigned_to_an_automation_never_leaves_the_gateway() {
    common::install_crypto();
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let endpoints = dir.path().join("server-endpoints.json");
        let options = ServerOptions::new(&backend, &dir.path().join("kw"))
            .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
        let server = Server::start(&options);
        let org = common::org_id(&server);
        let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
        std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
        common::automation_with_token(&server, "crew").await;

        // The static path: AWS access keys read the secret when the variable is assigned.
        sim.admin(
            Method::POST,
            "secrets",
            Some(json!({"cloud": "aws", "name": "openai-api-key", "value": VALUE})),
        )
        .await;
        common::create_as_owner(
            &server,
            "/secret-providers",
            json!({"name": "aws-static",
            "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
            "static": {"access_key_id": "AKIAKEYWARDSTATIC001",
                       "secret_access_key": "static-reader-secret-access-key-0123456789"}}),
        )
        .await;
        common::create_as_owner(
            &server,
            "/environment-variables",
            json!({"key": "OPENAI_API_KEY", "credential": "aws-static", "secret_name": "openai-api-key"}),
        )
        .await;
        common::create_as_owner(
            &server,
            "/environment-variables",
            json!({"key": "DIRECT_TOKEN", "value": DIRECT, "secret": true}),
        )
        .await;
        let (ok, _, err) = common::admin_cli(&server, &["env", "assign", "crew", "OPENAI_API_KEY"]);
        assert!(ok, "{name}: {err}");

        // Only now the gateway: a masking route with no credential of its own.
        let upstream = echoing_upstream().await;
        let routes_dir = dir.path().join("routes");
        std::fs::create_dir_all(&routes_dir).unwrap();
        let config = write_routes(
            &routes_dir,
            &format!(
                r#"organization = "{org}"

[[route]]
name = "echo"
path_prefix = "/e"
upstream = "{upstream}"
policy = 'permit(principal, action, resource);'

[route.mask]
"#
            ),
        );
        let gateway = GatewayProcess::start(&GatewayOptions::new(&options, &server, &config));
        let client = gateway.client(false);

        // The first request after start is masked already: JSON, still valid JSON.
        let text = get(&client, &format!("{}/e/json", gateway.url)).await;
        assert!(
            !text.contains(VALUE) && !text.contains(DIRECT),
            "{name}: {text}"
        );
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({"key": "[MASKED:secret]", "direct": "[MASKED:secret]", "n": 1}),
            "{name}"
        );

        // SSE, the value split across two chunks at every offset.
        for k in 1..VALUE.len() {
            let text = get(&client, &format!("{}/e/sse/{k}", gateway.url)).await;
            assert_eq!(
                text,
                "data: {\"delta\":\"key [MASKED:secret] end\"}\n\ndata: whole [MASKED:secret]\n\n",
                "{name}: offset {k}"
            );
        }

        // The counts reach the metrics by detector name; the value reaches no log line.
        let metrics = gateway.metrics().await;
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("keyward_gateway_masked_total")
                    && l.contains("detector=\"secret\"")
                    && l.contains("route=\"echo\"")),
            "{name}: {metrics}"
        );
        assert!(
            !gateway.stderr().contains(VALUE),
            "{name}: the gateway logged the value"
        );
        drop(gateway);
        drop(sim);
        drop(server);
    }
}
