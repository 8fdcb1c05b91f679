//! The static path (SPEC §6): static-backed values are resolved when variables are assigned and
//! when the automation is redeployed, and kept until then — a rotation in the cloud shows up only
//! after `keyward automation redeploy`.

use std::process::Command;

use serde_json::json;

use crate::cloudsim_env::{Sim, SimWorld, world};
use crate::common::{self, Backend, Server, ServerOptions};

fn child_sees(server: &Server, token: &str, key: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["run", "--", "sh", "-c", &format!("printf %s \"${key}\"")])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn static_values_resolve_at_assignment_and_change_only_on_redeploy() {
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
    let (ok, _, err) = common::admin_cli(&server, &["env", "assign", "crew", "OPENAI_API_KEY"]);
    assert!(ok, "{err}");
    assert_eq!(
        child_sees(&server, &token, "OPENAI_API_KEY"),
        "aws-value-1",
        "resolved at assignment"
    );

    // Rotate in AWS: the kept value stays until a redeploy.
    sim.admin(
        reqwest::Method::POST,
        "secrets",
        Some(json!({"cloud": "aws", "name": "openai-api-key", "value": "aws-value-2"})),
    )
    .await;
    assert_eq!(
        child_sees(&server, &token, "OPENAI_API_KEY"),
        "aws-value-1",
        "no redeploy yet"
    );
    let (ok, out, err) = common::admin_cli(&server, &["automation", "redeploy", "crew"]);
    assert!(ok, "{err}");
    assert!(out.contains("OPENAI_API_KEY"), "{out}");
    assert_eq!(
        child_sees(&server, &token, "OPENAI_API_KEY"),
        "aws-value-2",
        "after the redeploy"
    );

    // A static credential that cannot read the secret: the assignment is refused, naming the
    // variable, and changes nothing.
    common::create_as_owner(&server, "/secret-providers", json!({"name": "aws-wrong-key",
        "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
        "static": {"access_key_id": "AKIAKEYWARDSTATIC001", "secret_access_key": "not-the-secret-key"}})).await;
    common::create_as_owner(
        &server,
        "/environment-variables",
        json!({"key": "BROKEN", "credential": "aws-wrong-key", "secret_name": "openai-api-key"}),
    )
    .await;
    common::create_as_owner(
        &server,
        "/environment-variables",
        json!({"key": "MISSING", "credential": "aws-static", "secret_name": "no-such-secret"}),
    )
    .await;
    let (ok, _, err) = common::admin_cli(
        &server,
        &[
            "env",
            "assign",
            "crew",
            "OPENAI_API_KEY",
            "BROKEN",
            "MISSING",
        ],
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("2 static-backed variable(s) did not resolve")
            && err.contains("BROKEN: ")
            && err.contains("SignatureDoesNotMatch")
            && err.contains("secret not found: MISSING"),
        "{err}"
    );
    assert_eq!(
        child_sees(&server, &token, "OPENAI_API_KEY"),
        "aws-value-2",
        "the old assignment stands"
    );
    drop(server);
}

const STATIC_SA: &str = "static-reader@keyward-demo.iam.gserviceaccount.com";
const STATIC_APP: &str = "2e8f1a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b";
const STATIC_APP_SECRET: &str = "static-app-client-secret-value-0123";
const STATIC_ROLE: &str = "arn:aws:iam::123456789012:role/static-assumed";

