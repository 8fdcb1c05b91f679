//! Walks the route table in-process: every declared need is enforced by the layer.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use keyward_core::{Entity, Need};
use keyward_server::audit::Auditor;
use keyward_server::config::ServerConfig;
use keyward_server::keyring::Keyring;
use keyward_server::routes::{app, table};
use keyward_server::state::AppState;
use keyward_store::crypto::MasterKey;
use tower::ServiceExt;

async fn state(dir: &std::path::Path) -> AppState {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let config = ServerConfig::for_test(dir.to_owned());
    let store = keyward_store::open(None, dir).await.unwrap();
    let master = Arc::new(MasterKey::generate().unwrap().0);
    let keyring = Arc::new(Keyring::new(store.clone(), master.clone(), config.rotation));
    let audit = Auditor::new(store.clone(), master.audit_key());
    keyring
        .tick(keyward_server::clock::Clock::system().now(), &audit)
        .await
        .unwrap();
    AppState {
        store,
        config: Arc::new(config),
        keyring,
        master,
        cloud_endpoints: None,
        audit,
        metrics: keyward_server::ops::metrics_handle(),
        sso: Default::default(),
        clock: Default::default(),
    }
}

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{uuid}", &uuid::Uuid::new_v4().to_string())
        .replace("{id}", "crew")
        .replace("{token_id}", &uuid::Uuid::new_v4().to_string())
}

#[tokio::test]
async fn every_non_public_route_refuses_a_caller_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    for (decl, _) in table() {
        let req = Request::builder()
            .method(decl.method.clone())
            .uri(concrete(decl.path))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        match decl.need {
            Need::Public => assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {}",
                decl.method,
                decl.path
            ),
            _ => {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{} {} must require a token",
                    decl.method,
                    decl.path
                );
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(json["error"], "missing_token");
            }
        }
    }
}

#[test]
fn the_table_declares_each_route_once_and_keeps_the_api_private() {
    let rows = table();
    let mut seen = std::collections::HashSet::new();
    for (decl, _) in &rows {
        assert!(
            seen.insert((decl.method.clone(), decl.path)),
            "{} {} declared twice",
            decl.method,
            decl.path
        );
        // The two public exceptions: the first-login setup, and the API's own contract (the
        // OpenAPI document names routes and shapes, which the open source code does too, and
        // holds no data).
        let public_by_design = ["/api/v1/setup", "/api/v1/openapi.json"];
        if decl.path.starts_with("/api/v1/") && !public_by_design.contains(&decl.path) {
            assert_ne!(
                decl.need,
                Need::Public,
                "{} {} is an API route",
                decl.method,
                decl.path
            );
        }
        if decl.path.starts_with("/api/v1/workload-identity/")
            || decl.path.starts_with("/api/v1/runtime/")
        {
            assert_eq!(
                decl.need,
                Need::Automation,
                "{} is a runtime route",
                decl.path
            );
        } else {
            assert_ne!(
                decl.need,
                Need::Automation,
                "{} is not a runtime route",
                decl.path
            );
        }
        // One automation, variable or connection in the path: its entity rules apply.
        let entity = match decl.need {
            Need::Entity(entity, _, _) => Some(entity),
            _ => None,
        };
        if decl.path.starts_with("/api/v1/automations/{id}") {
            assert!(
                matches!(entity, Some(Entity::Automation(_))),
                "{} {} must declare the automation's entity rules",
                decl.method,
                decl.path
            );
        } else if decl.path.starts_with("/api/v1/environment-variables/{id}") {
            assert_eq!(entity, Some(Entity::EnvironmentVariable), "{}", decl.path);
        } else if decl.path.starts_with("/api/v1/llm-connections/{id}") {
            assert_eq!(entity, Some(Entity::LlmConnection), "{}", decl.path);
        } else {
            assert_eq!(entity, None, "{} names no entity", decl.path);
        }
        let changes =
            [Method::DELETE, Method::POST, Method::PATCH, Method::PUT].contains(&decl.method);
        if let (true, Some((_, level))) = (changes, decl.need.feature()) {
            assert!(
                level >= keyward_core::Level::Write,
                "{} {} changes data",
                decl.method,
                decl.path
            );
        }
    }
}
