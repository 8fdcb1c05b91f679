//! RBAC entity rules end to end: private automations and access-listed variables stay hidden
//! until shared, owners and roles in use are protected, and the `role`, `member` and
//! `automation permissions` commands drive the API. Helpers are in [`super::rbac`].

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::rbac::{Api, Who, open_store, person, setup};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            a["name"]
                .as_str()
                .or(a["key"].as_str())
                .expect("name")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn private_automations_and_access_listed_variables_are_invisible_until_shared() {
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
        let member = people.token(Who::Member);
        let reader = people.token(Who::Reader);

        let hidden = api
            .owner(
                Method::POST,
                "/api/v1/automations",
                Some(json!({"name": "hidden"})),
                201,
            )
            .await;
        let hidden_id = hidden["id"].as_str().expect("id").to_owned();
        api.owner(
            Method::POST,
            "/api/v1/automations",
            Some(json!({"name": "open"})),
            201,
        )
        .await;
        let private = api
            .owner(
                Method::PUT,
                "/api/v1/automations/hidden/permissions",
                Some(json!({"visibility": "private"})),
                200,
            )
            .await;
        assert_eq!(private["visibility"], "private", "{private}");

        // Not whitelisted: absent from the list, 404 by name and by id, on every sub-route.
        let (_, list) = api
            .call(member, Method::GET, "/api/v1/automations", None)
            .await;
        assert_eq!(names(&list), ["open"], "{}", backend.name());
        for path in [
            "/api/v1/automations/hidden".to_owned(),
            format!("/api/v1/automations/{hidden_id}"),
            "/api/v1/automations/hidden/tokens".to_owned(),
            "/api/v1/automations/hidden/environment-variables".to_owned(),
            "/api/v1/automations/hidden/permissions".to_owned(),
        ] {
            let (status, body) = api.call(member, Method::GET, &path, None).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        let (status, _) = api
            .call(
                member,
                Method::PATCH,
                "/api/v1/automations/hidden",
                Some(json!({})),
            )
            .await;
        assert_eq!(
            status, 404,
            "a hidden automation is not found, not forbidden"
        );
        // The owner always sees it.
        let (_, list) = api
            .call(BOOTSTRAP_TOKEN, Method::GET, "/api/v1/automations", None)
            .await;
        assert_eq!(names(&list), ["hidden", "open"]);

        // Whitelisting the member (by email) and the reader role (by name).
        let shared = api
            .owner(
                Method::PUT,
                "/api/v1/automations/hidden/permissions",
                Some(json!({"visibility": "private",
                            "whitelist": {"users": [Who::Member.email()], "roles": ["reader"]}})),
                200,
            )
            .await;
        assert_eq!(shared["whitelist"]["users"], json!([Who::Member.email()]));
        assert_eq!(shared["whitelist"]["roles"], json!(["reader"]));
        for token in [member, reader] {
            let (_, list) = api
                .call(token, Method::GET, "/api/v1/automations", None)
                .await;
            assert_eq!(names(&list), ["hidden", "open"]);
            let (status, body) = api
                .call(
                    token,
                    Method::GET,
                    &format!("/api/v1/automations/{hidden_id}"),
                    None,
                )
                .await;
            assert_eq!(
                (status, body["name"].as_str()),
                (200, Some("hidden")),
                "{body}"
            );
        }
        let (_, list) = api
            .call(
                people.token(Who::SecretsAdmin),
                Method::GET,
                "/api/v1/automations",
                None,
            )
            .await;
        assert_eq!(
            list["error"], "forbidden",
            "secrets-admin has no crews_dashboards at all"
        );
        // Seeing is not managing: the member's role reads automations only.
        let (status, _) = api
            .call(
                member,
                Method::PATCH,
                "/api/v1/automations/hidden",
                Some(json!({"description": "x"})),
            )
            .await;
        assert_eq!(status, 403);

        // A manage_settings grant lets the member manage this one automation, and only it.
        let granted = api
            .owner(
                Method::PUT,
                "/api/v1/automations/hidden/permissions",
                Some(json!({"visibility": "private",
                            "grants": [{"user": Who::Member.email(), "permissions": ["manage_settings"]}]})),
                200,
            )
            .await;
        assert_eq!(
            granted["grants"][0]["permissions"],
            json!(["manage_settings"])
        );
        let (status, body) = api
            .call(
                member,
                Method::PATCH,
                "/api/v1/automations/hidden",
                Some(json!({"description": "tuned"})),
            )
            .await;
        assert_eq!(
            (status, body["description"].as_str()),
            (200, Some("tuned")),
            "{body}"
        );
        let (status, _) = api
            .call(
                member,
                Method::POST,
                "/api/v1/automations/hidden/tokens",
                Some(json!({"name": "ci"})),
            )
            .await;
        assert_eq!(status, 201);
        let (status, _) = api
            .call(
                member,
                Method::PATCH,
                "/api/v1/automations/open",
                Some(json!({"description": "x"})),
            )
            .await;
        assert_eq!(status, 403);
        // The reader lost the whitelist with that PUT (it replaces everything).
        let (status, _) = api
            .call(reader, Method::GET, "/api/v1/automations/hidden", None)
            .await;
        assert_eq!(status, 404);

        // An environment variable restricted to the owner: absent for the member, usable again
        // once the Member role is on its list.
        api.owner(
            Method::POST,
            "/api/v1/environment-variables",
            Some(json!({"key": "PROD_DB_URL", "value": "postgres://prod"})),
            201,
        )
        .await;
        api.owner(
            Method::PUT,
            "/api/v1/environment-variables/PROD_DB_URL/permissions",
            Some(json!({"users": [Who::Owner.email()]})),
            200,
        )
        .await;
        let (_, vars) = api
            .call(member, Method::GET, "/api/v1/environment-variables", None)
            .await;
        assert!(!names(&vars).contains(&"PROD_DB_URL".to_owned()), "{vars}");
        let (status, _) = api
            .call(
                member,
                Method::GET,
                "/api/v1/environment-variables/PROD_DB_URL",
                None,
            )
            .await;
        assert_eq!(status, 404);
        let (status, body) = api
            .call(
                member,
                Method::PUT,
                "/api/v1/automations/open/environment-variables",
                Some(json!({"environment_variables": ["PROD_DB_URL"]})),
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("environment_variables")),
            "{body}"
        );
        // Assigned by the owner, it is absent from what the member sees on the automation, and
        // the member's own assignment (which cannot name it) leaves it assigned.
        api.owner(
            Method::PUT,
            "/api/v1/automations/open/environment-variables",
            Some(json!({"environment_variables": ["PROD_DB_URL"]})),
            200,
        )
        .await;
        api.owner(
            Method::POST,
            "/api/v1/environment-variables",
            Some(json!({"key": "LOG_LEVEL", "value": "debug"})),
            201,
        )
        .await;
        let (status, seen) = api
            .call(
                member,
                Method::PUT,
                "/api/v1/automations/open/environment-variables",
                Some(json!({"environment_variables": ["LOG_LEVEL"]})),
            )
            .await;
        assert_eq!(
            (status, names(&seen)),
            (200, vec!["LOG_LEVEL".to_owned()]),
            "{seen}"
        );
        let (_, seen) = api
            .call(
                member,
                Method::GET,
                "/api/v1/automations/open/environment-variables",
                None,
            )
            .await;
        assert_eq!(names(&seen), ["LOG_LEVEL"]);
        let all = api
            .owner(
                Method::GET,
                "/api/v1/automations/open/environment-variables",
                None,
                200,
            )
            .await;
        let mut all = names(&all);
        all.sort();
        assert_eq!(all, ["LOG_LEVEL", "PROD_DB_URL"]);
        api.owner(
            Method::PUT,
            "/api/v1/environment-variables/PROD_DB_URL/permissions",
            Some(json!({"users": [Who::Owner.email()], "roles": ["member"]})),
            200,
        )
        .await;
        let (status, _) = api
            .call(
                member,
                Method::GET,
                "/api/v1/environment-variables/PROD_DB_URL",
                None,
            )
            .await;
        assert_eq!(status, 200);

        // Every change above is in the audit log.
        let (_, events) = api
            .call(
                BOOTSTRAP_TOKEN,
                Method::GET,
                "/api/v1/audit?type=automation.permissions_set",
                None,
            )
            .await;
        let events = events["events"]
            .as_array()
            .or(events.as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(events.len(), 3, "{events:?}");
    }
}

