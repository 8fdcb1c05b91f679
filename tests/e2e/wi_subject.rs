//! Security review H3: a workload identity config's automation restriction holds end to end.
//! Keyward refuses every mint path into a config the automation may not use (a raw `audience`
//! included), and a config with `subject = automation` mints
//! `organization:<org>:automation:<id>`, so the cloud's own trust (Entra federated credential,
//! AWS `sub` condition, GCP attribute condition — here the simulator's) refuses the tokens of
//! every other automation, however they were minted (`wi_subject_cloud`). Test Connection and
//! `doctor` show the subject.

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};

pub(crate) const PROVIDERS: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers";
pub(crate) const AWS_ROLE: &str = "arn:aws:iam::123456789012:role/keyward-secrets-reader";

pub(crate) async fn api(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    common::call(
        &server.client(),
        method,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        body,
    )
    .await
}

pub(crate) async fn mint(server: &Server, token: &str, body: Value) -> (u16, Value) {
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
pub(crate) async fn minted(server: &Server, token: &str, body: Value) -> String {
    let (status, answer) = mint(server, token, body.clone()).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer["token"].as_str().unwrap().to_owned()
}

pub(crate) fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A 403 `not_assigned` whose message names `config` and says what to do.
pub(crate) fn not_assigned(result: (u16, Value), config: &str) {
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

pub(crate) async fn create_config(server: &Server, body: Value) -> Value {
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
