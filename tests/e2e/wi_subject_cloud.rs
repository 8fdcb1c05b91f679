//! Security review H3, the cloud side: with `subject = automation` on a config restricted to
//! crew-a and the simulated clouds trusting only crew-a's finer subject, crew-b's tokens — minted
//! through any other config of the same cloud — are refused by GCP STS, Entra and AWS STS with
//! their own errors; Test Connection and `doctor` show the subject each config mints.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{Sim, SimWorld};
use crate::common::{self, Server, ServerOptions};
use crate::wi_subject::{
    AWS_ROLE, PROVIDERS, api, claims, create_config, mint, minted, not_assigned,
};

/// A form POST to the simulator; the body as JSON when it is JSON, else as a string.
async fn sim_form(sim: &Sim, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = sim
        .http()
        .post(format!("{}{path}", sim.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn gcp_sts(sim: &Sim, audience: &str, jwt: &str) -> (u16, Value) {
    sim_form(
        sim,
        "/v1/token",
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("subject_token", jwt),
        ],
    )
    .await
}

async fn entra(sim: &Sim, tenant: &str, client: &str, jwt: &str) -> (u16, Value) {
    sim_form(
        sim,
        &format!("/{tenant}/oauth2/v2.0/token"),
        &[
            ("client_id", client),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt),
            ("grant_type", "client_credentials"),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await
}

async fn assume(sim: &Sim, jwt: &str) -> (u16, Value) {
    sim_form(
        sim,
        "/",
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", AWS_ROLE),
            ("RoleSessionName", "keyward-test"),
            ("WebIdentityToken", jwt),
        ],
    )
    .await
}

fn doctor(server: &Server, sim: &Sim, token: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["doctor"])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_CLOUD_ENDPOINTS", &sim.endpoints_path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_cloud_trusting_one_automations_subject_refuses_every_other_automation() {
    common::install_crypto();
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let endpoints = dir.path().join("server-endpoints.json");
        let options = ServerOptions::new(&backend, &dir.path().join("kw"))
            .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
        let server = Server::start(&options);
        let name = backend.name();
        let org = common::org_id(&server);
        let (a_id, a) = common::automation_with_token(&server, "crew-a").await;
        let (_, b) = common::automation_with_token(&server, "crew-b").await;
        // The demo world, its trust narrowed to crew-a's finer subject on all three clouds.
        let sim = Sim::start(&server, &org, SimWorld::DemoFor(&a_id));
        std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
        let azure = sim.endpoints.azure.clone().unwrap();
        let (tenant, client) = (azure.tenant_id.unwrap(), azure.client_id.unwrap());
        let provider = format!("{PROVIDERS}/keyward-provider");
        let audience = format!("//iam.googleapis.com/{provider}");
        let fine_a = format!("organization:{org}:automation:{a_id}");

        // Per cloud: X restricted to crew-a with the finer subject, and an open config beside it.
        for (cloud, fields) in [
            ("gcp", json!({"provider": provider})),
            ("azure", json!({"tenant_id": tenant, "client_id": client})),
            ("aws", json!({"role_arn": AWS_ROLE, "region": "us-east-1"})),
        ] {
            let mut x = json!({"name": format!("{cloud}-x"), "cloud": cloud,
                               "automations": ["crew-a"], "subject": "automation"});
            let mut open = json!({"name": format!("{cloud}-open"), "cloud": cloud});
            for (k, v) in fields.as_object().unwrap() {
                x[k] = v.clone();
                open[k] = v.clone();
            }
            create_config(&server, x).await;
            create_config(&server, open).await;
        }

        // A's tokens through X carry A's subject and each cloud accepts them.
        let a_gcp = minted(&server, &a, json!({"workload_identity_config": "gcp-x"})).await;
        assert_eq!(claims(&a_gcp)["sub"], json!(fine_a));
        let (status, body) = gcp_sts(&sim, &audience, &a_gcp).await;
        assert_eq!(status, 200, "{name}: {body}");
        let a_azure = minted(&server, &a, json!({"workload_identity_config": "azure-x"})).await;
        let (status, body) = entra(&sim, &tenant, &client, &a_azure).await;
        assert_eq!(status, 200, "{name}: {body}");
        let a_aws = minted(&server, &a, json!({"workload_identity_config": "aws-x"})).await;
        let (status, body) = assume(&sim, &a_aws).await;
        assert_eq!(status, 200, "{name}: {body}");

        // B cannot mint through X, and what it mints through the open configs (the same
        // audiences) carries the organization subject, which the clouds now refuse.
        for cloud in ["gcp", "azure", "aws"] {
            not_assigned(
                mint(
                    &server,
                    &b,
                    json!({"workload_identity_config": format!("{cloud}-x")}),
                )
                .await,
                &format!("{cloud}-x"),
            );
        }
        let b_gcp = minted(&server, &b, json!({"workload_identity_config": "gcp-open"})).await;
        let (status, body) = gcp_sts(&sim, &audience, &b_gcp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unauthorized_client")),
            "{name}: {body}"
        );
        assert_eq!(
            body["error_description"],
            json!(
                "PERMISSION_DENIED: The given credential is rejected by the attribute condition."
            )
        );
        let b_azure = minted(
            &server,
            &b,
            json!({"workload_identity_config": "azure-open"}),
        )
        .await;
        let (status, body) = entra(&sim, &tenant, &client, &b_azure).await;
        assert_eq!(
            (status, &body["error_codes"]),
            (401, &json!([70021])),
            "{name}: {body}"
        );
        let said = body["error_description"].as_str().unwrap();
        assert!(
            said.starts_with("AADSTS70021: No matching federated identity record found")
                && said.contains(&format!("Assertion Subject: 'organization:{org}'.")),
            "{said}"
        );
        let b_aws = minted(&server, &b, json!({"audience": "sts.amazonaws.com"})).await;
        assert_eq!(claims(&b_aws)["sub"], json!(format!("organization:{org}")));
        let (status, body) = assume(&sim, &b_aws).await;
        assert_eq!(status, 403, "{name}: {body}");
        let said = body.as_str().unwrap_or_default();
        assert!(
            said.contains("<Code>AccessDenied</Code>")
                && said.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"),
            "{said}"
        );
        // Even B's own finer subject (an open automation-subject config) is not A's.
        let (status, _) = api(
            &server,
            Method::PATCH,
            "/workload-identity-configs/aws-open",
            Some(json!({"subject": "automation"})),
        )
        .await;
        assert_eq!(status, 200);
        let b_fine = minted(&server, &b, json!({"workload_identity_config": "aws-open"})).await;
        assert_ne!(claims(&b_fine)["sub"], json!(fine_a));
        let (status, _) = assume(&sim, &b_fine).await;
        assert_eq!(status, 403, "{name}");

        // Test Connection shows the subject it minted, and for X which automation it spoke for.
        let vault = sim.vault_url("keyward-demo-vault").await;
        for (credential, config) in [("vault-x", "azure-x"), ("vault-open", "azure-open")] {
            let (status, body) = api(
                &server,
                Method::POST,
                "/secret-providers",
                Some(json!({"name": credential, "provider": "azure_key_vault",
                            "auth": "workload_identity", "workload_identity_config": config,
                            "vault_url": vault})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }
        let (status, result) = api(
            &server,
            Method::POST,
            "/secret-providers/vault-x/test",
            None,
        )
        .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["ok"], json!(true), "{name}: {result}");
        assert_eq!(result["subject"], json!(fine_a), "{result}");
        assert_eq!(result["presented"]["sub"], json!(fine_a), "{result}");
        assert!(
            result["tested_as"]
                .as_str()
                .unwrap()
                .contains("'crew-a', the config's only listed automation"),
            "{result}"
        );
        assert!(
            result["steps"][0]["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("sub {fine_a}")),
            "{result}"
        );
        let (status, result) = api(
            &server,
            Method::POST,
            "/secret-providers/vault-x/test?automation=crew-b",
            None,
        )
        .await;
        assert_eq!(
            (status, result["field"].as_str()),
            (400, Some("automation")),
            "{result}"
        );
        let (status, result) = api(
            &server,
            Method::POST,
            "/secret-providers/vault-open/test",
            None,
        )
        .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["ok"], json!(false), "{result}");
        assert_eq!(result["subject"], json!(format!("organization:{org}")));
        assert_eq!(result["steps"][1]["code"], json!("AADSTS70021"), "{result}");

        // An open automation-subject config has no one automation to default to: ask for one.
        let (status, body) = api(
            &server,
            Method::POST,
            "/secret-providers",
            Some(
                json!({"name": "aws-open-cred", "provider": "aws_secrets_manager",
                        "auth": "workload_identity", "workload_identity_config": "aws-open",
                        "region": "us-east-1"}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, result) = api(
            &server,
            Method::POST,
            "/secret-providers/aws-open-cred/test",
            None,
        )
        .await;
        assert_eq!(
            (status, result["field"].as_str()),
            (400, Some("automation")),
            "{result}"
        );
        assert!(
            result["message"]
                .as_str()
                .unwrap()
                .contains("--automation <name>"),
            "{result}"
        );
        let (status, result) = api(
            &server,
            Method::POST,
            "/secret-providers/aws-open-cred/test?automation=crew-b",
            None,
        )
        .await;
        assert_eq!((status, &result["ok"]), (200, &json!(false)), "{result}");
        assert_eq!(result["subject"], claims(&b_fine)["sub"], "{result}");

        // The same through the CLI, asking for the automation by name.
        let (ok, out, err) = common::admin_cli(
            &server,
            &[
                "secret-provider",
                "test",
                "vault-x",
                "--automation",
                "crew-a",
            ],
        );
        assert!(ok && out.contains(&fine_a), "{out}{err}");
        let (ok, out, err) = common::admin_cli(
            &server,
            &[
                "secret-provider",
                "test",
                "vault-x",
                "--automation",
                "crew-b",
            ],
        );
        assert!(
            !ok && (out + &err).contains("restricted to 'crew-a'"),
            "{name}"
        );

        // doctor names the subject of every identity it mints.
        let report = doctor(&server, &sim, &a);
        for cloud in ["gcp", "azure", "aws"] {
            assert!(
                report.contains(&format!("{cloud} — workload identity config '{cloud}-x'")),
                "{report}"
            );
        }
        assert_eq!(
            report.matches("[ok]   token minted: ").count(),
            3,
            "{report}"
        );
        assert_eq!(
            report.matches(&format!(", sub {fine_a}\n")).count(),
            3,
            "{report}"
        );
        assert!(
            report.contains("[ok]   Entra client-assertion token")
                && report.contains("[ok]   AssumeRoleWithWebIdentity")
                && report.contains("[ok]   STS token exchange"),
            "{report}"
        );
    }
}
