//! Test Connection and secret-name autocomplete (SPEC §6) against the broken-setup world: a
//! healthy credential passes, each broken handshake fails naming its step, the provider's code,
//! the cause and the presented claims; listing with a per-secret Key Vault role gives the hint.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{APP, APP_CASE, Sim, SimWorld, TENANT, world};
use crate::common::{self, BOOTSTRAP_TOKEN, Backend, Server, ServerOptions};

const PROVIDERS: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers";

async fn api(server: &Server, method: Method, path: &str) -> (u16, Value) {
    common::call(
        &server.client(),
        method,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await
}

#[tokio::test]
async fn test_connection_passes_when_healthy_and_names_each_broken_handshake() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    // The server reads the endpoints file at each use, so the simulator may start after it.
    let endpoints = dir.path().join("server-endpoints.json");
    let options = ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    let org = common::org_id(&server);
    let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
    std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
    let vault = |name: &str| {
        let sim = &sim;
        let name = name.to_owned();
        async move { sim.vault_url(&name).await }
    };
    let configs = [
        json!({"name": "gcp-good", "cloud": "gcp", "provider": format!("{PROVIDERS}/keyward-provider")}),
        json!({"name": "gcp-wrong-org", "cloud": "gcp", "provider": format!("{PROVIDERS}/wrong-org")}),
        json!({"name": "azure-good", "cloud": "azure", "tenant_id": TENANT, "client_id": APP}),
        json!({"name": "azure-case", "cloud": "azure", "tenant_id": TENANT, "client_id": APP_CASE}),
        json!({"name": "aws-good", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/keyward-secrets-reader", "region": "us-east-1"}),
        json!({"name": "aws-wrong-sub", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/wrong-sub", "region": "us-east-1"}),
    ];
    for config in configs {
        common::create_as_owner(&server, "/workload-identity-configs", config).await;
    }
    let credential = |name: &str, provider: &str, config: &str, extra: Value| {
        let mut body = json!({"name": name, "provider": provider, "auth": "workload_identity", "workload_identity_config": config});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for body in [
        credential(
            "gcp-good",
            "gcp_secret_manager",
            "gcp-good",
            json!({"project": "keyward-demo"}),
        ),
        credential(
            "gcp-wrong-org",
            "gcp_secret_manager",
            "gcp-wrong-org",
            json!({"project": "keyward-demo"}),
        ),
        credential(
            "azure-good",
            "azure_key_vault",
            "azure-good",
            json!({"vault_url": vault("keyward-demo-vault").await}),
        ),
        credential(
            "azure-per-secret",
            "azure_key_vault",
            "azure-good",
            json!({"vault_url": vault("per-secret-vault").await}),
        ),
        credential(
            "azure-case",
            "azure_key_vault",
            "azure-case",
            json!({"vault_url": vault("keyward-demo-vault").await}),
        ),
        credential(
            "aws-good",
            "aws_secrets_manager",
            "aws-good",
            json!({"region": "us-east-1"}),
        ),
        credential(
            "aws-wrong-sub",
            "aws_secrets_manager",
            "aws-wrong-sub",
            json!({"region": "us-east-1"}),
        ),
    ] {
        common::create_as_owner(&server, "/secret-providers", body).await;
    }

    for healthy in ["gcp-good", "azure-good", "aws-good"] {
        let (status, result) = api(
            &server,
            Method::POST,
            &format!("/secret-providers/{healthy}/test"),
        )
        .await;
        assert_eq!(
            (status, result["ok"].as_bool()),
            (200, Some(true)),
            "{healthy}: {result}"
        );
        assert!(
            result["note"]
                .as_str()
                .unwrap()
                .contains("does not prove per-secret permissions"),
            "{result}"
        );
        assert!(
            result["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["ok"] == json!(true)),
            "{result}"
        );
    }
    for (name, step, code, cause) in [
        (
            "gcp-wrong-org",
            "GCP STS token exchange",
            "unauthorized_client",
            "numeric org ID",
        ),
        (
            "azure-case",
            "Microsoft Entra client-assertion token",
            "AADSTS70021",
            "Issuer + Subject + Audience",
        ),
        (
            "aws-wrong-sub",
            "AWS STS AssumeRoleWithWebIdentity",
            "AccessDenied",
            "trust policy mismatch",
        ),
    ] {
        let (status, result) = api(
            &server,
            Method::POST,
            &format!("/secret-providers/{name}/test"),
        )
        .await;
        assert_eq!(
            (status, result["ok"].as_bool()),
            (200, Some(false)),
            "{name}: {result}"
        );
        let failed = result["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (failed["step"].as_str(), failed["code"].as_str()),
            (Some(step), Some(code)),
            "{name}: {result}"
        );
        assert!(
            failed["cause"].as_str().unwrap().contains(cause),
            "{name}: {failed}"
        );
        assert_eq!(result["presented"]["iss"], json!(server.url), "{result}");
        assert_eq!(
            result["presented"]["sub"],
            json!(format!("organization:{org}")),
            "{result}"
        );
    }

    // Autocomplete: names by prefix; a per-secret Key Vault role gets the vault-scope hint.
    let (_, listed) = api(
        &server,
        Method::GET,
        "/secret-providers/aws-good/secrets?prefix=openai",
    )
    .await;
    assert_eq!(listed["names"], json!(["openai-api-key"]), "{listed}");
    let (_, listed) = api(
        &server,
        Method::GET,
        "/secret-providers/gcp-good/secrets?prefix=db",
    )
    .await;
    assert_eq!(listed["names"], json!(["db-credentials"]), "{listed}");
    let (_, listed) = api(&server, Method::GET, "/secret-providers/azure-good/secrets").await;
    assert_eq!(listed["names"], json!(["openai-api-key"]), "{listed}");
    let (status, listed) = api(
        &server,
        Method::GET,
        "/secret-providers/azure-per-secret/secrets",
    )
    .await;
    assert_eq!((status, &listed["names"]), (200, &json!([])), "{listed}");
    let hint = listed["hint"].as_str().unwrap();
    assert!(
        hint.starts_with("Forbidden") && hint.contains("at the vault scope"),
        "{hint}"
    );

    // An unreachable endpoint: the cloud calls go nowhere; the step says it could not connect.
    std::fs::write(&endpoints, json!({"aws": {"sts_url": "https://127.0.0.1:9", "secrets_manager_url": "https://127.0.0.1:9"}}).to_string()).unwrap();
    let (status, result) = api(&server, Method::POST, "/secret-providers/aws-good/test").await;
    assert_eq!(
        (status, result["ok"].as_bool()),
        (200, Some(false)),
        "{result}"
    );
    let failed = result["steps"].as_array().unwrap().last().unwrap().clone();
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("gave up after") && message.contains("could not connect"),
        "{failed}"
    );
    assert!(
        failed["fix"].as_str().unwrap().contains("retry"),
        "{failed}"
    );
    drop(server);
}
