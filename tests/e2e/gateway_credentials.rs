//! The gateway's credential injection (issue 16, acceptance d) against a real `keyward serve` and
//! `keyward cloudsim`: for every kind the Injector strips the caller's credentials, adds the
//! route's own, and an upstream that checks it accepts the request — a recording upstream for a
//! secrets-manager secret and a Keyward token, cloudsim's Vertex for the GCP access token, its
//! Azure OpenAI for the Entra token and its Bedrock for the SigV4 signature. The refresh of
//! 60-second credentials is in `gateway_credentials_refresh`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_gateway::credentials::{
    CALLER_CREDENTIAL_HEADERS, CredentialSettings, Injector, strip_caller_credentials,
};
use keyward_policy::CredentialSpec;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::cloudsim::server_and_sim;
use crate::cloudsim_env::Sim;
use crate::common::{self, Server};
use crate::run::configure;

pub const TOKEN_ENV: &str = "CREW_AUTOMATION_TOKEN";
const CALLER_SECRET: &str = "caller-own-credential-must-not-pass";

/// Headers one request to the recording upstream carried (names lowercased).
type Seen = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// A plain HTTP/1.1 upstream that records each request's headers and answers 200.
async fn recording_upstream() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let Some(buf) = crate::gateway_common::read_request_head(&mut socket).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&buf).into_owned();
                let head = text.split("\r\n\r\n").next().unwrap_or_default();
                let mut headers = BTreeMap::new();
                for line in head.lines().skip(1) {
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                sink.lock().unwrap().push(headers);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (url, seen)
}

/// An outgoing request as the pipeline has it after routing: the caller's headers included.
pub fn caller_request(method: &str, url: &str) -> http::request::Parts {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("x-request-id", "req-1");
    for name in CALLER_CREDENTIAL_HEADERS {
        builder = builder.header(name, format!("Bearer {CALLER_SECRET}"));
    }
    builder.body(()).unwrap().into_parts().0
}

/// Strips, injects, and sends the request with `body`; the upstream's status and body.
pub async fn through(
    injector: &Injector,
    http: &reqwest::Client,
    route: &str,
    spec: &CredentialSpec,
    mut parts: http::request::Parts,
    body: &[u8],
) -> (u16, Value, http::HeaderMap) {
    strip_caller_credentials(&mut parts.headers);
    let signs = Injector::needs_body(spec);
    injector
        .apply(route, spec, &mut parts, signs.then_some(body))
        .await
        .unwrap_or_else(|e| panic!("{route}: {e}"));
    for name in CALLER_CREDENTIAL_HEADERS {
        if let Some(v) = parts.headers.get(name) {
            assert!(
                !v.to_str().unwrap().contains(CALLER_SECRET),
                "{route}: the caller's {name} survived"
            );
        }
    }
    let (status, text) = send(http, &parts, body).await;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json, parts.headers)
}

