//! Environment variables over the API (SPEC §6): keys, the three sources, masking, blank values
//! keeping the stored one, explicit assignment — and the secret never in a response, the audit
//! log or the database.

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

const SECRET_VALUE: &str = "direct-secret-value-5c1d8e";

#[tokio::test]
async fn variables_are_validated_masked_kept_and_assigned_explicitly() {
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        common::automation_with_token(&server, "crew").await;
        common::create_as_owner(&server, "/secret-providers", json!({
            "name": "aws-static", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
            "static": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "example-secret-key"}})).await;

        let post = |body: Value| api(&server, Method::POST, "/environment-variables", Some(body));
        let (status, plain) = post(json!({"key": "LOG_LEVEL", "value": "debug"})).await;
        assert_eq!(
            (status, plain["value"].as_str(), plain["source"].as_str()),
            (201, Some("debug"), Some("direct")),
            "{plain}"
        );
        let (status, secret) =
            post(json!({"key": "API_TOKEN", "value": SECRET_VALUE, "secret": true})).await;
        assert_eq!(
            (status, secret["value"].as_str()),
            (201, Some("********")),
            "{secret}"
        );
        let (status, db) = post(json!({"key": "DB_PASSWORD", "credential": "aws-static", "secret_name": "db-credentials#password"})).await;
        assert_eq!(status, 201, "{db}");
        assert_eq!(
            (
                db["source"].as_str(),
                db["secret"].as_bool(),
                db.get("value")
            ),
            (Some("credential"), Some(true), None)
        );
        let (status, openai) = post(json!({"key": "OPENAI_API_KEY", "provider": "gcp_secret_manager", "secret_name": "openai-api-key"})).await;
        assert_eq!(
            (status, openai["source"].as_str()),
            (201, Some("provider_default")),
            "{openai}"
        );

        refused(
            post(json!({"key": "1BAD", "value": "x"})).await,
            "key",
            "^[A-Za-z_][A-Za-z0-9_]*$",
        );
        refused(
            post(json!({"key": "BAD-KEY", "value": "x"})).await,
            "key",
            "must match",
        );
        refused(
            post(json!({"key": "NO_VALUE", "source": "direct"})).await,
            "value",
            "value is required",
        );
        refused(
            post(json!({"key": "NO_PROVIDER", "source": "provider_default", "secret_name": "x"}))
                .await,
            "provider",
            "provider is required",
        );
        refused(
            post(json!({"key": "NO_NAME", "credential": "aws-static"})).await,
            "secret_name",
            "secret_name is required",
        );
        refused(
            post(json!({"key": "BAD_NAME", "credential": "aws-static", "secret_name": "db#"}))
                .await,
            "secret_name",
            "one JSON key",
        );
        refused(
            post(json!({"key": "GHOST", "credential": "nope", "secret_name": "x"})).await,
            "credential",
            "no secret provider credential 'nope'",
        );
        refused(post(json!({"key": "BOTH", "credential": "aws-static", "secret_name": "x", "value": "y"})).await, "value", "does not go with source credential");
        let (status, body) = post(json!({"key": "LOG_LEVEL", "value": "info"})).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (409, Some("key")),
            "{body}"
        );

        // A blank value keeps the stored one; a secret stays hidden unless a new value is given.
        let patch = |key: &str, body: Value| {
            let path = format!("/environment-variables/{key}");
            let server = &server;
            async move { api(server, Method::PATCH, &path, Some(body)).await }
        };
        let (status, kept) = patch("API_TOKEN", json!({"value": ""})).await;
        assert_eq!(
            (status, kept["value"].as_str()),
            (200, Some("********")),
            "{kept}"
        );
        refused(
            patch("API_TOKEN", json!({"secret": false})).await,
            "secret",
            "give a new value",
        );
        let (status, body) = patch("LOG_LEVEL", json!({"value": ""})).await;
        assert_eq!(
            (status, body["value"].as_str()),
            (200, Some("debug")),
            "{body}"
        );
        let (status, body) = patch("LOG_LEVEL", json!({"secret": true})).await;
        assert_eq!(
            (status, body["value"].as_str()),
            (200, Some("********")),
            "now secret: {body}"
        );

        // Explicit assignment, by key or id; an unknown one changes nothing.
        let assign = |list: Value| {
            api(
                &server,
                Method::PUT,
                "/automations/crew/environment-variables",
                Some(json!({"environment_variables": list})),
            )
        };
        // (DB_PASSWORD's static credential would resolve at assignment: tests/e2e/static_values.rs.)
        let (status, assigned) = assign(json!([secret["id"], "OPENAI_API_KEY", "LOG_LEVEL"])).await;
        assert_eq!(status, 200, "{assigned}");
        let keys: Vec<&str> = assigned
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["API_TOKEN", "LOG_LEVEL", "OPENAI_API_KEY"]);
        refused(
            assign(json!(["LOG_LEVEL", "MISSING"])).await,
            "environment_variables",
            "no environment variable 'MISSING'",
        );
        let (_, now) = api(
            &server,
            Method::GET,
            "/automations/crew/environment-variables",
            None,
        )
        .await;
        assert_eq!(now.as_array().unwrap().len(), 3, "{now}");
        assert!(now.to_string().contains("********"));

        // A credential in use stays.
        let (status, body) = api(
            &server,
            Method::DELETE,
            "/secret-providers/aws-static",
            None,
        )
        .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("used by an environment variable"),
            "{body}"
        );

        // The secret value is nowhere in plaintext.
        let (_, list) = api(&server, Method::GET, "/environment-variables", None).await;
        let (_, audit) = api(&server, Method::GET, "/audit?limit=1000", None).await;
        let raw = common::raw_database(&options).await;
        assert!(
            !list.to_string().contains(SECRET_VALUE) && !audit.to_string().contains(SECRET_VALUE)
        );
        assert!(
            !raw.windows(SECRET_VALUE.len())
                .any(|w| w == SECRET_VALUE.as_bytes()),
            "{}: plaintext in the database",
            backend.name()
        );
        assert!(audit.to_string().contains("environment_variables.assigned"));
        drop(server);
    }
}

