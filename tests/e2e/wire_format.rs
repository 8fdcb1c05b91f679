//! Wire details a client relies on: every timestamp in an API answer is RFC 3339 text, and the
//! JSON log carries field values, not Rust debug strings.

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::*;

/// Every `*_at` (and `at`) field in `value`, at any depth, with its JSON path.
fn timestamps(value: &Value, path: &str, found: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, field) in map {
                let here = format!("{path}.{key}");
                if (key == "at" || key.ends_with("_at")) && !field.is_null() {
                    found.push((here.clone(), field.clone()));
                }
                timestamps(field, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                timestamps(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_timestamp_in_every_answer_is_rfc3339() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let client = server.client();
    let api = |method: Method, path: &'static str, body: Option<Value>| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let (status, answer) = call(&client, method, &url, Some(BOOTSTRAP_TOKEN), body).await;
            assert!((200..300).contains(&status), "{path}: {status} {answer}");
            (path, answer)
        }
    };

    let mut answers = vec![
        api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"email": "newcomer@acme.example"})),
        )
        .await,
        api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "laptop", "expires_in": 3600})),
        )
        .await,
        api(
            Method::POST,
            "/api/v1/automations",
            Some(json!({"name": "crew"})),
        )
        .await,
        api(
            Method::POST,
            "/api/v1/automations/crew/tokens",
            Some(json!({"name": "ci", "expires_in": 3600})),
        )
        .await,
        api(
            Method::POST,
            "/api/v1/workload-identity-configs",
            Some(json!({"name": "aws", "cloud": "aws",
                "role_arn": "arn:aws:iam::123456789012:role/keyward", "region": "us-east-1"})),
        )
        .await,
        api(
            Method::POST,
            "/api/v1/environment-variables",
            Some(json!({"key": "LOG_LEVEL", "value": "debug"})),
        )
        .await,
    ];
    for path in [
        "/api/v1/tokens",
        "/api/v1/automations",
        "/api/v1/automations/crew/tokens",
        "/api/v1/workload-identity-configs",
        "/api/v1/environment-variables",
        "/api/v1/orgs",
        "/api/v1/members",
        "/api/v1/roles",
        "/api/v1/audit",
        "/crewai_plus/api/v1/me/organizations",
    ] {
        answers.push(api(Method::GET, path, None).await);
    }

    let mut found = Vec::new();
    for (path, answer) in &answers {
        timestamps(answer, path, &mut found);
    }
    let bad: Vec<String> = found
        .iter()
        .filter(|(_, v)| {
            v.as_str()
                .is_none_or(|text| OffsetDateTime::parse(text, &Rfc3339).is_err())
        })
        .map(|(path, v)| format!("{path} = {v}"))
        .collect();
    assert!(bad.is_empty(), "not RFC 3339: {bad:#?}");
    // The fields this test exists for were seen, so a renamed route cannot make it pass vacuously.
    for expected in [
        "/api/v1/invitations.expires_at",
        "/api/v1/tokens.expires_at",
        "/api/v1/automations/crew/tokens.expires_at",
        "/api/v1/audit.events[",
    ] {
        assert!(
            found.iter().any(|(path, _)| path.starts_with(expected)),
            "no {expected} among {:?}",
            found.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
    }
    // Audit details carry the expiries of what was created, as text too.
    assert!(
        found
            .iter()
            .any(|(path, _)| path.starts_with("/api/v1/audit")
                && path.ends_with("data.expires_at")),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_fields_carry_values_not_debug_strings() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &ServerOptions::new(&Backend::Sqlite, dir.path()).env("KEYWARD_LOG_FORMAT", "json"),
    );
    let (status, discovery) = call(
        &server.client(),
        Method::GET,
        &format!("{}/.well-known/openid-configuration", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{discovery}");
    let issuer = discovery["issuer"].as_str().unwrap();

    // The server's stderr is collected by a reader thread: give it a moment to catch up.
    let mut log = server.stderr();
    for _ in 0..50 {
        if log.contains("keyward is serving") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log = server.stderr();
    }
    assert!(!log.contains("Some("), "{log}");
    let serving: Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["fields"]["message"] == "keyward is serving")
        .unwrap_or_else(|| panic!("no 'keyward is serving' JSON line in:\n{log}"));
    assert_eq!(serving["fields"]["issuer"], issuer, "{serving}");
    // The test clock (set for every e2e server) is announced as a warning, never silent.
    let warned = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| {
            entry["level"] == "WARN"
                && entry["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("KEYWARD_TEST_CLOCK_FILE"))
        });
    assert!(warned.is_some(), "{log}");
}