#[tokio::test]
async fn owners_are_protected_and_roles_in_use_are_not_deleted() {
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
        let owner_id = people.user_id(Who::Owner).to_owned();

        // The Owner role cannot be restricted, renamed or deleted; nor can Member.
        for (method, body) in [
            (
                Method::PATCH,
                Some(json!({"grants": {"audit_log": "read"}})),
            ),
            (Method::PATCH, Some(json!({"name": "boss"}))),
            (Method::DELETE, None),
        ] {
            let refused = api.owner(method, "/api/v1/roles/owner", body, 400).await;
            assert_eq!(refused["error"], "predefined_role", "{refused}");
        }
        api.owner(Method::DELETE, "/api/v1/roles/member", None, 400)
            .await;
        // The last owner can be neither demoted nor removed.
        let refused = api
            .owner(
                Method::PATCH,
                &format!("/api/v1/members/{owner_id}"),
                Some(json!({"role": "member"})),
                409,
            )
            .await;
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or("")
                .contains("last owner"),
            "{refused}"
        );
        api.owner(
            Method::DELETE,
            &format!("/api/v1/members/{owner_id}"),
            None,
            409,
        )
        .await;

        // A role in use: 409 until its members move; ?reassign_to moves them.
        let refused = api
            .owner(Method::DELETE, "/api/v1/roles/reader", None, 409)
            .await;
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or("")
                .contains("reassign_to"),
            "{refused}"
        );
        api.owner(
            Method::DELETE,
            "/api/v1/roles/reader?reassign_to=member",
            None,
            204,
        )
        .await;
        let members = api.owner(Method::GET, "/api/v1/members", None, 200).await;
        let reader = members
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["email"] == Who::Reader.email())
            .expect("reader is still a member");
        assert_eq!(reader["role"], "member");

        // A renamed custom role keeps its members.
        api.owner(
            Method::PATCH,
            "/api/v1/roles/secrets-admin",
            Some(json!({"name": "vault-keepers"})),
            200,
        )
        .await;
        let role = api
            .owner(Method::GET, "/api/v1/roles/vault-keepers", None, 200)
            .await;
        assert_eq!(role["members"], 1, "{role}");
        assert_eq!(role["grants"]["secret_providers"], "manage");
        let (status, _) = api
            .call(
                people.token(Who::SecretsAdmin),
                Method::GET,
                "/api/v1/secret-providers",
                None,
            )
            .await;
        assert_eq!(status, 200);

        // A second owner makes the first one removable; nobody but an owner makes an owner.
        let (status, body) = api
            .call(
                people.token(Who::Member),
                Method::PATCH,
                &format!("/api/v1/members/{}", people.user_id(Who::Member)),
                Some(json!({"role": "owner"})),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        api.owner(
            Method::PATCH,
            &format!("/api/v1/members/{}", people.user_id(Who::Member)),
            Some(json!({"role": "owner"})),
            200,
        )
        .await;
        api.owner(
            Method::PATCH,
            &format!("/api/v1/members/{owner_id}"),
            Some(json!({"role": "member"})),
            200,
        )
        .await;
        let (status, body) = api
            .call(
                BOOTSTRAP_TOKEN,
                Method::POST,
                "/api/v1/roles",
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(
            status, 403,
            "a demoted owner lost organization_settings: {body}"
        );
    }
}

