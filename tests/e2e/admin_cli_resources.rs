//! The admin CLI for what was reachable only with curl: automations and their tokens, personal
//! access tokens and audit events, with `--output json` matching the API, and clear refusals.

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

/// `keyward <args>` as the owner; the command must succeed. Returns stdout.
fn ok(server: &Server, args: &[&str]) -> String {
    let (success, out, err) = admin_cli(server, args);
    assert!(success, "keyward {args:?}: {err}");
    out
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `GET /api/v1<path>` as the owner.
async fn api_get(server: &Server, path: &str) -> Value {
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn automations_and_their_tokens_are_managed_from_the_cli() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let name = backend.name();

        let created = json(&ok(
            &server,
            &["automation", "create", "crew", "--description", "research"],
        ));
        assert_eq!(created["name"], "crew", "{name}");
        assert_eq!(created["description"], "research");

        let listed = ok(&server, &["automation", "list"]);
        assert!(
            listed.lines().any(|l| l.starts_with("name=crew")
                && l.contains(&format!("id={}", created["id"].as_str().unwrap()))),
            "{name}: {listed}"
        );
        let listed = json(&ok(&server, &["automation", "list", "--output", "json"]));
        assert_eq!(listed, api_get(&server, "/automations").await, "{name}");
        let shown = json(&ok(&server, &["automation", "show", "crew"]));
        assert_eq!(shown, api_get(&server, "/automations/crew").await, "{name}");
        let lines = ok(&server, &["automation", "show", "crew", "--output", "text"]);
        assert!(
            lines.contains("name: crew") && lines.contains("description: research"),
            "{name}: {lines}"
        );
        let updated = json(&ok(
            &server,
            &[
                "automation",
                "update",
                "crew",
                "--description",
                "daily research",
            ],
        ));
        assert_eq!(updated["description"], "daily research");

        // A token is printed once, alone on stdout, and it works.
        let (success, token, err) = admin_cli(
            &server,
            &["automation", "token", "create", "crew", "--name", "ci"],
        );
        assert!(success, "{name}: {err}");
        let token = token.trim().to_owned();
        assert!(token.starts_with("kwa_"), "{name}: {token}");
        assert!(err.contains("only time it is shown"), "{name}: {err}");
        let (status, _) = mint(&server, &token, "sts.amazonaws.com").await;
        assert_eq!(status, 200, "{name}: the new token mints");

        let json_created = json(&ok(
            &server,
            &[
                "automation",
                "token",
                "create",
                "crew",
                "--name",
                "nightly",
                "--expires-in",
                "1d",
                "--output",
                "json",
            ],
        ));
        assert!(json_created["token"].as_str().unwrap().starts_with("kwa_"));
        assert_eq!(json_created["name"], "nightly");
        assert!(json_created["expires_at"].is_string(), "{json_created}");

        let tokens = json(&ok(
            &server,
            &["automation", "token", "list", "crew", "--output", "json"],
        ));
        assert_eq!(
            tokens,
            api_get(&server, "/automations/crew/tokens").await,
            "{name}"
        );
        assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
        let text = ok(&server, &["automation", "token", "list", "crew"]);
        assert!(
            text.lines().any(|l| l.contains("name=ci")) && !text.contains(&token),
            "{name}: the list never shows a secret: {text}"
        );
        let ci = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "ci")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let revoked = ok(&server, &["automation", "token", "revoke", "crew", &ci]);
        assert!(revoked.contains("revoked token 'ci'"), "{name}: {revoked}");
        let (status, _) = mint(&server, &token, "sts.amazonaws.com").await;
        assert_eq!(status, 401, "{name}: a revoked token no longer mints");

        let deleted = ok(&server, &["automation", "delete", "crew"]);
        assert!(deleted.contains("deleted automation 'crew'"), "{name}");
        let (success, _, err) = admin_cli(&server, &["automation", "show", "crew"]);
        assert!(!success && err.contains("404"), "{name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_tokens_and_audit_events_are_read_from_the_cli() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        let name = backend.name();

        let (success, pat, err) = admin_cli(
            &server,
            &["token", "create", "--name", "laptop", "--expires-in", "7d"],
        );
        assert!(success, "{name}: {err}");
        let pat = pat.trim().to_owned();
        assert!(pat.starts_with("kwp_"), "{name}: {pat}");
        let (status, _) = call(
            &server.client(),
            Method::GET,
            &format!("{}/api/v1/automations", server.url),
            Some(&pat),
            None,
        )
        .await;
        assert_eq!(status, 200, "{name}: the new personal token works");

        let listed = json(&ok(&server, &["token", "list", "--output", "json"]));
        assert_eq!(listed, api_get(&server, "/tokens").await, "{name}");
        let laptop = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "laptop")
            .unwrap_or_else(|| panic!("{name}: {listed}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let text = ok(&server, &["token", "list"]);
        assert!(
            text.contains("name=laptop") && !text.contains(&pat),
            "{name}: {text}"
        );
        let revoked = ok(&server, &["token", "revoke", &laptop]);
        assert!(
            revoked.contains("revoked token 'laptop'"),
            "{name}: {revoked}"
        );

        let (success, _, err) = admin_cli(&server, &["token", "create", "--name", "forever"]);
        assert!(
            !success && err.contains("field expires_in"),
            "{name}: a personal token must expire: {err}"
        );

        let page = json(&ok(
            &server,
            &[
                "audit",
                "list",
                "--type",
                "personal_token.created",
                "--output",
                "json",
            ],
        ));
        assert_eq!(
            page,
            api_get(&server, "/audit?type=personal_token.created").await,
            "{name}"
        );
        let events = page["events"].as_array().unwrap();
        assert!(
            !events.is_empty() && events.iter().all(|e| e["type"] == "personal_token.created"),
            "{name}: {page}"
        );
        let text = ok(
            &server,
            &["audit", "list", "--type", "personal_token.revoked"],
        );
        assert!(
            text.lines().count() == 1 && text.contains("personal_token.revoked"),
            "{name}: {text}"
        );
        let limited = json(&ok(
            &server,
            &["audit", "list", "--limit", "1", "--output", "json"],
        ));
        assert_eq!(limited["events"].as_array().unwrap().len(), 1, "{name}");
        let next = limited["next_after"].as_i64().expect("a next page");
        let after = json(&ok(
            &server,
            &[
                "audit",
                "list",
                "--after",
                &next.to_string(),
                "--output",
                "json",
            ],
        ));
        assert!(
            after["events"][0]["seq"].as_i64().unwrap() > next,
            "{name}: {after}"
        );
        let (success, _, err) = admin_cli(&server, &["audit", "list", "--since", "yesterday"]);
        assert!(!success && err.contains("field since"), "{name}: {err}");
    }
}

#[tokio::test]
async fn bad_input_gives_a_clear_error_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));

    for args in [
        &["automation", "show", "ghost"][..],
        &["automation", "token", "list", "ghost"],
        &["automation", "token", "create", "ghost", "--name", "ci"],
        &["automation", "delete", "ghost"],
    ] {
        let (success, out, err) = admin_cli(&server, args);
        assert!(!success, "keyward {args:?}: {out}");
        assert!(
            err.contains("404") && err.contains("automation"),
            "keyward {args:?}: {err}"
        );
    }
    let (success, _, err) = admin_cli(&server, &["automation", "token", "revoke", "crew", "x"]);
    assert!(!success && err.contains("404"), "{err}");

    for args in [
        &["automation", "list", "--output", "yaml"][..],
        &["wi", "list", "--output", "xml"],
        &["role", "show", "owner", "--output", "table"],
    ] {
        let (success, _, err) = admin_cli(&server, args);
        assert!(!success, "keyward {args:?}");
        assert!(
            err.contains("--output") && err.contains("json"),
            "keyward {args:?}: {err}"
        );
    }
    let (success, _, err) = admin_cli(
        &server,
        &["token", "create", "--name", "x", "--expires-in", "soon"],
    );
    assert!(!success && err.contains("--expires-in"), "{err}");
}

