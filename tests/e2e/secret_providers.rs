//! Secret provider credentials over the API (SPEC §6): workload identity and static
//! authentication, every rule with its reason, and static credentials that never come back.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};

async fn api(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    common::call(
        &server.client(),
        method,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        body,
    )
    .await
}

fn refused(result: (u16, Value), field: &str, words: &str) {
    let (status, body) = result;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some(field)),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "expected {words:?} in {message:?}");
}

const CLIENT_SECRET: &str = "azure-client-secret-value-7f3a9c";
const AWS_SECRET_KEY: &str = "aws-secret-access-key-value-0b2e4d";

#[tokio::test]
async fn credentials_are_validated_and_static_credentials_are_sealed_and_never_returned() {
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let name = backend.name();
        for config in [
            json!({"name": "aws-wi", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/reader", "region": "us-east-1"}),
            json!({"name": "gcp-wi", "cloud": "gcp",
                   "provider": "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc"}),
        ] {
            common::create_as_owner(&server, "/workload-identity-configs", config).await;
        }

        let (status, aws) = api(&server, Method::POST, "/secret-providers", Some(json!({
            "name": "aws-prod", "provider": "aws_secrets_manager", "auth": "workload_identity",
            "workload_identity_config": "aws-wi", "region": "us-east-1", "default_for_provider": true}))).await;
        assert_eq!(status, 201, "{name}: {aws}");
        assert_eq!(
            (
                aws["workload_identity_config"].as_str(),
                aws["static_configured"].as_bool()
            ),
            (Some("aws-wi"), Some(false))
        );

        let (status, azure) = api(&server, Method::POST, "/secret-providers", Some(json!({
            "name": "azure-static", "provider": "azure_key_vault", "auth": "static",
            "vault_url": "https://my-vault.vault.azure.net/",
            "static": {"tenant_id": "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00",
                       "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "client_secret": CLIENT_SECRET}}))).await;
        assert_eq!(status, 201, "{azure}");
        assert_eq!(azure["static_configured"], json!(true));
        assert_eq!(
            azure["vault_url"],
            json!("https://my-vault.vault.azure.net")
        );
        assert!(azure.get("static").is_none(), "{azure}");

        // Each rule, with its reason.
        let post = |body: Value| api(&server, Method::POST, "/secret-providers", Some(body));
        refused(
            post(
                json!({"name": "x", "provider": "aws_secrets_manager", "auth": "workload_identity",
            "workload_identity_config": "aws-wi"}),
            )
            .await,
            "region",
            "region is required",
        );
        refused(
            post(
                json!({"name": "x", "provider": "aws_secrets_manager", "auth": "workload_identity",
            "workload_identity_config": "gcp-wi", "region": "us-east-1"}),
            )
            .await,
            "workload_identity_config",
            "is for gcp, and aws_secrets_manager needs a aws config",
        );
        refused(
            post(
                json!({"name": "x", "provider": "gcp_secret_manager", "auth": "workload_identity",
            "workload_identity_config": "gcp-wi"}),
            )
            .await,
            "project",
            "project is required",
        );
        refused(post(json!({"name": "x", "provider": "gcp_secret_manager", "auth": "static", "project": "keyward-demo",
            "static": {"service_account_json": "{\"type\": \"authorized_user\"}"}})).await,
            "static", "not a service account key");
        refused(post(json!({"name": "x", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
            "static": {"access_key_id": "AKIAEXAMPLE"}})).await, "static", "static.secret_access_key is required");
        refused(post(json!({"name": "x", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
            "static": {"access_key_id": "AKIA", "secret_access_key": AWS_SECRET_KEY, "password": "x"}})).await,
            "static", "static.password is not a aws_secrets_manager field");
        refused(post(json!({"name": "x", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1"})).await,
            "static", "static credentials are required");
        refused(
            post(
                json!({"name": "x", "provider": "aws_secrets_manager", "auth": "workload_identity",
            "workload_identity_config": "aws-wi", "region": "us-east-1",
            "static": {"access_key_id": "AKIA", "secret_access_key": AWS_SECRET_KEY}}),
            )
            .await,
            "static",
            "do not go with auth workload_identity",
        );
        refused(post(json!({"name": "x", "provider": "azure_key_vault", "auth": "static", "region": "us-east-1",
            "static": {"tenant_id": "t", "client_id": "c", "client_secret": "s"}})).await,
            "region", "region does not apply to azure_key_vault");
        refused(
            post(json!({"name": "x", "provider": "vault", "auth": "static"})).await,
            "provider",
            "aws_secrets_manager",
        );
        refused(post(json!({"name": "aws-second", "provider": "aws_secrets_manager", "auth": "workload_identity",
            "workload_identity_config": "aws-wi", "region": "eu-west-1", "default_for_provider": true})).await,
            "default_for_provider", "already has a default aws_secrets_manager credential");

        // A blank static field keeps the stored one; the value is still never shown.
        let (status, updated) = api(
            &server,
            Method::PATCH,
            "/secret-providers/azure-static",
            Some(json!({
            "static": {"client_secret": "", "client_id": "9b2d3c4e-5f60-4a71-8b92-a3b4c5d6e7f8"}})),
        )
        .await;
        assert_eq!(
            (status, updated["static_configured"].as_bool()),
            (200, Some(true)),
            "{updated}"
        );
        let (status, body) = api(
            &server,
            Method::PATCH,
            "/secret-providers/azure-static",
            Some(json!({"provider": "aws_secrets_manager"})),
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("provider")),
            "{body}"
        );

        // Nowhere in a response, the audit log or the database in plaintext.
        let (_, list) = api(&server, Method::GET, "/secret-providers", None).await;
        let (_, audit) = api(&server, Method::GET, "/audit?limit=1000", None).await;
        for text in [list.to_string(), audit.to_string()] {
            assert!(!text.contains(CLIENT_SECRET), "{text}");
        }
        assert!(
            audit.to_string().contains("secret_provider.created"),
            "{audit}"
        );
        let dump = common::raw_database(&options).await;
        assert!(!dump.is_empty());
        assert!(
            !dump
                .windows(CLIENT_SECRET.len())
                .any(|w| w == CLIENT_SECRET.as_bytes()),
            "{name}: the client secret is in the database in plaintext"
        );

        let (status, _) = api(
            &server,
            Method::DELETE,
            "/secret-providers/azure-static",
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = api(&server, Method::GET, "/secret-providers/azure-static", None).await;
        assert_eq!(status, 404);
        drop(server);
    }
}
