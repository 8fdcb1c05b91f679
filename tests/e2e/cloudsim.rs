//! `keyward cloudsim` driven from outside: state files, the demo world, the admin CLI, and
//! Keyward's own cloud clients against it (happy paths, every refusal, faults and retries).

use std::process::Command;

fn cloudsim(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("cloudsim")
        .args(args)
        .output()
        .expect("run keyward cloudsim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_state_files_are_refused_at_load_with_the_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[gcp]\nproject_id = \"keyward-demo\"\nproject_number = \"keyward-demo\"\n",
            "line 3: gcp.project_number",
        ),
        (
            "[gcp]\nproject_id = \"keyward-demo\"\nproject_number = \"1234\"\n\n[[gcp.providers]]\npool = \"keyward-pool\"\nid = \"kw-provider\"\nissuer = \"https://kw.example\"\nattribute_condition = \"assertion.organization_id = 'x'\"\n",
            "line 9: gcp.providers[0].attribute_condition",
        ),
        (
            "[aws]\naccount_id = \"123456789012\"\nregion = \"us-east-1\"\nsecrets = [{ name = \"a\", valu = \"x\" }]\n",
            "line 4",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (ok, _, stderr) = cloudsim(&[
            "--state",
            path.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ]);
        assert!(!ok, "case {i} should be refused");
        assert!(
            stderr.contains(expected),
            "case {i}: expected {expected:?} in {stderr}"
        );
        assert!(
            stderr.contains(path.to_str().unwrap()),
            "case {i} names the file: {stderr}"
        );
    }
}

#[test]
fn a_world_is_required_and_print_ca_prints_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = cloudsim(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("--state") && stderr.contains("--demo"),
        "{stderr}"
    );
    let (ok, stdout, _) = cloudsim(&["--print-ca", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(ok);
    assert!(
        stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{stdout}"
    );
    let (_, again, _) = cloudsim(&["--print-ca", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(stdout, again, "the CA is kept in the data dir");
}

use base64::Engine;
use serde_json::{Value, json};

use crate::cloudsim_env::{Sim, SimWorld};
use crate::common::{self, Backend, Server, ServerOptions};

/// Starts a server (SQLite, data in `<dir>/kw`), an automation with its token, and a demo
/// simulator for its org; the returned dir holds both.
pub async fn server_and_sim(
    world: impl Fn(&str, &str) -> Option<String>,
) -> (Server, String, Sim, tempfile::TempDir) {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    // The server reads its endpoints file at each use, so it may appear once the simulator (which
    // needs the server's issuer) runs; with it, the simulator's vault hosts are Key Vaults here.
    let server_endpoints = dir.path().join("server-endpoints.json");
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw")).env(
            "KEYWARD_CLOUD_ENDPOINTS",
            server_endpoints.to_str().expect("utf-8 path"),
        ),
    );
    let (_, token) = common::automation_with_token(&server, "crew").await;
    let org = common::org_id(&server);
    let sim = match world(&server.url, &org) {
        Some(text) => Sim::start(&server, &org, SimWorld::State(&text)),
        None => Sim::start(&server, &org, SimWorld::Demo),
    };
    std::fs::copy(&sim.endpoints_path, &server_endpoints).expect("copy endpoints");
    (server, token, sim, dir)
}

/// A token with the claims of `real` but signed by a key the issuer never published.
pub fn forged_like(real: &str) -> String {
    let payload = real.split('.').nth(1).unwrap();
    let claims: keyward_jose::WorkloadClaims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let key = keyward_jose::SigningKey::generate().unwrap();
    keyward_jose::mint(&key, &claims).unwrap()
}

async fn sts_raw(sim: &Sim, audience: &str, jwt: &str) -> (u16, Value) {
    let client = sim.http();
    let res = client
        .post(format!("{}/v1/token", sim.base))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("subject_token", jwt),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_interval() {
    let (server, token, sim, _dir) = server_and_sim(|_, _| None).await;
    let audience = format!(
        "//iam.googleapis.com/{}",
        sim.endpoints
            .gcp
            .as_ref()
            .unwrap()
            .provider
            .as_deref()
            .unwrap()
    );
    let (status, minted) = common::mint(&server, &token, &audience).await;
    assert_eq!(status, 200, "{minted}");
    let real = minted["token"].as_str().unwrap();
    let (status, body) = sts_raw(&sim, &audience, real).await;
    assert_eq!(status, 200, "{body}");
    let fetches = || async {
        sim.admin(reqwest::Method::GET, "requests", None).await["issuer_fetches"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        fetches().await,
        1,
        "the first exchange fetched discovery + JWKS once"
    );

    let forged = forged_like(real);
    for _ in 0..3 {
        let (status, body) = sts_raw(&sim, &audience, &forged).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], json!("invalid_grant"));
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("INVALID_ARGUMENT: Invalid JWT"),
            "{body}"
        );
    }
    assert_eq!(
        fetches().await,
        1,
        "an unknown kid right after a fetch does not refetch (rate limit)"
    );
    tokio::time::sleep(
        keyward_cloudsim::jwt::REFETCH_INTERVAL + std::time::Duration::from_millis(200),
    )
    .await;
    let (status, _) = sts_raw(&sim, &audience, &forged).await;
    assert_eq!(status, 400);
    assert_eq!(
        fetches().await,
        2,
        "after the interval an unknown kid refetches once"
    );
    let (status, body) = sts_raw(&sim, &audience, real).await;
    assert_eq!(status, 200, "the real token still exchanges: {body}");
    drop(server);
}

