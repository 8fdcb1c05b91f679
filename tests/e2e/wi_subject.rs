//! Security review H3: a workload identity config's automation restriction holds end to end.
//! Keyward refuses every mint path into a config the automation may not use (a raw `audience`
//! included), and a config with `subject = automation` mints
//! `organization:<org>:automation:<id>`, so the cloud's own trust (Entra federated credential,
//! AWS `sub` condition, GCP attribute condition — here the simulator's) refuses the tokens of
//! every other automation, however they were minted. Test Connection and `doctor` show the
//! subject.

use std::process::Command;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{Sim, SimWorld};
use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};

const PROVIDERS: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers";
const AWS_ROLE: &str = "arn:aws:iam::123456789012:role/keyward-secrets-reader";

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

async fn mint(server: &Server, token: &str, body: Value) -> (u16, Value) {
    common::call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/workload-identity/token", server.url),
        Some(token),
        Some(body),
    )
    .await
}

/// The token of a mint that must succeed.
async fn minted(server: &Server, token: &str, body: Value) -> String {
    let (status, answer) = mint(server, token, body.clone()).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer["token"].as_str().unwrap().to_owned()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A 403 `not_assigned` whose message names `config` and says what to do.
fn not_assigned(result: (u16, Value), config: &str) {
    let (status, body) = result;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("not_assigned")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("'{config}'")) && message.contains("add this automation"),
        "{message}"
    );
}

