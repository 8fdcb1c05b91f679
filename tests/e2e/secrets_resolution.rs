//! Secrets at kickoff (SPEC §5 step 4, §6) against the demo cloudsim world: workload-identity-
//! backed values resolve fresh at every kickoff on all three clouds (rotation shows up with no
//! redeploy), and any variable that cannot resolve stops the kickoff, naming it.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::cloudsim::server_and_sim;
use crate::cloudsim_env::Sim;
use crate::common::{self, Server};
use crate::run::configure;

fn keyward_run(
    server: &Server,
    sim: &Sim,
    token: &str,
    script: &str,
) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["run", "--", "sh", "-c", script])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_CLOUD_ENDPOINTS", &sim.endpoints_path)
        .env("KEYWARD_LOG", "info")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_field(secret: &str, key: &str) -> String {
    let v: Value = serde_json::from_str(secret).unwrap();
    match &v[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) const KEYS: [&str; 6] = [
    "GCP_KEY",
    "GCP_DB_PASSWORD",
    "AZURE_KEY",
    "AZURE_DB_USER",
    "AWS_KEY",
    "AWS_DB_PORT",
];

pub(crate) fn printed(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The three clouds' secret providers through the demo identities, and [`KEYS`] (a whole secret
/// and a JSON field from each cloud) assigned to `crew`. Call after [`configure`].
pub(crate) async fn assign_secrets_from_every_cloud(server: &Server, sim: &Sim) {
    let vault = sim
        .endpoints
        .azure
        .as_ref()
        .unwrap()
        .vault_url
        .clone()
        .unwrap();
    for credential in [
        json!({"name": "gcp-sm", "provider": "gcp_secret_manager", "auth": "workload_identity",
               "workload_identity_config": "gcp", "project": "keyward-demo", "default_for_provider": true}),
        json!({"name": "azure-kv", "provider": "azure_key_vault", "auth": "workload_identity",
               "workload_identity_config": "azure", "vault_url": vault}),
        json!({"name": "aws-sm", "provider": "aws_secrets_manager", "auth": "workload_identity",
               "workload_identity_config": "aws", "region": "us-east-1"}),
    ] {
        common::create_as_owner(server, "/secret-providers", credential).await;
    }
    for (key, credential, name) in [
        ("GCP_KEY", "gcp-sm", "openai-api-key"),
        ("GCP_DB_PASSWORD", "gcp-sm", "db-credentials#password"),
        ("AZURE_KEY", "azure-kv", "openai_api_key"),
        ("AZURE_DB_USER", "azure-kv", "db_credentials#username"),
        ("AWS_KEY", "aws-sm", "openai-api-key"),
        ("AWS_DB_PORT", "aws-sm", "db-credentials#port"),
    ] {
        common::create_as_owner(
            server,
            "/environment-variables",
            json!({"key": key, "credential": credential, "secret_name": name}),
        )
        .await;
    }
    let (status, body) = common::call(
        &server.client(),
        reqwest::Method::PUT,
        &format!(
            "{}/api/v1/automations/crew/environment-variables",
            server.url
        ),
        Some(common::BOOTSTRAP_TOKEN),
        Some(json!({"environment_variables": KEYS})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// What each of [`KEYS`] holds in the demo world (before any rotation).
pub(crate) fn expected_values(sim: &Sim) -> BTreeMap<&'static str, String> {
    let gcp = &sim.endpoints.gcp.as_ref().unwrap().secrets;
    let azure = &sim.endpoints.azure.as_ref().unwrap().secrets;
    let aws = &sim.endpoints.aws.as_ref().unwrap().secrets;
    BTreeMap::from([
        ("GCP_KEY", gcp["openai-api-key"].clone()),
        (
            "GCP_DB_PASSWORD",
            json_field(&gcp["db-credentials"], "password"),
        ),
        // Azure names: _ becomes -.
        ("AZURE_KEY", azure["openai-api-key"].clone()),
        (
            "AZURE_DB_USER",
            json_field(&azure["db-credentials"], "username"),
        ),
        ("AWS_KEY", aws["openai-api-key"].clone()),
        ("AWS_DB_PORT", "5432".into()),
    ])
}

#[tokio::test]
async fn workload_identity_secrets_resolve_fresh_at_every_kickoff_on_all_three_clouds() {
    let (server, token, sim, _dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;
    assign_secrets_from_every_cloud(&server, &sim).await;

    let script: String = KEYS.iter().map(|k| format!("echo {k}=${k}; ")).collect();
    let mints = || async {
        let (_, page) = common::call(
            &server.client(),
            reqwest::Method::GET,
            &format!(
                "{}/api/v1/audit?type=workload_token.minted&limit=1000",
                server.url
            ),
            Some(common::BOOTSTRAP_TOKEN),
            None,
        )
        .await;
        page["events"].as_array().unwrap().len()
    };
    let before = mints().await;
    let (code, stdout, stderr) = keyward_run(&server, &sim, &token, &script);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        mints().await - before,
        3,
        "one token per identity serves both the secrets and the token files"
    );
    let seen = printed(&stdout);
    for (key, value) in expected_values(&sim) {
        assert_eq!(seen[key], value, "{key}");
    }
    for cloud in ["gcp", "azure", "aws"] {
        let line = format!("Workload identity config '{cloud}' ({cloud}): 2 secret(s) resolved");
        assert_eq!(stderr.matches(&line).count(), 1, "{line:?} in\n{stderr}");
    }
    for value in seen.values() {
        assert!(
            !stderr.contains(value.as_str()),
            "a secret value reached the log:\n{stderr}"
        );
    }

    // Rotate in each cloud: the next kickoff sees the new value, with no redeploy and no restart.
    for (cloud, value) in [
        ("gcp", "rotated-gcp"),
        ("azure", "rotated-azure"),
        ("aws", "rotated-aws"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["cloudsim", "secret", "set", "--endpoints"])
            .arg(&sim.endpoints_path)
            .args(["--cloud", cloud, "openai-api-key", value])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (code, stdout, stderr) = keyward_run(&server, &sim, &token, &script);
    assert_eq!(code, Some(0), "{stderr}");
    let seen = printed(&stdout);
    assert_eq!(
        (
            seen["GCP_KEY"].as_str(),
            seen["AZURE_KEY"].as_str(),
            seen["AWS_KEY"].as_str()
        ),
        ("rotated-gcp", "rotated-azure", "rotated-aws")
    );
    drop(server);
}

#[tokio::test]
async fn a_variable_that_cannot_resolve_stops_the_kickoff_and_is_named() {
    let (server, _, sim, dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;
    common::create_as_owner(&server, "/secret-providers", json!({"name": "aws-sm",
        "provider": "aws_secrets_manager", "auth": "workload_identity", "workload_identity_config": "aws",
        "region": "us-east-1"})).await;
    common::create_as_owner(&server, "/secret-providers", json!({"name": "azure-no-vault",
        "provider": "azure_key_vault", "auth": "workload_identity", "workload_identity_config": "azure"})).await;
    let cases = [
        (
            "MISSING_SECRET",
            json!({"credential": "aws-sm", "secret_name": "no-such-secret"}),
            "secret not found: MISSING_SECRET",
        ),
        (
            "MISSING_FIELD",
            json!({"credential": "aws-sm", "secret_name": "db-credentials#host"}),
            "JSON key not found: MISSING_FIELD",
        ),
        (
            "NO_VAULT",
            json!({"credential": "azure-no-vault", "secret_name": "openai-api-key"}),
            "azure_vault_url is required for Azure secret resolution (NO_VAULT",
        ),
        (
            "NO_DEFAULT",
            json!({"provider": "gcp_secret_manager", "secret_name": "openai-api-key"}),
            "no credential found for NO_DEFAULT",
        ),
    ];
    let marker = dir.path().join("started");
    for (i, (key, reference, expected)) in cases.into_iter().enumerate() {
        let automation = format!("broken-{i}");
        let (_, token) = common::automation_with_token(&server, &automation).await;
        let mut body = reference.clone();
        body["key"] = json!(key);
        common::create_as_owner(&server, "/environment-variables", body).await;
        // A good variable beside the broken one: it must not leak into a started command either.
        let (status, answer) = common::call(
            &server.client(),
            reqwest::Method::PUT,
            &format!(
                "{}/api/v1/automations/{automation}/environment-variables",
                server.url
            ),
            Some(common::BOOTSTRAP_TOKEN),
            Some(json!({"environment_variables": [key]})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let (code, stdout, stderr) = keyward_run(
            &server,
            &sim,
            &token,
            &format!("touch {}", marker.display()),
        );
        assert_eq!(code, Some(1), "{key}: {stdout}{stderr}");
        assert!(
            stderr.contains("the command was not started"),
            "{key}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{key}: expected {expected:?} in\n{stderr}"
        );
        assert!(!marker.exists(), "{key}: the command must not start");
    }
    drop(server);
}