#[tokio::test]
async fn fault_knobs_fail_delay_throttle_and_drop_exactly_as_set_and_requests_are_counted() {
    let (server, _token, sim, _dir) = server_and_sim(|_, _| None).await;
    let client = sim.http();
    // An unauthenticated Secret Manager read is a clean 401 when no fault hits.
    let url = format!(
        "{}/v1/projects/keyward-demo/secrets/openai-api-key/versions/latest:access",
        sim.base
    );
    let get = || client.get(&url).send();
    assert_eq!(get().await.unwrap().status(), 401);

    sim.fault(json!({"endpoint": "gcp.secretmanager", "count": 2, "status": 503}))
        .await;
    for _ in 0..2 {
        let res = get().await.unwrap();
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["status"], json!("UNAVAILABLE"));
    }
    assert_eq!(
        get().await.unwrap().status(),
        401,
        "the knob fails exactly `count` requests"
    );

    sim.fault(
        json!({"endpoint": "gcp.secretmanager", "count": 1, "status": 429, "retry_after": 7}),
    )
    .await;
    let res = get().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7");

    sim.fault(json!({"endpoint": "aws.secretsmanager", "count": 1, "drop": true}))
        .await;
    let dropped = client
        .post(format!("{}/", sim.base))
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .body("{}")
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(res) => res.bytes().await.is_err(),
    };
    assert!(
        failed,
        "a dropped connection never yields a complete answer"
    );

    sim.clear_faults().await;
    sim.fault(json!({"endpoint": "gcp.secretmanager", "latency_ms": 300}))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(get().await.unwrap().status(), 401);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "latency is added"
    );
    sim.clear_faults().await;

    assert_eq!(sim.count("gcp.secretmanager").await, 6);
    assert_eq!(sim.count("aws.secretsmanager").await, 1);
    sim.reset_counts().await;
    assert_eq!(sim.count("gcp.secretmanager").await, 0);

    // The admin endpoints take the endpoints file's token, and nothing else (L10).
    for token in [None, Some("kwsim_guess")] {
        let mut req = client
            .post(format!("{}/_cloudsim/clock", sim.base))
            .json(&json!({"offset_secs": 99999}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let refused = req.send().await.unwrap();
        assert_eq!(refused.status(), 401);
    }
    let bad = client
        .post(format!("{}/_cloudsim/faults", sim.base))
        .bearer_auth(sim.endpoints.admin_token.as_deref().unwrap())
        .json(&json!({"endpoint": "gcp.nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("unknown endpoint 'gcp.nope'")
    );
    drop(server);
}

#[tokio::test]
async fn secret_set_adds_a_version_that_the_next_read_sees() {
    let (server, token, sim, _dir) = server_and_sim(|_, _| None).await;
    let gcp = sim.endpoints.gcp.clone().unwrap();
    let audience = format!("//iam.googleapis.com/{}", gcp.provider.unwrap());
    let (_, minted) = common::mint(&server, &token, &audience).await;
    let (status, fed) = sts_raw(&sim, &audience, minted["token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{fed}");
    let client = sim.http();
    let read = || async {
        let body: Value = client
            .get(format!(
                "{}/v1/projects/{}/secrets/openai-api-key/versions/latest:access",
                sim.base,
                gcp.project_id.as_deref().unwrap()
            ))
            .bearer_auth(fed["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = body["payload"]["data"].as_str().unwrap().to_owned();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        read().await,
        gcp.secrets["openai-api-key"],
        "the endpoints file lists the current value"
    );
    let (ok, stdout, stderr) = cloudsim(&[
        "secret",
        "set",
        "--endpoints",
        sim.endpoints_path.to_str().unwrap(),
        "--cloud",
        "gcp",
        "openai-api-key",
        "rotated-value",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("new version 2"), "{stdout}");
    assert_eq!(read().await, "rotated-value");
    drop(server);
}
