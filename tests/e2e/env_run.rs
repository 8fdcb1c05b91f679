//! Security review L6 and newcomer trial B2-B3, continued from `env_reserved.rs`: the caller's
//! Keyward secrets stay out of `keyward run`'s child, a NUL byte stops a kickoff naming the
//! variable, and referencing a credential takes read on secret providers.

use keyward_core::OrgId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim::server_and_sim;
use crate::cloudsim_env::{Sim, SimWorld, world};
use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};
use crate::env_reserved::{direct_row, env_of, member, runtime, text};
use crate::rbac::{self, Api};
use crate::run;

/// A token-shaped value: a prefix and 43 base64url characters.
fn token_like(prefix: &str) -> String {
    format!("{prefix}{}", "A1b2C3d4E5".repeat(5).get(..43).unwrap())
}

#[tokio::test]
async fn run_keeps_the_callers_keyward_secrets_from_the_child() {
    let (server, token, sim, _dir) = server_and_sim(|_, _| None).await;
    run::configure(&server, &sim).await;
    let pat = token_like("kwp_");
    let out = runtime(&server, &sim, &token, &["run", "--", "env"])
        // The README's flow exports these in the shell that runs `keyward run` (trial B2).
        .env("KEYWARD_TOKEN", &pat)
        .env("KEYWARD_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN)
        .env("KEYWARD_MASTER_KEY", "bWFzdGVyLWtleS1mb3ItdGVzdHM")
        .env("KEYWARD_DATABASE_URL", "postgres://keyward:pw@db/keyward")
        .env("SAVED_PAT", token_like("kwp_"))
        .env("CI_TOKEN", token_like("kwa_"))
        .env(
            "AUTH_HEADER",
            format!("Authorization: Bearer {}", token_like("kwsess_")),
        )
        .env("ORDINARY", "kept")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let env = env_of(&stdout);
    for gone in [
        "KEYWARD_TOKEN",
        "KEYWARD_BOOTSTRAP_TOKEN",
        "KEYWARD_AUTOMATION_TOKEN",
        "KEYWARD_MASTER_KEY",
        "KEYWARD_DATABASE_URL",
        "SAVED_PAT",
        "CI_TOKEN",
        "AUTH_HEADER",
    ] {
        assert!(
            !env.contains_key(gone),
            "{gone} reached the child:\n{stdout}"
        );
    }
    for prefix in ["kwp_", "kwa_", "kwsess_"] {
        assert!(!stdout.contains(prefix), "{prefix} in\n{stdout}");
    }
    assert_eq!(env.get("ORDINARY"), Some(&"kept"));
    assert_eq!(env.get("KEYWARD_URL"), Some(&server.url.as_str()));
}

#[tokio::test]
async fn a_nul_byte_from_a_secret_or_an_old_row_stops_the_kickoff_naming_the_variable() {
    let (server, token, sim, dir) = server_and_sim(|_, _| None).await;
    run::configure(&server, &sim).await;
    common::create_as_owner(
        &server,
        "/secret-providers",
        json!({"name": "aws-sm", "provider": "aws_secrets_manager", "auth": "workload_identity",
               "workload_identity_config": "aws", "region": "us-east-1"}),
    )
    .await;
    sim.admin(
        Method::POST,
        "secrets",
        Some(json!({"cloud": "aws", "name": "nul-secret", "value": "a\u{0}b"})),
    )
    .await;
    common::create_as_owner(
        &server,
        "/environment-variables",
        json!({"key": "NULSECRET", "credential": "aws-sm", "secret_name": "nul-secret"}),
    )
    .await;
    let assign = |keys: Value| {
        let server = &server;
        async move {
            common::call(
                &server.client(),
                Method::PUT,
                &format!(
                    "{}/api/v1/automations/crew/environment-variables",
                    server.url
                ),
                Some(BOOTSTRAP_TOKEN),
                Some(json!({"environment_variables": keys})),
            )
            .await
        }
    };
    let (status, body) = assign(json!(["NULSECRET"])).await;
    assert_eq!(status, 200, "{body}");
    let out = runtime(&server, &sim, &token, &["run", "--", "true"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "not 127: {stderr}");
    assert!(
        stderr.contains("NULSECRET")
            && stderr.contains("nul-secret")
            && stderr.contains("NUL byte"),
        "{stderr}"
    );
    assert!(!stderr.contains("nul byte found"), "{stderr}");

    // A direct value an older Keyward stored with a NUL (SQLite keeps it; PostgreSQL text
    // cannot hold one): named by run and by doctor.
    let store = rbac::open_store(&common::Backend::Sqlite, &dir.path().join("kw")).await;
    let org: OrgId = common::org_id(&server).parse().unwrap();
    store
        .create_env_var(&direct_row(org, "NULVAL", "a\u{0}b"))
        .await
        .unwrap();
    let (status, body) = assign(json!(["NULVAL"])).await;
    assert_eq!(status, 200, "{body}");
    let out = runtime(&server, &sim, &token, &["run", "--", "true"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NULVAL") && stderr.contains("NUL byte"),
        "{stderr}"
    );
    assert!(!stderr.contains("nul byte found"), "{stderr}");
    let out = runtime(&server, &sim, &token, &["doctor", "--automation", "crew"])
        .output()
        .unwrap();
    let (report, _) = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("[FAIL] value of NULVAL"), "{report}");
}

#[tokio::test]
async fn referencing_a_credential_takes_read_on_secret_providers() {
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let store = rbac::open_store(&backend, dir.path()).await;
        let api = Api {
            server: &server,
            client: server.client(),
            org: common::org_id(&server),
        };
        common::create_as_owner(&server, "/secret-providers", json!({
            "name": "aws-static", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
            "default_for_provider": true,
            "static": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "example-secret-key"}}))
        .await;
        common::create_as_owner(
            &server,
            "/environment-variables",
            json!({"key": "DB_PASSWORD", "credential": "aws-static", "secret_name": "db#password"}),
        )
        .await;
        api.owner(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "env-user",
                "grants": {"environment_variables": "manage", "secret_providers": "read"}})),
            201,
        )
        .await;
        let mallory = member(&api, store.as_ref(), "mallory@acme.example").await;
        let (_, erin) = rbac::person(store.as_ref(), "erin@acme.example").await;
        api.owner(
            Method::POST,
            "/api/v1/members",
            Some(json!({"email": "erin@acme.example", "role": "env-user"})),
            201,
        )
        .await;

        for body in [
            json!({"key": "STOLEN", "credential": "aws-static", "secret_name": "db#password"}),
            json!({"key": "STOLEN", "provider": "aws_secrets_manager", "secret_name": "db"}),
            json!({"key": "STOLEN", "credential": "no-such-credential", "secret_name": "db"}),
        ] {
            let (status, answer) = api
                .call(
                    &mallory,
                    Method::POST,
                    "/api/v1/environment-variables",
                    Some(body.clone()),
                )
                .await;
            assert_eq!(status, 403, "{}: {body}: {answer}", backend.name());
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("secret_providers"),
                "{answer}"
            );
        }
        // Pointing an existing reference at another secret is using the credential too.
        let (status, answer) = api
            .call(
                &mallory,
                Method::PATCH,
                "/api/v1/environment-variables/DB_PASSWORD",
                Some(json!({"secret_name": "other-secret"})),
            )
            .await;
        assert_eq!(status, 403, "{answer}");
        // Direct values stay the Member's to manage.
        let (status, answer) = api
            .call(
                &mallory,
                Method::POST,
                "/api/v1/environment-variables",
                Some(json!({"key": "LOG_LEVEL", "value": "debug"})),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        // With read on secret_providers, as the reference's "What to Grant" table has it.
        let (status, answer) = api
            .call(
                &erin,
                Method::POST,
                "/api/v1/environment-variables",
                Some(json!({"key": "API_KEY", "credential": "aws-static", "secret_name": "api"})),
            )
            .await;
        assert_eq!(status, 201, "{}: {answer}", backend.name());
    }
}

