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
            && err.contains("InvalidSignatureException")
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
