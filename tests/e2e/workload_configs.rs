//! Workload identity configs and LLM connections over the API (SPEC §4): every validation with
//! its reason, one default per cloud, the automation restriction, and minting by config or
//! connection with the audience Keyward computes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};

const PROVIDER: &str = "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc";
const SA: &str = "keyward-vertex@keyward-demo.iam.gserviceaccount.com";

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

async fn mint_with(server: &Server, token: &str, body: Value) -> (u16, Value) {
    common::call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/workload-identity/token", server.url),
        Some(token),
        Some(body),
    )
    .await
}

/// A 400 that names the field and says why.
fn refused(result: (u16, Value), field: &str, words: &str) {
    let (status, body) = result;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], json!(field), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "expected {words:?} in {message:?}");
}

#[tokio::test]
async fn configs_and_connections_are_validated_and_mint_with_the_computed_audience() {
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let name = backend.name();
        let (_, crew_token) = common::automation_with_token(&server, "crew").await;
        let (_, other_token) = common::automation_with_token(&server, "other-crew").await;

        // Good configs of each cloud; the GCP one restricted to `crew`.
        let (status, gcp) = api(
            &server,
            Method::POST,
            "/workload-identity-configs",
            Some(
                json!({"name": "gcp-prod", "cloud": "gcp", "provider": PROVIDER,
                        "default_for_cloud": true, "automations": ["crew"]}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{name}: {gcp}");
        assert_eq!(gcp["project_number"], json!("123456789012"));
        assert_eq!(
            gcp["audience"],
            json!(format!("//iam.googleapis.com/{PROVIDER}"))
        );
        assert_eq!(gcp["automations"], json!(["crew"]));
        let (status, azure) = api(
            &server,
            Method::POST,
            "/workload-identity-configs",
            Some(json!({"name": "azure-prod", "cloud": "azure",
                        "tenant_id": "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00",
                        "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"})),
        )
        .await;
        assert_eq!(status, 201, "{azure}");
        assert_eq!(azure["audience"], json!("api://AzureADTokenExchange"));
        let (status, aws) = api(
            &server,
            Method::POST,
            "/workload-identity-configs",
            Some(json!({"name": "aws-prod", "cloud": "aws",
                        "role_arn": "arn:aws:iam::123456789012:role/keyward-secrets-reader",
                        "region": "us-east-1", "default_for_cloud": true})),
        )
        .await;
        assert_eq!(status, 201, "{aws}");

        // Acceptance d of the runtime issue: each refusal names its reason.
        refused(
            api(&server, Method::POST, "/workload-identity-configs", Some(json!({
                "name": "gcp-id", "cloud": "gcp",
                "provider": "projects/keyward-demo/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc"}))).await,
            "provider",
            "project NUMBER",
        );
        let (status, body) = api(
            &server,
            Method::POST,
            "/workload-identity-configs",
            Some(json!({"name": "gcp-second", "cloud": "gcp", "provider": PROVIDER, "default_for_cloud": true})),
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("default_for_cloud")),
            "{name}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("already has a default gcp config"),
            "{body}"
        );
        refused(
            api(&server, Method::POST, "/workload-identity-configs", Some(json!({
                "name": "aws-user", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:user/bob", "region": "us-east-1"}))).await,
            "role_arn",
            "name a role",
        );
        refused(
            api(
                &server,
                Method::POST,
                "/workload-identity-configs",
                Some(json!({
                "name": "mixed", "cloud": "aws", "provider": PROVIDER, "region": "us-east-1"})),
            )
            .await,
            "provider",
            "does not apply to a aws config",
        );
        refused(
            api(&server, Method::POST, "/workload-identity-configs", Some(json!({
                "name": "no-tenant", "cloud": "azure", "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}))).await,
            "tenant_id",
            "required for a azure config",
        );
        refused(
            api(&server, Method::POST, "/workload-identity-configs", Some(json!({
                "name": "ghost", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/r", "region": "us-east-1",
                "automations": ["no-such-crew"]}))).await,
            "automations",
            "no automation 'no-such-crew'",
        );

        let vertex = json!({"name": "vertex", "provider": "vertex", "workload_identity_config": "gcp-prod",
                            "service_account_email": SA, "model": "google/gemini-2.0-flash",
                            "env": {"GOOGLE_CLOUD_LOCATION": "global"}, "automations": ["crew"]});
        let mut bad = vertex.clone();
        bad["model"] = json!("vertex_ai/gemini-2.0-flash");
        refused(
            api(&server, Method::POST, "/llm-connections", Some(bad)).await,
            "model",
            "vertex_ai/",
        );
        let mut bad = vertex.clone();
        bad["provider"] = json!("openai");
        bad["service_account_email"] = Value::Null;
        refused(
            api(&server, Method::POST, "/llm-connections", Some(bad)).await,
            "workload_identity_config",
            "GCP workload identity config can only be attached to a Vertex",
        );
        let mut bad = vertex.clone();
        bad["service_account_email"] = json!("keyward-vertex");
        refused(
            api(&server, Method::POST, "/llm-connections", Some(bad)).await,
            "service_account_email",
            "not a service account email",
        );
        let mut bad = vertex.clone();
        bad["env"] = json!({"GOOGLE_API_KEY": "AIza-not-wanted"});
        refused(
            api(&server, Method::POST, "/llm-connections", Some(bad)).await,
            "env",
            "GOOGLE_API_KEY",
        );
        let (status, connection) =
            api(&server, Method::POST, "/llm-connections", Some(vertex)).await;
        assert_eq!(status, 201, "{connection}");
        assert_eq!(connection["workload_identity_config"], json!("gcp-prod"));
        assert_eq!(
            connection["env"],
            json!({"GOOGLE_CLOUD_LOCATION": "global"})
        );

        // Mint by config or connection: the audience is computed, the restriction holds.
        let (status, minted) = mint_with(
            &server,
            &crew_token,
            json!({"workload_identity_config": "gcp-prod"}),
        )
        .await;
        assert_eq!(status, 200, "{minted}");
        assert_eq!(
            minted["audience"],
            json!(format!("//iam.googleapis.com/{PROVIDER}"))
        );
        let (status, minted) =
            mint_with(&server, &crew_token, json!({"llm_connection": "vertex"})).await;
        assert_eq!(
            (status, &minted["audience"]),
            (200, &gcp["audience"]),
            "{minted}"
        );
        let (status, minted) = mint_with(
            &server,
            &other_token,
            json!({"workload_identity_config": "aws-prod"}),
        )
        .await;
        assert_eq!(
            (status, minted["audience"].as_str()),
            (200, Some("sts.amazonaws.com")),
            "{minted}"
        );
        let (status, body) = mint_with(
            &server,
            &other_token,
            json!({"workload_identity_config": "gcp-prod"}),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("not_assigned")),
            "{body}"
        );
        let (status, body) =
            mint_with(&server, &other_token, json!({"llm_connection": "vertex"})).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = mint_with(
            &server,
            &crew_token,
            json!({"audience": "sts.amazonaws.com", "workload_identity_config": "aws-prod"}),
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("audience")),
            "{body}"
        );
        let (status, _) = mint_with(
            &server,
            &crew_token,
            json!({"workload_identity_config": "nope"}),
        )
        .await;
        assert_eq!(status, 404);

        // Update: a field of the same cloud, never the cloud; the default moves.
        let (status, body) = api(
            &server,
            Method::PATCH,
            "/workload-identity-configs/aws-prod",
            Some(json!({"cloud": "gcp"})),
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("cloud")),
            "{body}"
        );
        let (status, body) = api(
            &server,
            Method::PATCH,
            "/workload-identity-configs/aws-prod",
            Some(json!({"region": "eu-west-1", "default_for_cloud": false})),
        )
        .await;
        assert_eq!(
            (status, body["region"].as_str()),
            (200, Some("eu-west-1")),
            "{body}"
        );
        assert_eq!(body["role_arn"], aws["role_arn"], "untouched fields stay");

        // A config used by a connection stays until the connection lets go.
        let (status, body) = api(
            &server,
            Method::DELETE,
            "/workload-identity-configs/gcp-prod",
            None,
        )
        .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("used by an LLM connection"),
            "{body}"
        );
        let (status, body) = api(
            &server,
            Method::PATCH,
            "/llm-connections/vertex",
            Some(json!({"workload_identity_config": "", "service_account_email": ""})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("workload_identity_config").is_none(), "{body}");
        let (status, _) = api(
            &server,
            Method::DELETE,
            "/workload-identity-configs/gcp-prod",
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (status, list) = api(&server, Method::GET, "/workload-identity-configs", None).await;
        assert_eq!(status, 200);
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["aws-prod", "azure-prod"]);

        // Audited, with names and no secrets.
        let (_, audit) = api(
            &server,
            Method::GET,
            "/audit?type=workload_identity_config.created",
            None,
        )
        .await;
        assert!(audit.to_string().contains("gcp-prod"), "{audit}");
        drop(server);
    }
}

async fn kickoff(server: &Server, token: &str) -> Value {
    let (status, plan) = common::call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/runtime/kickoff", server.url),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    plan
}

fn by_cloud(plan: &Value) -> std::collections::BTreeMap<String, Value> {
    plan["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["cloud"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

#[tokio::test]
async fn the_kickoff_plan_picks_one_identity_per_cloud_and_tokens_carry_its_kickoff_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&common::Backend::Sqlite, dir.path()));
    let (_, crew) = common::automation_with_token(&server, "crew").await;
    let (_, other) = common::automation_with_token(&server, "other-crew").await;
    let provider = |id: &str| {
        format!(
            "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers/{id}"
        )
    };
    for config in [
        json!({"name": "gcp-default", "cloud": "gcp", "provider": provider("default-oidc"), "default_for_cloud": true}),
        json!({"name": "gcp-vertex", "cloud": "gcp", "provider": provider("vertex-oidc")}),
        json!({"name": "azure-default", "cloud": "azure", "default_for_cloud": true,
               "tenant_id": "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00", "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}),
        json!({"name": "aws-other", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/other",
               "region": "eu-west-1", "automations": ["other-crew"]}),
    ] {
        let (status, body) = api(
            &server,
            Method::POST,
            "/workload-identity-configs",
            Some(config),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = api(
        &server,
        Method::POST,
        "/llm-connections",
        Some(json!({
        "name": "vertex", "provider": "vertex", "workload_identity_config": "gcp-vertex",
        "service_account_email": SA, "model": "google/gemini-2.0-flash",
        "env": {"GOOGLE_CLOUD_LOCATION": "global"}, "automations": ["crew"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let plan = kickoff(&server, &crew).await;
    assert_eq!(plan["automation"]["name"], json!("crew"));
    let ids = by_cloud(&plan);
    assert_eq!(ids.keys().collect::<Vec<_>>(), ["azure", "gcp"], "{plan}");
    assert_eq!(
        ids["gcp"]["config"],
        json!("gcp-vertex"),
        "the connection's identity wins"
    );
    assert_eq!(ids["gcp"]["service_account_email"], json!(SA));
    assert_eq!(ids["gcp"]["project_number"], json!("123456789012"));
    assert_eq!(
        ids["azure"]["audience"],
        json!("api://AzureADTokenExchange")
    );
    assert_eq!(
        plan["llm_connections"][0]["env"]["GOOGLE_CLOUD_LOCATION"],
        json!("global")
    );

    let plan_other = kickoff(&server, &other).await;
    let ids_other = by_cloud(&plan_other);
    assert_eq!(ids_other["gcp"]["config"], json!("gcp-default"));
    assert!(ids_other["gcp"].get("service_account_email").is_none());
    assert_eq!(ids_other["aws"]["config"], json!("aws-other"));
    assert_eq!(ids_other["aws"]["region"], json!("eu-west-1"));
    assert_eq!(plan_other["llm_connections"], json!([]));
    assert_ne!(plan["kickoff_id"], plan_other["kickoff_id"]);

    // The token carries the kickoff id; the audit event names it.
    let kickoff_id = plan["kickoff_id"].as_str().unwrap();
    let (status, minted) = mint_with(
        &server,
        &crew,
        json!({"workload_identity_config": "gcp-vertex", "kickoff_id": kickoff_id}),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    let jwks = common::jwks(&server).await;
    let claims = common::verify(
        minted["token"].as_str().unwrap(),
        &jwks,
        &server.url,
        ids["gcp"]["audience"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(claims["kickoff_id"], json!(kickoff_id));
    assert_eq!(claims["automation_name"], json!("crew"));
    let (_, audit) = api(
        &server,
        Method::GET,
        "/audit?type=workload_token.minted",
        None,
    )
    .await;
    assert!(audit.to_string().contains(kickoff_id), "{audit}");
    let (_, audit) = api(&server, Method::GET, "/audit?type=kickoff.planned", None).await;
    assert!(audit.to_string().contains(kickoff_id), "{audit}");
    let (status, body) = mint_with(
        &server,
        &crew,
        json!({"workload_identity_config": "gcp-vertex", "kickoff_id": "42"}),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("kickoff_id")),
        "{body}"
    );
    // People cannot ask for a kickoff plan.
    let (status, _) = api(&server, Method::POST, "/runtime/kickoff", None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_wi_and_llm_commands_manage_configs_and_connections_and_report_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&common::Backend::Sqlite, dir.path()));
    common::automation_with_token(&server, "crew").await;
    let (ok, out, err) = common::admin_cli(
        &server,
        &[
            "wi",
            "create",
            "--name",
            "gcp-prod",
            "--cloud",
            "gcp",
            "--provider",
            PROVIDER,
            "--default",
            "--automation",
            "crew",
        ],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["project_number"], json!("123456789012"));
    assert_eq!(created["automations"], json!(["crew"]));

    let (ok, _, err) = common::admin_cli(
        &server,
        &[
            "wi",
            "create",
            "--name",
            "gcp-id",
            "--cloud",
            "gcp",
            "--provider",
            "projects/my-project/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("field provider") && err.contains("project NUMBER"),
        "{err}"
    );

    let (ok, out, err) = common::admin_cli(
        &server,
        &[
            "llm",
            "create",
            "--name",
            "vertex",
            "--provider",
            "vertex",
            "--wi-config",
            "gcp-prod",
            "--service-account",
            SA,
            "--model",
            "google/gemini-2.0-flash",
            "--env",
            "GOOGLE_CLOUD_LOCATION=global",
            "--automation",
            "crew",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("\"GOOGLE_CLOUD_LOCATION\": \"global\""),
        "{out}"
    );
    let (ok, _, err) = common::admin_cli(
        &server,
        &[
            "llm",
            "update",
            "vertex",
            "--model",
            "vertex_ai/gemini-2.0-flash",
        ],
    );
    assert!(
        !ok && err.contains("field model") && err.contains("google/<model-name>"),
        "{err}"
    );

    let (ok, out, _) = common::admin_cli(&server, &["wi", "list"]);
    assert!(ok);
    assert!(
        out.contains("name=gcp-prod")
            && out.contains("cloud=gcp")
            && out.contains("default_for_cloud=true"),
        "{out}"
    );
    let (ok, out, err) = common::admin_cli(
        &server,
        &[
            "wi",
            "update",
            "gcp-prod",
            "--default",
            "false",
            "--automation",
            "",
        ],
    );
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            updated["default_for_cloud"].clone(),
            updated["automations"].clone()
        ),
        (json!(false), json!([]))
    );
    let (ok, _, err) = common::admin_cli(&server, &["wi", "delete", "gcp-prod"]);
    assert!(!ok && err.contains("used by an LLM connection"), "{err}");
    let (ok, out, _) = common::admin_cli(&server, &["llm", "delete", "vertex"]);
    assert!(ok && out.contains("deleted LLM connection 'vertex'"));
    let (ok, _, _) = common::admin_cli(&server, &["wi", "delete", "gcp-prod"]);
    assert!(ok);
    let (ok, _, err) = common::admin_cli(&server, &["wi", "show", "gcp-prod"]);
    assert!(!ok && err.contains("404"), "{err}");
}