#[tokio::test]
async fn the_secret_provider_and_env_commands_manage_credentials_variables_and_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&common::Backend::Sqlite, dir.path()));
    common::automation_with_token(&server, "crew").await;
    let (ok, out, err) = common::admin_cli(
        &server,
        &[
            "secret-provider",
            "create",
            "--name",
            "aws-static",
            "--provider",
            "aws_secrets_manager",
            "--auth",
            "static",
            "--region",
            "us-east-1",
            "--static",
            "access_key_id=AKIAEXAMPLE",
            "--static",
            &format!("secret_access_key={SECRET_VALUE}"),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("\"static_configured\": true") && !out.contains(SECRET_VALUE),
        "{out}"
    );
    let (ok, _, err) = common::admin_cli(
        &server,
        &[
            "secret-provider",
            "create",
            "--name",
            "bad",
            "--provider",
            "aws_secrets_manager",
            "--auth",
            "static",
            "--region",
            "us-east-1",
            "--static",
            "access_key_id=AKIA",
        ],
    );
    assert!(
        !ok && err.contains("field static") && err.contains("secret_access_key is required"),
        "{err}"
    );

    let (ok, out, err) = common::admin_cli(
        &server,
        &[
            "env",
            "create",
            "API_TOKEN",
            "--value",
            SECRET_VALUE,
            "--secret",
        ],
    );
    assert!(
        ok && out.contains("********") && !out.contains(SECRET_VALUE),
        "{out}{err}"
    );
    let (ok, _, err) = common::admin_cli(
        &server,
        &[
            "env",
            "create",
            "DB_PASSWORD",
            "--credential",
            "aws-static",
            "--secret-name",
            "db-credentials#password",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = common::admin_cli(&server, &["env", "create", "1BAD", "--value", "x"]);
    assert!(!ok && err.contains("field key"), "{err}");
    let (ok, out, err) = common::admin_cli(&server, &["env", "assign", "crew", "API_TOKEN"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("key=API_TOKEN") && out.contains("value=********"),
        "{out}"
    );
    let (ok, out, _) = common::admin_cli(&server, &["env", "list"]);
    assert!(ok && !out.contains(SECRET_VALUE), "{out}");
    let (ok, _, err) = common::admin_cli(&server, &["secret-provider", "delete", "aws-static"]);
    assert!(
        !ok && err.contains("used by an environment variable"),
        "{err}"
    );
}
