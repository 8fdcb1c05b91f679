//! Acceptance f of the secrets manager: secret values never appear in plaintext in API responses,
//! logs, audit events or the database. One test drives every secrets flow — workload identity and
//! static credentials for all three clouds, direct secret values, `#json_key` fields, assignment,
//! redeploy, Test Connection, autocomplete, rotation, the CLI's reads and `keyward run` at debug
//! level — on each backend, then searches everything it saw for every value.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{APP, Sim, SimWorld, TENANT, world};
use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};

const PROVIDERS: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers";
const STATIC_SA: &str = "static-reader@keyward-demo.iam.gserviceaccount.com";
const STATIC_APP: &str = "2e8f1a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b";

/// Everything the flows produced that a person or a log pipeline could read.
#[derive(Default)]
struct Seen {
    responses: Vec<String>,
    outputs: Vec<String>,
}

impl Seen {
    async fn api(
        &mut self,
        server: &Server,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = common::call(
            &server.client(),
            method.clone(),
            &format!("{}/api/v1{path}", server.url),
            Some(BOOTSTRAP_TOKEN),
            body,
        )
        .await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
        self.responses.push(answer.to_string());
        answer
    }

    fn cli(&mut self, server: &Server, args: &[&str]) -> String {
        let (ok, out, err) = common::admin_cli(server, args);
        assert!(ok, "keyward {args:?}: {err}");
        self.outputs.push(format!("{out}\n{err}"));
        out
    }
}