pub async fn send(
    http: &reqwest::Client,
    parts: &http::request::Parts,
    body: &[u8],
) -> (u16, String) {
    let response = http
        .request(parts.method.clone(), parts.uri.to_string())
        .headers(parts.headers.clone())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The server and simulator, the demo world's identities as `crew`'s, and an Injector acting
/// with `crew`'s token.
pub async fn setup() -> (Server, Sim, Arc<Injector>, tempfile::TempDir) {
    let (server, token, sim, dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;
    let injector = Injector::with_env(
        CredentialSettings {
            platform_url: Some(url::Url::parse(&server.url).unwrap()),
            platform_ca: server.ca_file.clone(),
            cloud_endpoints: Some(sim.endpoints_path.clone()),
        },
        Arc::new(move |name: &str| (name == TOKEN_ENV).then(|| token.clone())),
    )
    .unwrap();
    (server, sim, Arc::new(injector), dir)
}

pub fn gcp_spec() -> CredentialSpec {
    CredentialSpec::Gcp {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
    }
}

pub fn azure_spec() -> CredentialSpec {
    CredentialSpec::Azure {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        scope: "https://cognitiveservices.azure.com/.default".into(),
    }
}

pub fn aws_spec() -> CredentialSpec {
    CredentialSpec::Aws {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        service: "bedrock".into(),
        region: None,
    }
}

pub fn vertex_url(sim: &Sim) -> String {
    format!(
        "{}/v1/projects/keyward-demo/locations/global/publishers/google/models/gemini-2.0-flash:generateContent",
        sim.base
    )
}

pub fn azure_openai_url(sim: &Sim) -> String {
    format!(
        "{}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        sim.base
    )
}

pub fn bedrock_url(sim: &Sim) -> String {
    format!("{}/model/amazon.titan-text-express-v1/invoke", sim.base)
}

pub const VERTEX_BODY: &[u8] = br#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}"#;
pub const CHAT_BODY: &[u8] = br#"{"messages": [{"role": "user", "content": "hi"}]}"#;
pub const TITAN_BODY: &[u8] = br#"{"inputText": "hi"}"#;

pub fn bearer_of(headers: &http::HeaderMap) -> String {
    headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

pub fn access_key_of(headers: &http::HeaderMap) -> String {
    let auth = headers["authorization"].to_str().unwrap();
    let credential = auth.split("Credential=").nth(1).unwrap();
    credential.split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn every_credential_kind_reaches_an_upstream_that_checks_it_and_the_callers_never_does() {
    let (server, sim, injector, _dir) = setup().await;
    let http = sim.http().clone();
    let (recorder, seen) = recording_upstream().await;

    // A secrets-manager secret: crew's OPENAI_API_KEY lives in GCP Secret Manager and is had
    // through the provider's workload identity, as `keyward run` has it.
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
    let (status, body) = common::call(
        &server.client(),
        reqwest::Method::PUT,
        &format!(
            "{}/api/v1/automations/crew/environment-variables",
            server.url
        ),
        Some(common::BOOTSTRAP_TOKEN),
        Some(json!({"environment_variables": ["OPENAI_API_KEY"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let stored = sim.endpoints.gcp.as_ref().unwrap().secrets["openai-api-key"].clone();
    let secret = CredentialSpec::Secret {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        env: "OPENAI_API_KEY".into(),
        header: "authorization".into(),
        format: None,
        cache_seconds: Some(2),
    };
    let upstream = format!("{recorder}/v1/chat/completions");
    let (status, _, _) = through(
        &injector,
        &http,
        "openai",
        &secret,
        caller_request("POST", &upstream),
        CHAT_BODY,
    )
    .await;
    assert_eq!(status, 200);
    let first = seen.lock().unwrap().pop().unwrap();
    assert_eq!(first["authorization"], format!("Bearer {stored}"));
    assert_eq!(first["x-request-id"], "req-1", "other headers pass");
    for name in CALLER_CREDENTIAL_HEADERS {
        let arrived = first.get(name).cloned().unwrap_or_default();
        assert!(
            !arrived.contains(CALLER_SECRET),
            "the caller's {name} reached the upstream: {first:?}"
        );
    }
    assert!(!first.contains_key("cookie") && !first.contains_key("x-goog-api-key"));
    // Another header and format; the value is the same secret.
    let keyed = CredentialSpec::Secret {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        env: "OPENAI_API_KEY".into(),
        header: "api-key".into(),
        format: Some("{}".into()),
        cache_seconds: None,
    };
    through(
        &injector,
        &http,
        "azure-key",
        &keyed,
        caller_request("GET", &upstream),
        b"",
    )
    .await;
    let keyed_seen = seen.lock().unwrap().pop().unwrap();
    assert_eq!(keyed_seen["api-key"], stored);
    assert!(!keyed_seen.contains_key("authorization"), "{keyed_seen:?}");
    // Rotated in the secrets manager: the bounded cache (2 s here) picks the new value up.
    sim.admin(
        reqwest::Method::POST,
        "secrets",
        Some(json!({"cloud": "gcp", "name": "openai-api-key", "value": "rotated-openai-key"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    through(
        &injector,
        &http,
        "openai",
        &secret,
        caller_request("POST", &upstream),
        CHAT_BODY,
    )
    .await;
    let rotated = seen.lock().unwrap().pop().unwrap();
    assert_eq!(rotated["authorization"], "Bearer rotated-openai-key");

    // GCP: an impersonated service account's access token, which Vertex checks for its role.
    sim.reset_counts().await;
    let (status, answer, headers) = through(
        &injector,
        &http,
        "vertex",
        &gcp_spec(),
        caller_request("POST", &vertex_url(&sim)),
        VERTEX_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.ends_with("answered keyward-vertex@keyward-demo.iam.gserviceaccount.com"),
        "{text}"
    );
    assert!(
        bearer_of(&headers).starts_with("ya29.c.sim-"),
        "an impersonated token"
    );
    // Cached: ten concurrent requests more, and still one exchange.
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut parts = caller_request("POST", &vertex_url(&sim));
        let injector = injector.clone();
        batch.spawn(async move {
            strip_caller_credentials(&mut parts.headers);
            injector
                .apply("vertex", &gcp_spec(), &mut parts, None)
                .await
                .unwrap();
            bearer_of(&parts.headers)
        });
    }
    let tokens = batch.join_all().await;
    assert!(tokens.iter().all(|t| *t == bearer_of(&headers)));
    assert_eq!(
        sim.count("gcp.sts").await,
        1,
        "one STS exchange for eleven requests"
    );
    assert_eq!(sim.count("gcp.iam").await, 1);

    // Azure: an Entra token for the Cognitive Services scope, which Azure OpenAI checks for
    // audience, tenant and role.
    let (status, answer, _) = through(
        &injector,
        &http,
        "azure-openai",
        &azure_spec(),
        caller_request("POST", &azure_openai_url(&sim)),
        CHAT_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let client_id = sim
        .endpoints
        .azure
        .as_ref()
        .unwrap()
        .client_id
        .clone()
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        format!("cloudsim gpt-4o answered {client_id}")
    );
    // The same endpoint refuses a token for another resource (Key Vault's scope) and the
    // caller's own header, so the 200 above is the injected token's doing.
    let vault_scoped = CredentialSpec::Azure {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        scope: "https://vault.azure.net/.default".into(),
    };
    let (status, answer, _) = through(
        &injector,
        &http,
        "wrong-scope",
        &vault_scoped,
        caller_request("POST", &azure_openai_url(&sim)),
        CHAT_BODY,
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audience is incorrect")
    );

    // AWS: SigV4 with the role's session credentials, verified by cloudsim's Bedrock.
    let (status, answer, headers) = through(
        &injector,
        &http,
        "bedrock",
        &aws_spec(),
        caller_request("POST", &bedrock_url(&sim)),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["caller"].as_str().unwrap().starts_with(
            "arn:aws:sts::123456789012:assumed-role/keyward-secrets-reader/keyward-gateway-"
        ),
        "{answer}"
    );
    assert!(!access_key_of(&headers).is_empty());
    // A real Bedrock model id has a colon, which SDKs send percent-encoded: signed as AWS
    // wants it (the path encoded once more), the verifier accepts it.
    let claude = bedrock_url(&sim).replace(
        "amazon.titan-text-express-v1",
        "anthropic.claude-3-haiku-20240307-v1%3A0",
    );
    let (status, answer, _) = through(
        &injector,
        &http,
        "bedrock",
        &aws_spec(),
        caller_request("POST", &claude),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model"], "anthropic.claude-3-haiku-20240307-v1:0");
    // The signature covers the body: the same headers with another body are refused.
    let mut parts = caller_request("POST", &bedrock_url(&sim));
    strip_caller_credentials(&mut parts.headers);
    injector
        .apply("bedrock", &aws_spec(), &mut parts, Some(TITAN_BODY))
        .await
        .unwrap();
    let (status, text) = send(&http, &parts, br#"{"inputText": "something else"}"#).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("signature"), "{text}");

    // Keyward: a workload token of crew for an audience, verifiable with the platform's JWKS.
    let keyward = CredentialSpec::Keyward {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        audience: "sts.amazonaws.com".into(),
    };
    through(
        &injector,
        &http,
        "internal",
        &keyward,
        caller_request("GET", &upstream),
        b"",
    )
    .await;
    let got = seen.lock().unwrap().pop().unwrap();
    let jwt = got["authorization"].strip_prefix("Bearer ").unwrap();
    let claims = common::verify(
        jwt,
        &common::jwks(&server).await,
        &server.url,
        "sts.amazonaws.com",
    )
    .unwrap();
    assert!(
        claims["sub"].as_str().unwrap().starts_with("organization:"),
        "{claims}"
    );
}

#[tokio::test]
async fn a_wrong_automation_or_a_refusing_cloud_is_a_named_error_with_the_fix() {
    let (server, sim, injector, _dir) = setup().await;
    let other = CredentialSpec::Gcp {
        automation: "someone-else".into(),
        token_env: TOKEN_ENV.into(),
    };
    let mut parts = caller_request("POST", &vertex_url(&sim));
    let err = injector
        .apply("vertex", &other, &mut parts, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "route 'vertex': gcp credential (automation 'someone-else'): the automation token: "
        ) && err.contains("belongs to automation 'crew'"),
        "{err}"
    );
    // A broken world: STS refuses, and the error carries the cloud's cause and fix.
    sim.fault(json!({"endpoint": "gcp.sts", "count": 100, "status": 503}))
        .await;
    let started = Instant::now();
    let err = injector
        .apply("vertex", &gcp_spec(), &mut parts, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("route 'vertex': gcp credential") && err.contains("GCP STS token exchange"),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");
    assert_eq!(err.matches("GCP STS token exchange").count(), 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(40));
    drop(server);
}
