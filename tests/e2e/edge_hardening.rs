//! Findings M1, L5, L7, B4 and L10 of the first security review, each attack run against the
//! real server: vault tokens stay on Key Vault hosts, role and grant editors cannot reach past
//! what they hold, undecodable path ids are the client's 400, and tokens stay off argv.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::rbac::{Api, Who, open_store, person, setup};

const TENANT: &str = "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00";
const CLIENT: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

async fn as_owner(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(
        &server.client(),
        method,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        body,
    )
    .await
}

/// M1: a credential holder's PATCH cannot point a vault URL (and so the vault token Keyward
/// obtains with a secret they never saw) at their own host.
#[tokio::test]
async fn vault_urls_stay_on_key_vault_hosts() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let (status, created) = as_owner(&server, Method::POST, "/secret-providers", Some(json!({
            "name": "vault", "provider": "azure_key_vault", "auth": "static",
            "vault_url": "https://team-vault.vault.azure.net",
            "static": {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "the-client-secret-1"}}))).await;
        assert_eq!(status, 201, "{created}");
        for hostile in [
            "https://attacker.example",
            "https://team-vault.vault.azure.net.attacker.example",
            "https://attacker.example/x.vault.azure.net",
            "https://user@team-vault.vault.azure.net",
            "https://127.0.0.1:8443/vaults/x",
        ] {
            let (status, body) = as_owner(
                &server,
                Method::PATCH,
                "/secret-providers/vault",
                Some(json!({"vault_url": hostile, "static": {"client_secret": "the-client-secret-1"}})),
            )
            .await;
            assert_eq!(
                (status, body["field"].as_str()),
                (400, Some("vault_url")),
                "{hostile}: {body}"
            );
            assert!(
                body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Key Vault"),
                "{body}"
            );
        }
        // Another real vault takes the client secret again.
        let (status, body) = as_owner(
            &server,
            Method::PATCH,
            "/secret-providers/vault",
            Some(json!({"vault_url": "https://other-vault.vault.azure.net"})),
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("static")),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("client_secret"),
            "{body}"
        );
        let (status, body) = as_owner(
            &server,
            Method::PATCH,
            "/secret-providers/vault",
            Some(json!({"vault_url": "https://other-vault.vault.azure.net/", "static": {"client_secret": "the-client-secret-2"}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["vault_url"], "https://other-vault.vault.azure.net",
            "{body}"
        );
        // The same URL again (trailing slash or not) is no change.
        let (status, body) = as_owner(
            &server,
            Method::PATCH,
            "/secret-providers/vault",
            Some(json!({"vault_url": "https://other-vault.vault.azure.net/", "name": "vault"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (_, shown) = as_owner(&server, Method::GET, "/secret-providers/vault", None).await;
        assert_eq!(
            shown["vault_url"], "https://other-vault.vault.azure.net",
            "{shown}"
        );
    }
}

/// B4: `%ff` in a path is a 400 with the JSON error body on every resource, never a 500.
#[tokio::test]
async fn undecodable_path_ids_are_the_clients_400() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    for (method, path) in [
        (Method::GET, "/automations/%ff"),
        (Method::DELETE, "/automations/%ff"),
        (Method::GET, "/automations/%ff/tokens"),
        (Method::GET, "/llm-connections/%ff"),
        (Method::DELETE, "/llm-connections/%ff"),
        (Method::GET, "/environment-variables/%ff"),
        (Method::DELETE, "/environment-variables/%ff"),
        (Method::GET, "/workload-identity-configs/%ff"),
        (Method::GET, "/secret-providers/%c3%28"),
        (Method::GET, "/roles/%ff"),
    ] {
        let (status, body) = as_owner(&server, method.clone(), path, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_path")),
            "{method} {path}: {body}"
        );
    }
    // Still a plain 404 for a well-formed unknown id.
    let (status, _) = as_owner(&server, Method::GET, "/automations/%C3%A9t%C3%A9", None).await;
    assert_eq!(status, 404);
    assert!(
        !server.stderr().contains("internal error"),
        "{}",
        server.stderr()
    );
}

/// L5: a custom role that may edit roles cannot cut down or delete a role stronger than its
/// own, and an automation's `manage_settings` grantee cannot turn it into `full_access`.
#[tokio::test]
async fn role_and_grant_editors_reach_no_further_than_they_hold() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let store = open_store(&backend, dir.path()).await;
        let api = Api {
            server: &server,
            client: server.client(),
            org: org_id(&server),
        };
        let people = setup(&api, store.as_ref()).await;
        api.owner(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "role-admin", "grants": {"organization_settings": "manage", "invitations": "manage"}})),
            201,
        )
        .await;
        api.owner(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "cloud-admin", "grants": {"workload_identity_configs": "manage", "secret_providers": "manage"}})),
            201,
        )
        .await;
        api.owner(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "helpers", "grants": {"invitations": "read"}})),
            201,
        )
        .await;
        let (_, admin) = person(store.as_ref(), "role-admin@acme.example").await;
        api.owner(
            Method::POST,
            "/api/v1/members",
            Some(json!({"email": "role-admin@acme.example", "role": "role-admin"})),
            201,
        )
        .await;
        for (method, path, body) in [
            (
                Method::PATCH,
                "/api/v1/roles/cloud-admin",
                Some(json!({"grants": {}})),
            ),
            (
                Method::PATCH,
                "/api/v1/roles/cloud-admin",
                Some(json!({"name": "renamed"})),
            ),
            (Method::DELETE, "/api/v1/roles/cloud-admin", None),
        ] {
            let (status, answer) = api.call(&admin, method.clone(), path, body).await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (403, Some("role_escalation")),
                "{method} {path}: {answer}"
            );
        }
        let (status, answer) = api
            .call(
                &admin,
                Method::PATCH,
                "/api/v1/roles/helpers",
                Some(json!({"description": "fine"})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let (status, answer) = api
            .call(&admin, Method::DELETE, "/api/v1/roles/helpers", None)
            .await;
        assert_eq!(status, 204, "{answer}");

        // The grant attack: no-access holds manage_settings on one automation.
        api.owner(
            Method::POST,
            "/api/v1/automations",
            Some(json!({"name": "crew"})),
            201,
        )
        .await;
        let grantee = Who::NoAccess.email();
        api.owner(
            Method::PUT,
            "/api/v1/automations/crew/permissions",
            Some(json!({"visibility": "private", "grants": [{"user": grantee, "permissions": ["manage_settings"]}]})),
            200,
        )
        .await;
        let nobody = people.token(Who::NoAccess);
        for grants in [
            json!([{"user": grantee, "permissions": ["manage_settings", "full_access"]}]),
            json!([{"user": grantee, "permissions": ["manage_settings"]}, {"user": Who::Member.email(), "permissions": ["run"]}]),
            json!([{"user": grantee, "permissions": ["manage_settings"]}, {"role": "member", "permissions": ["full_access"]}]),
        ] {
            let (status, answer) = api
                .call(
                    nobody,
                    Method::PUT,
                    "/api/v1/automations/crew/permissions",
                    Some(json!({"visibility": "private", "grants": grants})),
                )
                .await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (403, Some("permission_escalation")),
                "{grants}: {answer}"
            );
        }
        // What they hold themselves they may hand on, and visibility is theirs to set.
        let (status, answer) = api
            .call(
                nobody,
                Method::PUT,
                "/api/v1/automations/crew/permissions",
                Some(json!({"visibility": "public", "grants": [
                    {"user": grantee, "permissions": ["manage_settings"]},
                    {"user": Who::Member.email(), "permissions": ["manage_settings"]}]})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let shown = api
            .owner(
                Method::GET,
                "/api/v1/automations/crew/permissions",
                None,
                200,
            )
            .await;
        assert!(!shown.to_string().contains("full_access"), "{shown}");
    }
}

/// L7: the admin CLI reads its token from a file or stdin, and says when a token is on argv or
/// about to cross the network in clear text.
#[tokio::test]
async fn cli_tokens_come_from_files_and_cleartext_is_named() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&ServerOptions::new(
        &Backend::Sqlite,
        &dir.path().join("kw"),
    ));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{BOOTSTRAP_TOKEN}\n")).expect("write");
    let cli = |args: &[&str], stdin: Option<&str>, url: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .env_remove("KEYWARD_TOKEN")
            .env("KEYWARD_URL", url)
            .env("KEYWARD_CA_FILE", server.ca_file.as_ref().expect("ca"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("stdin");
        drop(input);
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = token_file.to_str().expect("utf-8");
    let (ok, err) = cli(&["role", "list", "--token-file", file], None, &server.url);
    assert!(ok && !err.contains("warning"), "{err}");
    let (ok, err) = cli(
        &["role", "list", "--token-file", "-"],
        Some(BOOTSTRAP_TOKEN),
        &server.url,
    );
    assert!(ok && !err.contains("warning"), "{err}");
    let (ok, err) = cli(
        &["role", "list", "--token", BOOTSTRAP_TOKEN],
        None,
        &server.url,
    );
    assert!(ok && err.contains("visible to every user"), "{err}");
    let (ok, err) = cli(
        &["role", "list", "--token-file", file],
        None,
        "http://keyward.invalid:1",
    );
    assert!(!ok && err.contains("plain http"), "{err}");
    assert!(!err.contains(BOOTSTRAP_TOKEN), "{err}");
}

/// B7: over HTTP/2, a body the endpoint ignores (the kickoff) or a body over the limit gets a
/// JSON 413 the client can read, instead of a reset stream or an upload that never ends.
#[tokio::test]
async fn oversized_bodies_get_a_readable_413_over_http2() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let (_, automation_token) = automation_with_token(&server, "crew").await;
    let client = server.client();
    for (token, path, size) in [
        (
            automation_token.as_str(),
            "/api/v1/runtime/kickoff",
            1024 * 1024,
        ),
        (
            automation_token.as_str(),
            "/api/v1/runtime/kickoff",
            100 * 1024,
        ),
        (BOOTSTRAP_TOKEN, "/api/v1/automations", 1024 * 1024),
        (BOOTSTRAP_TOKEN, "/api/v1/automations", 8 * 1024 * 1024),
    ] {
        let started = std::time::Instant::now();
        let res = client
            .post(format!("{}{path}", server.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} with {size} bytes: {e:?}"));
        assert_eq!(res.version(), reqwest::Version::HTTP_2, "{path}");
        assert_eq!(res.status().as_u16(), 413, "{path} with {size} bytes");
        let body: Value = res.json().await.expect("JSON 413 body");
        assert_eq!(body["error"], "body_too_large", "{body}");
        assert!(
            started.elapsed().as_secs() < 10,
            "{path}: {:?}",
            started.elapsed()
        );
    }
    // A kickoff with an empty body still works over HTTP/2.
    let res = client
        .post(format!("{}/api/v1/runtime/kickoff", server.url))
        .bearer_auth(&automation_token)
        .send()
        .await
        .expect("kickoff");
    assert_eq!(
        (res.version(), res.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
}

/// Test Connection as a private automation: someone who may test credentials but cannot see the
/// automation learns neither that it exists nor its name, and cannot mint its subject.
#[tokio::test]
async fn test_connection_never_speaks_for_an_automation_the_caller_cannot_see() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::Sqlite;
    let server = Server::start(&ServerOptions::new(&backend, dir.path()));
    let store = open_store(&backend, dir.path()).await;
    let api = Api {
        server: &server,
        client: server.client(),
        org: org_id(&server),
    };
    let people = setup(&api, store.as_ref()).await;
    api.owner(
        Method::POST,
        "/api/v1/automations",
        Some(json!({"name": "private-crew"})),
        201,
    )
    .await;
    api.owner(
        Method::PUT,
        "/api/v1/automations/private-crew/permissions",
        Some(json!({"visibility": "private"})),
        200,
    )
    .await;
    api.owner(Method::POST, "/api/v1/workload-identity-configs", Some(json!({
        "name": "gcp-private", "cloud": "gcp", "subject": "automation", "automations": ["private-crew"],
        "provider": "projects/123456789012/locations/global/workloadIdentityPools/pool/providers/oidc"})), 201).await;
    api.owner(
        Method::POST,
        "/api/v1/secret-providers",
        Some(json!({
        "name": "gcp-sm", "provider": "gcp_secret_manager", "auth": "workload_identity",
        "workload_identity_config": "gcp-private", "project": "keyward-demo"})),
        201,
    )
    .await;
    let admin = people.token(Who::SecretsAdmin);
    for path in [
        "/api/v1/secret-providers/gcp-sm/test?automation=private-crew",
        "/api/v1/secret-providers/gcp-sm/test",
    ] {
        let (status, body) = api.call(admin, Method::POST, path, None).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("automation")),
            "{path}: {body}"
        );
        if !path.contains('?') {
            assert!(!body.to_string().contains("private-crew"), "{path}: {body}");
        }
    }
}

/// L10: the SAML assertion consumer takes responses beyond the API's 64 KiB (Entra answers with
/// many group claims), up to its own limit; other routes keep theirs.
#[tokio::test]
async fn the_saml_consumer_has_its_own_body_limit() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let client = server.client();
    let post = |path: &'static str, size: usize| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("SAMLResponse={}", "A".repeat(size)))
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    let status = post("/auth/saml/acs", 300 * 1024).await;
    assert!(status != 413 && status < 500, "{status}");
    assert_eq!(post("/auth/saml/acs", 700 * 1024).await, 413);
    assert_eq!(post("/login", 300 * 1024).await, 413);
}
