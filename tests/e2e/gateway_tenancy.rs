//! Attacks across organizations on one gateway (stored routes of every organization share the
//! process): a route of organization B naming the variable that holds organization A's
//! automation token must not get A's credential, nor take A's traffic with a route matching
//! the same path; a person acts in the route's organization.

use serde_json::{Value, json};

use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions, call};
use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream};

async fn store_route(platform: &Server, org: &str, route: Value) {
    let response = platform
        .client()
        .post(format!("{}/api/v1/gateway/routes", platform.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .header("X-Keyward-Organization-Id", org)
        .json(&route)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );
}

fn borrowing_route(name: &str, upstream: &str) -> Value {
    json!({
        "name": name,
        "path_prefix": format!("/{name}"),
        "upstream": upstream,
        "policy": "permit(principal, action, resource);",
        "credential": {"kind": "keyward", "automation": "crew", "token_env": "CREW_TOKEN",
                       "audience": "keyward-gateway"},
    })
}

#[tokio::test]
async fn gateway_route_cannot_borrow_another_organizations_automation_token() {
    let upstream = Upstream::start().await;
    common::install_crypto();
    let backend = common::Backend::Sqlite;
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&backend, dir.path());
    let platform = Server::start(&options);
    let org_a = common::org_id(&platform);
    let (_, crew_token) = common::automation_with_token(&platform, "crew").await;
    let (status, beta) = call(
        &platform.client(),
        reqwest::Method::POST,
        &format!("{}/api/v1/orgs", platform.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "Beta"})),
    )
    .await;
    assert_eq!(status, 201, "{beta}");
    let org_b = beta["uuid"]
        .as_str()
        .or(beta["id"].as_str())
        .unwrap()
        .to_owned();
    store_route(&platform, &org_a, borrowing_route("a", &upstream.url())).await;
    // B's admin names the variable that holds A's token, and an upstream of their choosing.
    store_route(&platform, &org_b, borrowing_route("b", &upstream.url())).await;
    // And a route of B's matching exactly what A's route matches, to take its traffic: refused
    // (409, without saying whose), so it never reaches a gateway.
    let shadow = Upstream::start().await;
    let taken = platform
        .client()
        .post(format!("{}/api/v1/gateway/routes", platform.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .header("X-Keyward-Organization-Id", &org_b)
        .json(
            &json!({"name": "shadow", "path_prefix": "/a", "upstream": shadow.url(),
                      "policy": "permit(principal, action, resource);"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status().as_u16(), 409);
    let body: Value = taken.json().await.unwrap();
    assert_eq!(body["field"], "path_prefix", "{body}");
    assert!(!body.to_string().contains(&org_a), "{body}");

    let mut gateway_options =
        GatewayOptions::new(&options, &platform, std::path::Path::new("unused"));
    gateway_options.config = None;
    gateway_options.env.insert("CREW_TOKEN".into(), crew_token);
    let gateway = GatewayProcess::start(&gateway_options);
    let client = gateway.client(false);
    let get = |path: &str| {
        client
            .get(format!("{}{path}", gateway.url))
            .bearer_auth(BOOTSTRAP_TOKEN)
            .send()
    };

    // A's own route gets A's automation's token (the owner is in both organizations and acts
    // in the route's).
    let answer = get("/a/x").await.unwrap();
    assert_eq!(
        answer.status().as_u16(),
        200,
        "{}",
        answer.text().await.unwrap()
    );
    let seen = upstream.last();
    assert!(
        seen.headers["authorization"].starts_with("Bearer ey"),
        "{:?}",
        seen.headers
    );
    let before = upstream.seen.lock().unwrap().len();
    assert!(
        shadow.seen.lock().unwrap().is_empty(),
        "the newer duplicate route took A's traffic"
    );

    // B's route is refused before anything reaches its upstream.
    let answer = get("/b/x").await.unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "credential_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("another organization"),
        "{body}"
    );
    assert_eq!(
        upstream.seen.lock().unwrap().len(),
        before,
        "B's upstream saw a request"
    );
}