#[tokio::test]
async fn the_role_and_member_commands_drive_the_api() {
    install_crypto();
    let backend = Backend::Sqlite;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&ServerOptions::new(&backend, dir.path()));
    let store = open_store(&backend, dir.path()).await;
    person(store.as_ref(), "dev@acme.example").await;
    let ok = |args: &[&str]| {
        let (success, stdout, stderr) = admin_cli(&server, args);
        assert!(success, "keyward {args:?}: {stderr}");
        stdout
    };

    let created = ok(&[
        "role",
        "create",
        "developer",
        "--description",
        "builds and deploys",
        "--grant",
        "crews_dashboards=manage",
        "--grant",
        "environment_variables=manage",
    ]);
    let created: Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(created["grants"]["crews_dashboards"], "manage");
    assert_eq!(created["grants"]["secret_providers"], "none");
    let (success, _, stderr) = admin_cli(
        &server,
        &[
            "role",
            "create",
            "viewer",
            "--grant",
            "llm_connections=read",
        ],
    );
    assert!(!success);
    assert!(
        stderr.contains("llm_connections") && stderr.contains("field grants"),
        "{stderr}"
    );

    ok(&["member", "add", "dev@acme.example", "--role", "developer"]);
    let listed = ok(&["member", "list"]);
    assert!(
        listed.contains("email=dev@acme.example  role=developer"),
        "{listed}"
    );
    let roles = ok(&["role", "list"]);
    assert!(
        roles
            .lines()
            .any(|l| l.starts_with("name=developer") && l.contains("members=1")),
        "{roles}"
    );

    let (success, _, stderr) = admin_cli(&server, &["role", "delete", "developer"]);
    assert!(!success && stderr.contains("409"), "{stderr}");
    ok(&[
        "role",
        "update",
        "developer",
        "--grant",
        "crews_dashboards=read",
    ]);
    let shown: Value = serde_json::from_str(&ok(&["role", "show", "developer"])).expect("JSON");
    assert_eq!(shown["grants"]["crews_dashboards"], "read");
    assert_eq!(
        shown["grants"]["environment_variables"], "none",
        "--grant replaces the set"
    );
    ok(&["member", "set-role", "dev@acme.example", "member"]);
    ok(&["role", "delete", "developer"]);
    ok(&["member", "remove", "dev@acme.example"]);
    let listed = ok(&["member", "list"]);
    assert!(!listed.contains("dev@acme.example"), "{listed}");
    let (success, _, stderr) = admin_cli(&server, &["member", "add", "ghost@acme.example"]);
    assert!(
        !success && stderr.contains("no Keyward account"),
        "{stderr}"
    );

    // An automation made private, shown to the member role, and managed by one person.
    ok(&["member", "add", "dev@acme.example"]);
    let (status, _) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/automations", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "research-crew"})),
    )
    .await;
    assert_eq!(status, 201);
    let set: Value = serde_json::from_str(&ok(&[
        "automation",
        "permissions",
        "research-crew",
        "--visibility",
        "private",
        "--whitelist-role",
        "member",
        "--grant",
        "user:dev@acme.example=manage_settings,traces",
    ]))
    .expect("JSON");
    assert_eq!(set["visibility"], "private");
    assert_eq!(set["whitelist"]["roles"], json!(["member"]));
    assert_eq!(set["grants"][0]["user"], "dev@acme.example");
    assert_eq!(
        set["grants"][0]["permissions"],
        json!(["manage_settings", "traces"])
    );
    let shown: Value =
        serde_json::from_str(&ok(&["automation", "permissions", "research-crew"])).expect("JSON");
    assert_eq!(shown, set);
    let (success, _, stderr) = admin_cli(
        &server,
        &[
            "automation",
            "permissions",
            "research-crew",
            "--grant",
            "dev=run",
        ],
    );
    assert!(!success && stderr.contains("user:<email>"), "{stderr}");
}