async fn test_connection(server: &Server, name: &str) -> serde_json::Value {
    let (status, body) = common::call(
        &server.client(),
        reqwest::Method::POST,
        &format!("{}/api/v1/secret-providers/{name}/test", server.url),
        Some(common::BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{name}: {body}");
    body
}

/// Static credentials for all three clouds: a GCP service account key (JWT bearer grant), an
/// Entra client secret, and AWS access keys assuming a role with an external id. Test
/// Connection makes one authenticated call each and names the refusal when the credential is
/// wrong; values resolve at assignment and change only on redeploy.
#[tokio::test]
async fn static_credentials_of_every_cloud_sign_in_test_and_resolve_on_redeploy() {
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

    // The key file, as `gcloud iam service-accounts keys create` writes one.
    let key_path = dir.path().join("static-reader-key.json");
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["cloudsim", "gcp-key", STATIC_SA, "--output"])
        .arg(&key_path)
        .arg("--endpoints")
        .arg(&sim.endpoints_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    assert_eq!(key_file["client_email"], STATIC_SA, "{key_file}");
    let key_id = key_file["private_key_id"].as_str().unwrap().to_owned();
    let vault = sim.vault_url("keyward-demo-vault").await;
    for body in [
        json!({"name": "gcp-static", "provider": "gcp_secret_manager", "auth": "static",
               "project": "keyward-demo", "static": {"service_account_json": key_file.to_string()}}),
        json!({"name": "azure-static", "provider": "azure_key_vault", "auth": "static", "vault_url": vault,
               "static": {"tenant_id": crate::cloudsim_env::TENANT, "client_id": STATIC_APP, "client_secret": STATIC_APP_SECRET}}),
        json!({"name": "azure-wrong-secret", "provider": "azure_key_vault", "auth": "static", "vault_url": vault,
               "static": {"tenant_id": crate::cloudsim_env::TENANT, "client_id": STATIC_APP, "client_secret": "the-secret-id-not-its-value"}}),
        json!({"name": "aws-role", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
               "static": {"access_key_id": "AKIAKEYWARDSTATIC001", "secret_access_key": "static-reader-secret-access-key-0123456789",
                          "role_arn": STATIC_ROLE, "external_id": "keyward-external-id-1"}}),
        json!({"name": "aws-wrong-external-id", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
               "static": {"access_key_id": "AKIAKEYWARDSTATIC001", "secret_access_key": "static-reader-secret-access-key-0123456789",
                          "role_arn": STATIC_ROLE, "external_id": "someone-elses-id"}}),
        json!({"name": "aws-wrong-key", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
               "static": {"access_key_id": "AKIAKEYWARDSTATIC001", "secret_access_key": "not-the-secret-access-key"}}),
    ] {
        common::create_as_owner(&server, "/secret-providers", body).await;
    }

    // Test Connection: one authenticated call per cloud (AWS with a role: AssumeRole, then
    // GetCallerIdentity as the role).
    for (name, steps) in [
        (
            "gcp-static",
            vec!["GCP OAuth token with a service account key (JWT bearer)"],
        ),
        ("azure-static", vec!["Microsoft Entra client-secret token"]),
        (
            "aws-role",
            vec!["AWS STS AssumeRole", "AWS STS GetCallerIdentity"],
        ),
    ] {
        let result = test_connection(&server, name).await;
        assert_eq!(result["ok"], json!(true), "{name}: {result}");
        let got: Vec<&str> = result["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(got, steps, "{name}: {result}");
        assert!(
            result["note"]
                .as_str()
                .unwrap()
                .contains("static credentials authenticate"),
            "{result}"
        );
        assert!(
            !result.to_string().contains(STATIC_APP_SECRET)
                && !result
                    .to_string()
                    .contains("static-reader-secret-access-key"),
            "a secret in the answer: {result}"
        );
    }
    // The CLI shows the same steps and exits non-zero when a step fails.
    let (ok, out, err) = common::admin_cli(&server, &["secret-provider", "test", "aws-role"]);
    assert!(ok && out.contains("AWS STS AssumeRole"), "{out}{err}");
    let (ok, out, _) =
        common::admin_cli(&server, &["secret-provider", "test", "azure-wrong-secret"]);
    assert!(!ok && out.contains("AADSTS7000215"), "{out}");
    let result = test_connection(&server, "aws-role").await;
    assert!(
        result["steps"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("assumed-role/static-assumed/"),
        "{result}"
    );
    for (name, step, code, cause) in [
        (
            "azure-wrong-secret",
            "Microsoft Entra client-secret token",
            "AADSTS7000215",
            "not its Secret ID",
        ),
        (
            "aws-wrong-external-id",
            "AWS STS AssumeRole",
            "AccessDenied",
            "sts:ExternalId",
        ),
        (
            "aws-wrong-key",
            "AWS STS GetCallerIdentity",
            "SignatureDoesNotMatch",
            "secret access key",
        ),
    ] {
        let result = test_connection(&server, name).await;
        let failed = result["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (
                result["ok"].clone(),
                failed["step"].as_str(),
                failed["code"].as_str()
            ),
            (json!(false), Some(step), Some(code)),
            "{name}: {result}"
        );
        let text = format!("{} {}", failed["cause"], failed["fix"]);
        assert!(text.contains(cause), "{name}: {result}");
    }

    // Values: resolved when assigned, kept through a rotation, renewed by a redeploy.
    for (key, credential, secret) in [
        ("GCP_KEY", "gcp-static", "openai-api-key"),
        ("GCP_DB_PASSWORD", "gcp-static", "db-credentials#password"),
        ("AZURE_KEY", "azure-static", "openai-api-key"),
        ("AWS_ROLE_KEY", "aws-role", "openai-api-key"),
    ] {
        common::create_as_owner(
            &server,
            "/environment-variables",
            json!({"key": key, "credential": credential, "secret_name": secret}),
        )
        .await;
    }
    let keys = ["GCP_KEY", "GCP_DB_PASSWORD", "AZURE_KEY", "AWS_ROLE_KEY"];
    let mut args = vec!["env", "assign", "crew"];
    args.extend(keys);
    let (ok, _, err) = common::admin_cli(&server, &args);
    assert!(ok, "{err}");
    let seen = |server: &Server| -> Vec<String> {
        keys.iter().map(|k| child_sees(server, &token, k)).collect()
    };
    assert_eq!(
        seen(&server),
        ["gcp-value-1", "gcp-pw", "azure-value-1", "aws-value-1"]
    );
    for (cloud, name, value) in [
        ("gcp", "openai-api-key", "gcp-value-2"),
        ("azure", "openai-api-key", "azure-value-2"),
        ("aws", "openai-api-key", "aws-value-2"),
    ] {
        sim.admin(
            reqwest::Method::POST,
            "secrets",
            Some(json!({"cloud": cloud, "name": name, "value": value})),
        )
        .await;
    }
    assert_eq!(
        seen(&server),
        ["gcp-value-1", "gcp-pw", "azure-value-1", "aws-value-1"],
        "kept until a redeploy"
    );
    let (ok, out, err) = common::admin_cli(&server, &["automation", "redeploy", "crew"]);
    assert!(ok, "{err}");
    assert!(out.contains("AZURE_KEY"), "{out}");
    assert_eq!(
        seen(&server),
        ["gcp-value-2", "gcp-pw", "azure-value-2", "aws-value-2"],
        "after the redeploy"
    );

    // A deleted service account key: the redeploy fails naming the variables, the Test
    // Connection names the refusal, and the kept values stand.
    sim.admin(
        reqwest::Method::DELETE,
        &format!("gcp/service-account-keys/{key_id}"),
        None,
    )
    .await;
    let result = test_connection(&server, "gcp-static").await;
    assert_eq!(result["ok"], json!(false), "{result}");
    assert_eq!(result["steps"][0]["code"], "invalid_grant", "{result}");
    assert!(
        result["steps"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("create a new key"),
        "{result}"
    );
    let (ok, _, err) = common::admin_cli(&server, &["automation", "redeploy", "crew"]);
    assert!(!ok);
    assert!(
        err.contains("GCP_KEY: the static credentials of 'gcp-static' did not sign in")
            && err.contains("GCP_DB_PASSWORD: "),
        "{err}"
    );
    assert_eq!(child_sees(&server, &token, "GCP_KEY"), "gcp-value-2");
    drop(server);
}
