//! `/api/v1/gateway/routes` (issue 16 item 2): a route is validated as the gateway validates a
//! route file before it is stored — a Cedar typo is a 400 naming its line and column, never a
//! stored open door — and stays inside its organization.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

fn route(name: &str, policy: &str) -> Value {
    json!({
        "name": name,
        "path_prefix": format!("/{name}"),
        "upstream": "http://127.0.0.1:9/v1",
        "policy": policy,
    })
}

#[tokio::test]
async fn gateway_routes_are_validated_before_they_are_stored() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let client = server.client();
        let url = format!("{}/api/v1/gateway/routes", server.url);
        let owner = Some(BOOTSTRAP_TOKEN);

        let created = create_as_owner(
            &server,
            "/gateway/routes",
            route("openai", "permit(principal, action, resource);"),
        )
        .await;
        assert_eq!(created["name"], "openai");
        assert_eq!(created["route"]["upstream"], "http://127.0.0.1:9/v1");

        // A typo in an attribute on line 2: refused, with where it is.
        let typo =
            "permit(principal, action, resource)\n  when { context.bdy.model == \"gpt-4o\" };";
        let (status, body) = call(
            &client,
            Method::POST,
            &url,
            owner,
            Some(route("typo", typo)),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], "policy", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(":2:"),
            "the message names line 2: {message}"
        );

        // A policy file cannot be referenced through the API: the server has no such file.
        let mut with_file = route("files", "permit(principal, action, resource);");
        with_file["policies"] = json!(["/etc/passwd"]);
        let (status, body) = call(&client, Method::POST, &url, owner, Some(with_file)).await;
        assert_eq!(status, 400, "{body}");

        // A second route of the same name is a conflict; nothing was stored by the refusals.
        let (status, _) = call(
            &client,
            Method::POST,
            &url,
            owner,
            Some(route("openai", "permit(principal, action, resource);")),
        )
        .await;
        assert_eq!(status, 409);
        let (_, listed) = call(&client, Method::GET, &url, owner, None).await;
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["openai"], "{}", backend.name());

        // Replace by name, then delete.
        let (status, replaced) = call(
            &client,
            Method::PUT,
            &format!("{url}/openai"),
            owner,
            Some(route("openai", "forbid(principal, action, resource);")),
        )
        .await;
        assert_eq!(status, 200, "{replaced}");
        assert!(
            replaced["route"]["policy"]
                .as_str()
                .unwrap()
                .starts_with("forbid")
        );
        let (status, body) = call(
            &client,
            Method::PUT,
            &format!("{url}/openai"),
            owner,
            Some(route("openai", typo)),
        )
        .await;
        assert_eq!(status, 400, "an invalid replacement is refused: {body}");
        let (_, kept) = call(&client, Method::GET, &format!("{url}/openai"), owner, None).await;
        assert!(
            kept["route"]["policy"]
                .as_str()
                .unwrap()
                .starts_with("forbid"),
            "{kept}"
        );
        let (status, _) = call(
            &client,
            Method::DELETE,
            &format!("{url}/openai"),
            owner,
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = call(&client, Method::GET, &format!("{url}/openai"), owner, None).await;
        assert_eq!(status, 404);
    }
}