async fn create_config(server: &Server, body: Value) -> Value {
    let (status, created) = api(
        server,
        Method::POST,
        "/workload-identity-configs",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn no_mint_path_reaches_a_config_restricted_to_another_automation() {
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let name = backend.name();
        let org = common::org_id(&server);
        let (a_id, a) = common::automation_with_token(&server, "crew-a").await;
        let (b_id, b) = common::automation_with_token(&server, "crew-b").await;
        let x_audience = format!("//iam.googleapis.com/{PROVIDERS}/x-provider");

        // No config covers AWS yet: the quickstart's plain mint keeps working for anyone.
        let jwt = minted(&server, &b, json!({"audience": "sts.amazonaws.com"})).await;
        assert_eq!(claims(&jwt)["sub"], json!(format!("organization:{org}")));

        // X: a GCP identity restricted to crew-a; a Vertex connection on X assigned to crew-b.
        let x = create_config(
            &server,
            json!({"name": "x", "cloud": "gcp", "provider": format!("{PROVIDERS}/x-provider"),
                   "automations": ["crew-a"]}),
        )
        .await;
        assert_eq!(x["subject"], json!("organization"), "{name}: {x}");
        let (status, connection) = api(
            &server,
            Method::POST,
            "/llm-connections",
            Some(
                json!({"name": "vertex-x", "provider": "vertex", "workload_identity_config": "x",
                        "model": "google/gemini-2.0-flash", "automations": ["crew-b"]}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{connection}");

        // The review's attack: B asks for X's audience directly, or through the connection.
        not_assigned(
            mint(&server, &b, json!({"audience": x_audience.clone()})).await,
            "x",
        );
        not_assigned(
            mint(&server, &b, json!({"llm_connection": "vertex-x"})).await,
            "x",
        );
        not_assigned(
            mint(&server, &b, json!({"workload_identity_config": "x"})).await,
            "x",
        );
        // A may: X's audience raw is X's token.
        let jwt = minted(&server, &a, json!({"audience": x_audience.clone()})).await;
        assert_eq!(claims(&jwt)["aud"], json!(x_audience));
        // The kickoff plan hands B no identity for X either.
        let (status, plan) = common::call(
            &server.client(),
            Method::POST,
            &format!("{}/api/v1/runtime/kickoff", server.url),
            Some(&b),
            None,
        )
        .await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(plan["identities"], json!([]), "{name}: {plan}");

        // AWS: a config restricted to crew-a now covers sts.amazonaws.com — B's raw mint stops.
        create_config(
            &server,
            json!({"name": "aws-a", "cloud": "aws", "role_arn": AWS_ROLE, "region": "us-east-1",
                   "automations": ["crew-a"], "subject": "automation"}),
        )
        .await;
        not_assigned(
            mint(&server, &b, json!({"audience": "sts.amazonaws.com"})).await,
            "aws-a",
        );
        // Through its own config A carries its finer subject; raw too (the only config it may use).
        let fine_a = format!("organization:{org}:automation:{a_id}");
        let jwt = minted(&server, &a, json!({"workload_identity_config": "aws-a"})).await;
        let c = claims(&jwt);
        assert_eq!(
            (&c["sub"], &c["automation_id"], &c["organization_id"]),
            (&json!(fine_a), &json!(a_id), &json!(org)),
            "{name}: {c}"
        );
        let jwt = minted(&server, &a, json!({"audience": "sts.amazonaws.com"})).await;
        assert_eq!(claims(&jwt)["sub"], json!(fine_a));

        // An unrestricted automation-subject config: B may mint, but only ever its own subject.
        create_config(
            &server,
            json!({"name": "aws-open", "cloud": "aws", "role_arn": AWS_ROLE, "region": "us-east-1",
                   "subject": "automation"}),
        )
        .await;
        let fine_b = format!("organization:{org}:automation:{b_id}");
        for body in [
            json!({"audience": "sts.amazonaws.com"}),
            json!({"workload_identity_config": "aws-open"}),
        ] {
            let jwt = minted(&server, &b, body).await;
            assert_eq!(claims(&jwt)["sub"], json!(fine_b), "{name}");
        }

        // The subject mode is validated, shown back and changeable, from the API and the CLI.
        let (ok, out, err) = common::admin_cli(
            &server,
            &[
                "wi",
                "create",
                "--name",
                "aws-cli",
                "--cloud",
                "aws",
                "--role-arn",
                AWS_ROLE,
                "--region",
                "us-east-1",
                "--subject",
                "automation",
            ],
        );
        assert!(ok && out.contains("automation"), "{out}{err}");
        let (_, shown) = api(
            &server,
            Method::GET,
            "/workload-identity-configs/aws-cli",
            None,
        )
        .await;
        assert_eq!(shown["subject"], json!("automation"), "{name}: {shown}");
        let (ok, _, _) = common::admin_cli(
            &server,
            &["wi", "update", "aws-cli", "--subject", "organization"],
        );
        assert!(ok);
        let (_, shown) = api(
            &server,
            Method::GET,
            "/workload-identity-configs/aws-cli",
            None,
        )
        .await;
        assert_eq!(shown["subject"], json!("organization"), "{name}: {shown}");
        let (status, body) = api(
            &server,
            Method::POST,
            "/workload-identity-configs",
            Some(json!({"name": "bad", "cloud": "aws", "role_arn": AWS_ROLE,
                        "region": "us-east-1", "subject": "config"})),
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("subject")),
            "{body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("'automation'"),
            "{body}"
        );
        let (status, body) = api(
            &server,
            Method::PATCH,
            "/workload-identity-configs/x",
            Some(json!({"subject": "automation"})),
        )
        .await;
        assert_eq!(
            (status, &body["subject"]),
            (200, &json!("automation")),
            "{body}"
        );
        let (_, shown) = api(&server, Method::GET, "/workload-identity-configs/x", None).await;
        assert_eq!(shown["subject"], json!("automation"), "{name}: {shown}");
        // A's connection to X now mints its finer subject too (add A to the connection).
        let (status, body) = api(
            &server,
            Method::PATCH,
            "/llm-connections/vertex-x",
            Some(json!({"automations": ["crew-a", "crew-b"]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let jwt = minted(&server, &a, json!({"llm_connection": "vertex-x"})).await;
        assert_eq!(claims(&jwt)["sub"], json!(fine_a), "{name}");
        not_assigned(
            mint(&server, &b, json!({"llm_connection": "vertex-x"})).await,
            "x",
        );
    }
}

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