#[tokio::test]
async fn a_static_backed_value_with_a_nul_byte_is_refused_at_assignment_naming_it() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("server-endpoints.json");
    let options = ServerOptions::new(&common::Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    let org = common::org_id(&server);
    let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
    std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
    common::automation_with_token(&server, "crew").await;
    common::create_as_owner(
        &server,
        "/secret-providers",
        json!({"name": "aws-static",
        "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
        "static": {"access_key_id": "AKIAKEYWARDSTATIC001",
                   "secret_access_key": "static-reader-secret-access-key-0123456789"}}),
    )
    .await;
    sim.admin(
        Method::POST,
        "secrets",
        Some(json!({"cloud": "aws", "name": "openai-api-key", "value": "sk-\u{0}x"})),
    )
    .await;
    common::create_as_owner(
        &server,
        "/environment-variables",
        json!({"key": "OPENAI_API_KEY", "credential": "aws-static", "secret_name": "openai-api-key"}),
    )
    .await;
    let (status, body) = common::call(
        &server.client(),
        Method::PUT,
        &format!(
            "{}/api/v1/automations/crew/environment-variables",
            server.url
        ),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"environment_variables": ["OPENAI_API_KEY"]})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("environment_variables")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("OPENAI_API_KEY") && message.contains("NUL byte"),
        "{message}"
    );
}