#[tokio::test]
async fn every_existing_list_and_show_prints_the_apis_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    ok(&server, &["automation", "create", "crew"]);
    ok(&server, &["env", "create", "LOG_LEVEL", "--value", "debug"]);
    for (args, path) in [
        (&["wi", "list"][..], "/workload-identity-configs"),
        (&["llm", "list"], "/llm-connections"),
        (&["env", "list"], "/environment-variables"),
        (
            &["env", "show", "LOG_LEVEL"],
            "/environment-variables/LOG_LEVEL",
        ),
        (&["secret-provider", "list"], "/secret-providers"),
        (&["role", "list"], "/roles"),
        (&["role", "show", "owner"], "/roles/owner"),
        (&["member", "list"], "/members"),
    ] {
        let mut with_json = args.to_vec();
        with_json.extend(["--output", "json"]);
        let printed = json(&ok(&server, &with_json));
        assert_eq!(printed, api_get(&server, path).await, "keyward {args:?}");
    }
    let text = ok(&server, &["env", "show", "LOG_LEVEL", "--output", "text"]);
    assert!(
        text.contains("key: LOG_LEVEL") && text.contains("value: debug"),
        "{text}"
    );
}

#[tokio::test]
async fn org_list_prints_the_apis_json_on_request_and_an_expired_sign_in_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let people = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .env("KEYWARD_CONFIG_DIR", home.path())
            .env("HOME", home.path())
            .env("KEYWARD_CREDENTIAL_STORE", "file")
            .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (success, _, err) = people(&["config", "set", "enterprise_base_url", &server.url]);
    assert!(success, "{err}");
    // A signed-in person: the stored token is a bearer the server takes as that person.
    let credentials = home.path().join("credentials.json");
    let signed_in = |expires_at: i64| {
        let token = serde_json::json!({"access_token": BOOTSTRAP_TOKEN, "expires_at": expires_at});
        std::fs::write(&credentials, token.to_string()).unwrap();
    };
    signed_in(i64::MAX);

    let (success, out, err) = people(&["org", "list", "--output", "json"]);
    assert!(success, "{err}");
    let (status, api) = call(
        &server.client(),
        Method::GET,
        &format!("{}/crewai_plus/api/v1/me/organizations", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json(&out), api);
    let (success, out, err) = people(&["org", "list"]);
    assert!(success && out.contains("Acme"), "{out}{err}");

    signed_in(1);
    let (success, _, err) = people(&["org", "list"]);
    assert!(
        !success && err.contains("the sign-in expired"),
        "an expired sign-in is refused before any request: {err}"
    );
}