#[tokio::test]
async fn no_secret_value_reaches_a_response_log_audit_event_or_the_database() {
    common::install_crypto();
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let endpoints = dir.path().join("server-endpoints.json");
        let options = ServerOptions::new(&backend, &dir.path().join("kw"))
            .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap())
            .env("KEYWARD_LOG", "debug");
        let server = Server::start(&options);
        let org = common::org_id(&server);
        let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
        std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
        let (_, token) = common::automation_with_token(&server, "crew").await;
        let mut seen = Seen::default();

        // Values distinctive enough that any copy of them is found.
        let cloud_values = [
            ("gcp", "sweep-gcp-value-5b1d0c7e"),
            ("azure", "sweep-azure-value-8e2f6a91"),
            ("aws", "sweep-aws-value-3c7a4d20"),
        ];
        for (cloud, value) in cloud_values {
            sim.admin(
                Method::POST,
                "secrets",
                Some(json!({"cloud": cloud, "name": "openai-api-key", "value": value})),
            )
            .await;
        }
        let json_password = "sweep-json-password-71c9e3";
        sim.admin(
            Method::POST,
            "secrets",
            Some(json!({"cloud": "gcp", "name": "db-credentials",
                        "value": json!({"username": "crew", "password": json_password}).to_string()})),
        )
        .await;
        let direct_secret = "sweep-direct-secret-0a9b8c7d";
        let aws_secret_key = "static-reader-secret-access-key-0123456789";
        let azure_client_secret = "static-app-client-secret-value-0123";
        let key_file = sim
            .admin(
                Method::POST,
                "gcp/service-account-keys",
                Some(json!({"email": STATIC_SA})),
            )
            .await;
        // One line of the private key's base64 body stands for all of it.
        let private_key_line = key_file["private_key"]
            .as_str()
            .unwrap()
            .lines()
            .nth(3)
            .unwrap()
            .to_owned();
        let vault = sim.vault_url("keyward-demo-vault").await;

        for config in [
            json!({"name": "gcp-wi", "cloud": "gcp", "provider": format!("{PROVIDERS}/keyward-provider")}),
            json!({"name": "azure-wi", "cloud": "azure", "tenant_id": TENANT, "client_id": APP}),
            json!({"name": "aws-wi", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/keyward-secrets-reader", "region": "us-east-1"}),
        ] {
            seen.api(
                &server,
                Method::POST,
                "/workload-identity-configs",
                Some(config),
            )
            .await;
        }
        for credential in [
            json!({"name": "gcp-wi", "provider": "gcp_secret_manager", "auth": "workload_identity", "workload_identity_config": "gcp-wi", "project": "keyward-demo"}),
            json!({"name": "azure-wi", "provider": "azure_key_vault", "auth": "workload_identity", "workload_identity_config": "azure-wi", "vault_url": vault}),
            json!({"name": "aws-wi", "provider": "aws_secrets_manager", "auth": "workload_identity", "workload_identity_config": "aws-wi", "region": "us-east-1"}),
            json!({"name": "gcp-static", "provider": "gcp_secret_manager", "auth": "static", "project": "keyward-demo",
                   "static": {"service_account_json": key_file.to_string()}}),
            json!({"name": "azure-static", "provider": "azure_key_vault", "auth": "static", "vault_url": vault,
                   "static": {"tenant_id": TENANT, "client_id": STATIC_APP, "client_secret": azure_client_secret}}),
            json!({"name": "aws-static", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
                   "static": {"access_key_id": "AKIAKEYWARDSTATIC001", "secret_access_key": aws_secret_key,
                              "role_arn": "arn:aws:iam::123456789012:role/static-assumed", "external_id": "keyward-external-id-1"}}),
        ] {
            seen.api(&server, Method::POST, "/secret-providers", Some(credential))
                .await;
        }
        // A blank static field keeps the stored one.
        seen.api(
            &server,
            Method::PATCH,
            "/secret-providers/azure-static",
            Some(json!({"static": {"tenant_id": TENANT, "client_id": STATIC_APP, "client_secret": ""}})),
        )
        .await;

        let variables = [
            json!({"key": "DIRECT_SECRET", "value": direct_secret, "secret": true}),
            json!({"key": "GCP_WI", "credential": "gcp-wi", "secret_name": "openai-api-key"}),
            json!({"key": "GCP_WI_PASSWORD", "credential": "gcp-wi", "secret_name": "db-credentials#password"}),
            json!({"key": "AZURE_WI", "credential": "azure-wi", "secret_name": "openai-api-key"}),
            json!({"key": "AWS_WI", "credential": "aws-wi", "secret_name": "openai-api-key"}),
            json!({"key": "GCP_STATIC", "credential": "gcp-static", "secret_name": "openai-api-key"}),
            json!({"key": "AZURE_STATIC", "credential": "azure-static", "secret_name": "openai-api-key"}),
            json!({"key": "AWS_STATIC", "credential": "aws-static", "secret_name": "openai-api-key"}),
        ];
        let keys: Vec<String> = variables
            .iter()
            .map(|v| v["key"].as_str().unwrap().to_owned())
            .collect();
        for variable in variables {
            seen.api(
                &server,
                Method::POST,
                "/environment-variables",
                Some(variable),
            )
            .await;
        }
        seen.api(
            &server,
            Method::PATCH,
            "/environment-variables/DIRECT_SECRET",
            Some(json!({"value": ""})),
        )
        .await;
        seen.api(
            &server,
            Method::PUT,
            "/automations/crew/environment-variables",
            Some(json!({"environment_variables": keys})),
        )
        .await;
        seen.api(&server, Method::POST, "/automations/crew/redeploy", None)
            .await;
        for name in [
            "gcp-wi",
            "azure-wi",
            "aws-wi",
            "gcp-static",
            "azure-static",
            "aws-static",
        ] {
            seen.api(
                &server,
                Method::POST,
                &format!("/secret-providers/{name}/test"),
                None,
            )
            .await;
            seen.api(
                &server,
                Method::GET,
                &format!("/secret-providers/{name}/secrets?prefix=open"),
                None,
            )
            .await;
            seen.api(
                &server,
                Method::GET,
                &format!("/secret-providers/{name}"),
                None,
            )
            .await;
        }
        seen.api(&server, Method::GET, "/secret-providers", None)
            .await;
        seen.api(&server, Method::GET, "/environment-variables", None)
            .await;
        seen.api(
            &server,
            Method::GET,
            "/environment-variables/DIRECT_SECRET",
            None,
        )
        .await;
        seen.api(
            &server,
            Method::GET,
            "/automations/crew/environment-variables",
            None,
        )
        .await;
        seen.cli(&server, &["env", "list"]);
        seen.cli(&server, &["env", "show", "DIRECT_SECRET"]);
        seen.cli(&server, &["secret-provider", "list"]);
        seen.cli(&server, &["secret-provider", "show", "aws-static"]);

        // The kickoff at debug level: the child gets every value (so they were all in play);
        // Keyward's own output must hold none of them.
        let env_dump = dir.path().join("child-env");
        let run = |seen: &mut Seen| {
            let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
                .args(["run", "--", "sh", "-c", "env > \"$DUMP\""])
                .env("DUMP", &env_dump)
                .env("KEYWARD_CLOUD_ENDPOINTS", &sim.endpoints_path)
                .env("KEYWARD_URL", &server.url)
                .env("KEYWARD_AUTOMATION_TOKEN", &token)
                .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
                .env("KEYWARD_LOG", "debug")
                .output()
                .unwrap();
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{text}");
            seen.outputs.push(text);
            std::fs::read_to_string(&env_dump).unwrap()
        };
        let child = run(&mut seen);
        let mut values: Vec<String> = cloud_values.iter().map(|(_, v)| v.to_string()).collect();
        values.extend([json_password.to_owned(), direct_secret.to_owned()]);
        for value in &values {
            assert!(
                child.contains(value),
                "the child did not get {value}:\n{child}"
            );
        }

        // Rotate in every cloud, run again (WI values change at once), redeploy (static ones too).
        for (cloud, value) in cloud_values {
            sim.admin(
                Method::POST,
                "secrets",
                Some(json!({"cloud": cloud, "name": "openai-api-key", "value": format!("{value}-rotated")})),
            )
            .await;
        }
        let child = run(&mut seen);
        assert!(
            child.contains("GCP_WI=sweep-gcp-value-5b1d0c7e-rotated"),
            "{child}"
        );
        assert!(
            child.contains("GCP_STATIC=sweep-gcp-value-5b1d0c7e\n"),
            "{child}"
        );
        seen.cli(&server, &["automation", "redeploy", "crew"]);
        let child = run(&mut seen);
        assert!(
            child.contains("AWS_STATIC=sweep-aws-value-3c7a4d20-rotated"),
            "{child}"
        );
        values.extend(cloud_values.iter().map(|(_, v)| format!("{v}-rotated")));

        // Everything that may hold a secret by mistake, and each value in the forms a leak takes.
        let audit = seen
            .api(&server, Method::GET, "/audit?limit=1000", None)
            .await;
        assert!(
            audit.to_string().contains("automation.redeployed"),
            "the audit log recorded the flows: {audit}"
        );
        let database = common::raw_database(&options).await;
        values.extend([
            aws_secret_key.to_owned(),
            azure_client_secret.to_owned(),
            private_key_line,
        ]);
        let places: Vec<(&str, String)> = vec![
            ("server log", server.stderr()),
            ("API responses", seen.responses.join("\n")),
            ("CLI and runtime output", seen.outputs.join("\n")),
            ("audit events", audit.to_string()),
        ];
        for value in &values {
            for (place, text) in &places {
                assert!(
                    !text.contains(value.as_str()),
                    "{} ({}): {place} holds the secret value {value}",
                    backend.name(),
                    "plaintext"
                );
            }
            for form in [value.as_bytes().to_vec(), hex::encode(value).into_bytes()] {
                assert!(
                    !database.windows(form.len()).any(|w| w == form.as_slice()),
                    "{}: the database holds {value} in plaintext",
                    backend.name()
                );
            }
        }
        // The sweep saw real traffic: debug logs from the server, and the runtime's log line.
        assert!(server.stderr().lines().count() > 20, "{}", server.stderr());
        assert!(
            seen.outputs.join("\n").contains("secret(s) resolved"),
            "{}",
            seen.outputs.join("\n")
        );
        drop(server);
    }
}
