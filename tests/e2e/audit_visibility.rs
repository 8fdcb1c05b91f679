//! Security review M4: an organization's audit readers see their organization's events and the
//! org-less events of its own members — not the sign-ins, tokens and devices of other tenants'
//! people, nor server-global events such as anonymous sign-in failures.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::rbac::{open_store, person};

async fn api(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(
        &server.client(),
        method,
        &format!("{}/api/v1{path}", server.url),
        Some(token),
        body,
    )
    .await
}

fn now() -> i64 {
    keyward_server::clock::now()
}

/// A personal token made and revoked through the API: two org-less events of `token`'s person.
async fn token_events(server: &Server, token: &str) {
    let (status, made) = api(
        server,
        Method::POST,
        "/tokens",
        token,
        Some(json!({"name": "laptop", "expires_in": 3600})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"]
        .as_str()
        .or_else(|| made["token_id"].as_str())
        .unwrap_or_default();
    let (status, body) = api(
        server,
        Method::DELETE,
        &format!("/tokens/{id}"),
        token,
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organizations_audit_readers_do_not_see_other_tenants_people() {
    install_crypto();
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let store = open_store(&backend, dir.path()).await;
        let acme: keyward_core::OrgId = org_id(&server).parse().unwrap();

        // Yolanda is a member of Acme only; her token events and a failed sign-in with her
        // address are recorded without an organization.
        let (yolanda, y_token) = person(store.as_ref(), "yolanda@acme.example").await;
        store
            .add_membership(acme, yolanda.parse().unwrap(), "member", now() - 1)
            .await
            .unwrap();
        token_events(&server, &y_token).await;
        let _ = server
            .client()
            .post(format!("{}/login", server.url))
            .form(&[("email", "yolanda@acme.example"), ("password", "guess")])
            .send()
            .await
            .unwrap();

        // Xavier, a stranger, makes his own organization: its Owner holds audit_log.
        let (xavier, x_token) = person(store.as_ref(), "xavier@elsewhere.example").await;
        let (status, org) = api(
            &server,
            Method::POST,
            "/orgs",
            &x_token,
            Some(json!({"name": "Elsewhere"})),
        )
        .await;
        assert_eq!(status, 201, "{org}");
        let elsewhere: keyward_core::OrgId = org["uuid"].as_str().unwrap().parse().unwrap();
        // His own and his member Zoe's org-less events are his organization's business.
        let (zoe, z_token) = person(store.as_ref(), "zoe@elsewhere.example").await;
        store
            .add_membership(elsewhere, zoe.parse().unwrap(), "member", now() - 1)
            .await
            .unwrap();
        token_events(&server, &x_token).await;
        token_events(&server, &z_token).await;

        let (status, page) = api(&server, Method::GET, "/audit?limit=1000", &x_token, None).await;
        assert_eq!(status, 200, "{name}: {page}");
        let events = page["events"].as_array().unwrap();
        let actors_of = |kind: &str| -> Vec<String> {
            events
                .iter()
                .filter(|e| e["type"] == kind || e["kind"] == kind)
                .map(|e| e["actor"].as_str().unwrap().to_owned())
                .collect()
        };
        let created = actors_of("personal_token.created");
        assert!(
            created.contains(&format!("user:{xavier}")),
            "{name}: {created:?}"
        );
        assert!(
            created.contains(&format!("user:{zoe}")),
            "{name}: {created:?}"
        );
        let text = page.to_string();
        assert!(
            !text.contains(&yolanda),
            "{name}: Yolanda's events leak to Elsewhere: {text}"
        );
        assert!(!text.contains("yolanda@"), "{name}: {text}");
        for event in events {
            if event["org_id"].is_null() {
                let kind = event["type"].as_str().or(event["kind"].as_str()).unwrap();
                let actor = event["actor"].as_str().unwrap();
                assert!(
                    kind.starts_with("signing_key.")
                        || kind == "audit.chain_keyed"
                        || actor == format!("user:{xavier}")
                        || actor == format!("user:{zoe}"),
                    "{name}: a server-wide event of someone else: {event}"
                );
            }
        }

        // Acme's owner sees Yolanda's (a member's) events, and not Xavier's or Zoe's.
        let (status, page) = api(
            &server,
            Method::GET,
            "/audit?limit=1000",
            BOOTSTRAP_TOKEN,
            None,
        )
        .await;
        assert_eq!(status, 200, "{name}: {page}");
        let text = page.to_string();
        assert!(text.contains(&format!("user:{yolanda}")), "{name}: {text}");
        assert!(
            !text.contains(&xavier) && !text.contains(&zoe),
            "{name}: {text}"
        );
        assert!(!text.contains("\"anonymous\""), "{name}: {text}");
    }
}
