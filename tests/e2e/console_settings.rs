//! The console's settings pages against the real binary: the role matrix saved through the
//! page and seen by the API, a Member refused the roles page and its forms, an automation token
//! shown once and never again, and the signing-key timeline matching what `/oauth2/jwks`
//! publishes.

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::console_common::member_session;
use crate::console_common::{csrf_of, get, post};
use crate::people::{local_options, set_owner_password, sign_in};

/// The text of the element with `id` (its first text up to the next tag).
fn text_of(html: &str, id: &str) -> String {
    html.split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split('<').next())
        .unwrap_or_else(|| panic!("no element {id} in {html}"))
        .trim()
        .to_owned()
}

async fn owner_console(dir: &std::path::Path) -> (Server, String) {
    let server = Server::start(&local_options(&Backend::Sqlite, dir));
    set_owner_password(&server).await;
    let cookie = sign_in(&server, "/console").await;
    (server, cookie)
}

async fn api_role(server: &Server, name: &str) -> serde_json::Value {
    let (status, roles) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/roles", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{roles}");
    roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no role {name} in {roles}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_edited_in_the_matrix_is_what_the_api_answers() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;

    let page = get(&server, &cookie, "/console/roles").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"role-row-owner\"")
            && page.body.contains("id=\"role-create-form\"")
    );
    let csrf = csrf_of(&page.body);

    let created = post(
        &server,
        &cookie,
        "/console/roles",
        &[
            ("csrf", &csrf),
            ("name", "auditor"),
            ("description", "reads the log"),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let role_path = created.location.split('?').next().unwrap().to_owned();
    assert!(role_path.starts_with("/console/roles/"), "{role_path}");
    let editor = get(&server, &cookie, &created.location).await;
    assert_eq!(editor.status, 200, "{}", editor.body);
    assert!(editor.body.contains("id=\"role-matrix\""));
    // Manage-only features offer no read or write cell.
    assert!(editor.body.contains("id=\"grant-audit_log-read\""));
    assert!(
        !editor
            .body
            .contains("id=\"grant-environment_variables-read\"")
    );

    // The whole matrix is posted: every feature's radio, as a browser sends it.
    let mut fields: Vec<(String, String)> = vec![
        ("csrf".into(), csrf.clone()),
        ("description".into(), "reads the log, runs crews".into()),
    ];
    for f in keyward_core::permission::Feature::ALL.map(|f| f.as_str()) {
        let level = match f {
            "audit_log" => "read",
            "crews_dashboards" => "write",
            "llm_connections" => "manage",
            _ => "none",
        };
        fields.push((format!("grant.{f}"), level.into()));
    }
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saved = post(&server, &cookie, &role_path, &borrowed).await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    let role = api_role(&server, "auditor").await;
    assert_eq!(role["description"], "reads the log, runs crews");
    assert_eq!(role["grants"]["audit_log"], "read", "{role}");
    assert_eq!(role["grants"]["crews_dashboards"], "write", "{role}");
    assert_eq!(role["grants"]["llm_connections"], "manage", "{role}");
    assert_eq!(role["grants"]["gateway"], "none", "{role}");
    let shown = get(&server, &cookie, &role_path).await;
    assert!(
        shown.body.contains(
            "id=\"grant-audit_log-read\" name=\"grant.audit_log\" value=\"read\" checked"
        ),
        "{}",
        shown.body
    );

    // A level a manage-only feature cannot take is refused with the domain's reason, nothing saved.
    let mut bad = borrowed.clone();
    bad.retain(|(k, _)| *k != "grant.environment_variables");
    bad.push(("grant.environment_variables", "read"));
    let refused = post(&server, &cookie, &role_path, &bad).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("environment_variables"),
        "{}",
        refused.body
    );
    assert_eq!(
        api_role(&server, "auditor").await["grants"]["environment_variables"],
        "none"
    );

    // Deleting it from the list.
    let deleted = post(
        &server,
        &cookie,
        &format!("{role_path}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(
        (deleted.status, deleted.location.as_str()),
        (303, "/console/roles?done=deleted")
    );
    let listed = get(&server, &cookie, "/console/roles").await;
    assert!(!listed.body.contains("role-row-auditor"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_is_refused_the_roles_page_and_the_matrix() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, owner) = owner_console(dir.path()).await;
    let page = get(&server, &owner, "/console/roles").await;
    let csrf = csrf_of(&page.body);
    let created = post(
        &server,
        &owner,
        "/console/roles",
        &[("csrf", &csrf), ("name", "ops")],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let role_path = created.location.split('?').next().unwrap().to_owned();

    let bob = member_session(&server).await;
    let home = get(&server, &bob, "/console").await;
    assert_eq!(home.status, 200);
    assert!(
        !home.body.contains("href=\"/console/roles\""),
        "the nav offers no roles link"
    );
    let refused = get(&server, &bob, "/console/roles").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(get(&server, &bob, &role_path).await.status, 403);
    let bob_csrf = csrf_of(&home.body);
    let post_matrix = post(
        &server,
        &bob,
        &role_path,
        &[("csrf", &bob_csrf), ("grant.audit_log", "read")],
    )
    .await;
    assert_eq!(post_matrix.status, 403, "{}", post_matrix.body);
    let post_create = post(
        &server,
        &bob,
        "/console/roles",
        &[("csrf", &bob_csrf), ("name", "mine")],
    )
    .await;
    assert_eq!(post_create.status, 403, "{}", post_create.body);
    assert_eq!(
        api_role(&server, "ops").await["grants"]["audit_log"],
        "none"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_automation_token_is_shown_once_and_never_again() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;
    let page = get(&server, &cookie, "/console/automations").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    let created = post(
        &server,
        &cookie,
        "/console/automations",
        &[
            ("csrf", &csrf),
            ("name", "billing-crew"),
            ("description", ""),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let path = created.location.split('?').next().unwrap().to_owned();
    let detail = get(&server, &cookie, &created.location).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(detail.body.contains("id=\"no-automation-tokens\""));

    let answer = post(
        &server,
        &cookie,
        &format!("{path}/tokens"),
        &[("csrf", &csrf), ("name", "ci"), ("expires_days", "30")],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let token = text_of(&answer.body, "new-automation-token");
    assert!(token.len() > 20, "{token}");
    assert_eq!(answer.body.matches(&token).count(), 1, "{}", answer.body);
    // The token works for the automation (its runtime identity endpoint accepts it).
    let (status, minted) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/workload-identity/token", server.url),
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_ne!(status, 401, "{minted}");

    let after = get(&server, &cookie, &path).await;
    assert_eq!(after.status, 200);
    assert!(
        !after.body.contains(&token),
        "the secret is on the automation page"
    );
    assert!(
        after.body.contains("automation-token-revoke-"),
        "{}",
        after.body
    );
    let listed = get(&server, &cookie, "/console/automations").await;
    assert!(listed.body.contains("automation-row-billing-crew") && !listed.body.contains(&token));

    // Revoked from the page: the API lists it revoked.
    let token_id = after
        .body
        .split("id=\"automation-token-revoke-form-")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let revoked = post(
        &server,
        &cookie,
        &format!("{path}/tokens/{token_id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let id = path.rsplit('/').next().unwrap();
    let (status, tokens) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/automations/{id}/tokens", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(!tokens[0]["revoked_at"].is_null(), "{tokens}");

    // Permissions from the page: private, whitelisting the member role with a run grant.
    let saved = post(
        &server,
        &cookie,
        &format!("{path}/permissions"),
        &[
            ("csrf", &csrf),
            ("visibility", "private"),
            ("wl.member", "on"),
            ("perm.member.run", "on"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (status, perms) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/automations/{id}/permissions", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{perms}");
    assert_eq!(perms["visibility"], "private", "{perms}");
    assert_eq!(perms["whitelist"]["roles"], json!(["member"]), "{perms}");
    assert_eq!(perms["grants"][0]["role"], "member", "{perms}");
    assert_eq!(perms["grants"][0]["permissions"], json!(["run"]), "{perms}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_keys_page_shows_the_active_kid_the_jwks_publishes() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;
    let (status, jwks) = call(
        &server.client(),
        Method::GET,
        &format!("{}/oauth2/jwks", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{jwks}");
    let kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(!kids.is_empty());

    let page = get(&server, &cookie, "/console/keys").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for kid in &kids {
        assert!(
            page.body.contains(&format!("id=\"key-{kid}\"")),
            "{kid} missing: {}",
            page.body
        );
    }
    let active = page
        .body
        .split("class=\"key active\"")
        .next()
        .and_then(|before| before.rsplit("id=\"key-").next())
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(kids.contains(&active), "active {active} not in {kids:?}");
    assert_eq!(page.body.matches("class=\"key active\"").count(), 1);
    assert!(page.body.contains("Signs from"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_variable_is_restricted_to_a_role_from_the_roles_page() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (server, cookie) = owner_console(dir.path()).await;
    let (status, var) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/environment-variables", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"key": "PROD_DB_URL", "value": "postgres://prod-secret-value"})),
    )
    .await;
    assert_eq!(status, 201, "{var}");
    let id = var["id"].as_str().unwrap().to_owned();

    let page = get(&server, &cookie, "/console/roles").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("id=\"access-env-form-{id}\"")),
        "{}",
        page.body
    );
    assert!(!page.body.contains("prod-secret-value"));
    let csrf = csrf_of(&page.body);
    let saved = post(
        &server,
        &cookie,
        &format!("/console/roles/access/environment-variables/{id}"),
        &[("csrf", &csrf), ("role.owner", "on")],
    )
    .await;
    assert_eq!(
        (saved.status, saved.location.as_str()),
        (303, "/console/roles?done=access"),
        "{}",
        saved.body
    );
    let (status, access) = call(
        &server.client(),
        Method::GET,
        &format!(
            "{}/api/v1/environment-variables/{id}/permissions",
            server.url
        ),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{access}");
    assert_eq!(access["roles"], json!(["owner"]), "{access}");
    let shown = get(&server, &cookie, "/console/roles").await;
    assert!(
        shown.body.contains(&format!(
            "id=\"access-env-{id}-owner\" name=\"role.owner\" checked"
        )),
        "{}",
        shown.body
    );

    // A Member is refused the form on the server, whatever the page shows.
    let bob = member_session(&server).await;
    let bob_csrf = csrf_of(&get(&server, &bob, "/console").await.body);
    let refused = post(
        &server,
        &bob,
        &format!("/console/roles/access/environment-variables/{id}"),
        &[("csrf", &bob_csrf), ("role.member", "on")],
    )
    .await;
    assert!(
        matches!(refused.status, 403 | 404),
        "{}: {}",
        refused.status,
        refused.body
    );
}
