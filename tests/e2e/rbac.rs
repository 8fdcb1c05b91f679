//! RBAC (SPEC §8, acceptance e): every route × {Owner, Member, a custom read-only role, a custom
//! `secret_providers: manage` role, a role with no access} against the reference matrix; ids of
//! another organization are 404 on every `{id}` route; private automations and access-listed
//! variables are invisible to people they are not shared with.
//!
//! The expected levels are literal tables below, copied from the reference documents — not
//! computed by the permission code under test. The routes come from the route table itself, so a
//! new route is walked without anyone adding it here.

use std::collections::HashMap;

use keyward_core::Need;
use keyward_store::{Store, TokenKind, TokenRow, UserRow, secret};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// The "Member (default)" column of features_rbac.mdx, plus `secret_providers` and
/// `workload_identity_configs` from features_secrets-manager_usage.mdx ("the default Member role
/// intentionally excludes" them) and Keyward's own `audit_log` and `gateway` ("read on most",
/// SPEC §8).
const MEMBER_DEFAULTS: [(&str, &str); 15] = [
    ("usage_dashboards", "read"),
    ("crews_dashboards", "read"),
    ("invitations", "read"),
    ("training_ui", "read"),
    ("tools", "read"),
    ("agents", "read"),
    ("environment_variables", "manage"),
    ("llm_connections", "manage"),
    ("default_settings", "none"),
    ("organization_settings", "none"),
    ("studio_projects", "manage"),
    ("secret_providers", "none"),
    ("workload_identity_configs", "none"),
    ("audit_log", "read"),
    ("gateway", "read"),
];

/// "Manage / No access" in the reference's "Available levels" column.
const MANAGE_ONLY: [&str; 5] = [
    "environment_variables",
    "llm_connections",
    "default_settings",
    "organization_settings",
    "studio_projects",
];

fn rank(level: &str) -> u8 {
    match level {
        "none" => 0,
        "read" => 1,
        "write" => 2,
        "manage" => 3,
        other => panic!("unknown level {other}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    Owner,
    Member,
    Reader,
    SecretsAdmin,
    NoAccess,
}

impl Who {
    const ALL: [Who; 5] = [
        Who::Owner,
        Who::Member,
        Who::Reader,
        Who::SecretsAdmin,
        Who::NoAccess,
    ];

    /// The level this principal is expected to hold on `feature`.
    fn level(self, feature: &str) -> &'static str {
        match self {
            Who::Owner => "manage",
            Who::Member => {
                MEMBER_DEFAULTS
                    .iter()
                    .find(|(f, _)| *f == feature)
                    .unwrap_or_else(|| panic!("{feature} is missing from MEMBER_DEFAULTS"))
                    .1
            }
            // Read on every feature that has a read level.
            Who::Reader if MANAGE_ONLY.contains(&feature) => "none",
            Who::Reader => "read",
            Who::SecretsAdmin if feature == "secret_providers" => "manage",
            Who::SecretsAdmin | Who::NoAccess => "none",
        }
    }

    pub(crate) fn email(self) -> &'static str {
        match self {
            Who::Owner => "owner@acme.example",
            Who::Member => "member@acme.example",
            Who::Reader => "reader@acme.example",
            Who::SecretsAdmin => "secrets@acme.example",
            Who::NoAccess => "nobody@acme.example",
        }
    }
}

/// Whether `who` may pass `need`, by the literal tables above.
fn expected_allowed(who: Who, need: Need) -> bool {
    match need {
        Need::Public | Need::Person => true,
        // Runtime routes take automation tokens; a person's token is refused.
        Need::Automation => false,
        Need::Feature(feature, level) | Need::Entity(_, feature, level) => {
            rank(who.level(feature.as_str())) >= rank(level.as_str())
        }
    }
}

pub(crate) struct Api<'a> {
    pub(crate) server: &'a Server,
    pub(crate) client: reqwest::Client,
    pub(crate) org: String,
}

impl Api<'_> {
    pub(crate) async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_in(&self.org, token, method, path, body).await
    }

    async fn call_in(
        &self,
        org: &str,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(token)
            .header("X-Keyward-Organization-Id", org);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// As the Owner; asserts `expect`.
    pub(crate) async fn owner(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let (status, value) = self.call(BOOTSTRAP_TOKEN, method.clone(), path, body).await;
        assert_eq!(status, expect, "{method} {path}: {value}");
        value
    }
}

/// A user with a personal access token, written straight into the database: creating accounts
/// is the identity provider's job (SSO or the local provider), not this API's.
pub(crate) async fn person(store: &dyn Store, email: &str) -> (String, String) {
    let user = UserRow {
        id: keyward_core::UserId::new_random(),
        email: email.to_owned(),
        created_at: 1,
    };
    store.create_user(&user).await.expect("create user");
    let token = secret::generate_token(secret::PERSONAL_PREFIX).expect("rng");
    store
        .insert_token(&TokenRow {
            id: keyward_core::TokenId::new_random(),
            kind: TokenKind::Personal,
            hash: secret::hash_token(&token),
            prefix: secret::display_prefix(&token),
            name: "rbac test".into(),
            user_id: Some(user.id),
            org_id: None,
            automation_id: None,
            created_at: 1,
            expires_at: None,
            revoked_at: None,
        })
        .await
        .expect("insert token");
    (user.id.to_string(), token)
}

pub(crate) async fn open_store(
    backend: &Backend,
    dir: &std::path::Path,
) -> std::sync::Arc<dyn Store> {
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres { url } => Some(url.as_str()),
    };
    keyward_store::open(url, dir).await.expect("open store")
}

/// The principals of the matrix, each a member of the bootstrapped organization.
pub(crate) struct Principals {
    tokens: HashMap<&'static str, String>,
    user_ids: HashMap<&'static str, String>,
}

impl Principals {
    pub(crate) fn token(&self, who: Who) -> &str {
        &self.tokens[who.email()]
    }

    pub(crate) fn user_id(&self, who: Who) -> &str {
        &self.user_ids[who.email()]
    }
}

pub(crate) async fn setup(api: &Api<'_>, store: &dyn Store) -> Principals {
    // A read-only role may not name a manage-only feature at read: 400 naming it.
    let mut all_read: serde_json::Map<String, Value> = serde_json::Map::new();
    for (feature, _) in MEMBER_DEFAULTS {
        all_read.insert(feature.into(), json!("read"));
    }
    let refused = api
        .owner(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "reader", "grants": all_read})),
            400,
        )
        .await;
    assert_eq!(refused["field"], "grants", "{refused}");
    assert!(
        MANAGE_ONLY
            .iter()
            .any(|f| refused["message"].as_str().unwrap_or("").contains(f)),
        "{refused}"
    );
    for f in MANAGE_ONLY {
        all_read.remove(f);
    }
    api.owner(
        Method::POST,
        "/api/v1/roles",
        Some(json!({"name": "reader", "description": "read on everything", "grants": all_read})),
        201,
    )
    .await;
    api.owner(
        Method::POST,
        "/api/v1/roles",
        Some(json!({"name": "secrets-admin", "grants": {"secret_providers": "manage"}})),
        201,
    )
    .await;
    api.owner(
        Method::POST,
        "/api/v1/roles",
        Some(json!({"name": "no-access"})),
        201,
    )
    .await;

    let mut tokens = HashMap::new();
    let mut user_ids = HashMap::new();
    tokens.insert(Who::Owner.email(), BOOTSTRAP_TOKEN.to_owned());
    let members = api.owner(Method::GET, "/api/v1/members", None, 200).await;
    user_ids.insert(
        Who::Owner.email(),
        members[0]["user_id"].as_str().expect("owner id").to_owned(),
    );
    for (who, role) in [
        (Who::Member, "member"),
        (Who::Reader, "reader"),
        (Who::SecretsAdmin, "secrets-admin"),
        (Who::NoAccess, "no-access"),
    ] {
        let (id, token) = person(store, who.email()).await;
        let added = api
            .owner(
                Method::POST,
                "/api/v1/members",
                Some(json!({"email": who.email(), "role": role})),
                201,
            )
            .await;
        assert_eq!(added["role"], role);
        tokens.insert(who.email(), token);
        user_ids.insert(who.email(), id);
    }
    Principals { tokens, user_ids }
}

/// Fresh, disposable things to put in a path, so an allowed DELETE never removes what a later
/// request needs.
async fn concrete(api: &Api<'_>, path: &str, n: usize) -> String {
    let mut out = path.to_owned();
    if path.starts_with("/api/v1/automations/{id}") {
        let a = api
            .owner(
                Method::POST,
                "/api/v1/automations",
                Some(json!({"name": format!("walk-{n}")})),
                201,
            )
            .await;
        out = out.replace("{id}", a["id"].as_str().expect("id"));
    }
    if path.starts_with("/api/v1/environment-variables/{id}") {
        let v = api
            .owner(
                Method::POST,
                "/api/v1/environment-variables",
                Some(json!({"key": format!("WALK_{n}"), "value": "x"})),
                201,
            )
            .await;
        out = out.replace("{id}", v["id"].as_str().expect("id"));
    }
    // Everything else gets ids that exist nowhere: the permission layer answers before any lookup.
    for param in ["{id}", "{uuid}", "{token_id}", "{user_id}"] {
        out = out.replace(param, &uuid::Uuid::new_v4().to_string());
    }
    out
}

#[tokio::test]
async fn every_route_for_every_role_matches_the_reference_matrix() {
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

        let mut n = 0;
        let mut mismatches = Vec::new();
        let mut walked = 0;
        let mut public_status = std::collections::HashMap::new();
        for (decl, _) in keyward_server::routes::table() {
            for who in Who::ALL {
                n += 1;
                let path = concrete(&api, decl.path, n).await;
                let method = Method::from_bytes(decl.method.as_str().as_bytes()).expect("method");
                let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
                let (status, value) = api
                    .call(people.token(who), method.clone(), &path, body)
                    .await;
                let allowed = expected_allowed(who, decl.need);
                let ok = if decl.need == Need::Public {
                    // Public routes ignore the bearer: every role gets the answer the Owner
                    // gets (a sign-in form refusing an empty password is a 403 for all).
                    let first = *public_status
                        .entry((decl.method.clone(), decl.path))
                        .or_insert(status);
                    status == first
                } else if allowed {
                    status != 401 && status != 403
                } else {
                    status == 403
                };
                if !ok {
                    mismatches.push(format!(
                        "{:?} {} {} ({:?}): expected {}, got {status} {value}",
                        who,
                        decl.method,
                        decl.path,
                        decl.need,
                        if allowed { "allowed" } else { "403" }
                    ));
                }
                walked += 1;
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} of {walked} route × role checks differ from the matrix ({}):\n{}",
            mismatches.len(),
            backend.name(),
            mismatches.join("\n")
        );
        // The walk covered every row, the RBAC routes themselves included.
        let table = keyward_server::routes::table();
        assert_eq!(walked, 5 * table.len());
        for path in [
            "/api/v1/roles/{id}",
            "/api/v1/members/{user_id}",
            "/api/v1/automations/{id}/permissions",
        ] {
            assert!(
                table.iter().any(|(d, _)| d.path == path),
                "{path} is not in the table"
            );
        }
    }
}

#[tokio::test]
async fn ids_of_another_organization_are_not_found_on_every_id_route() {
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

        // Things in organization A (the bootstrapped one).
        let automation = api
            .owner(
                Method::POST,
                "/api/v1/automations",
                Some(json!({"name": "crew"})),
                201,
            )
            .await;
        let automation_token = api
            .owner(
                Method::POST,
                "/api/v1/automations/crew/tokens",
                Some(json!({"name": "ci"})),
                201,
            )
            .await;
        let var = api
            .owner(
                Method::POST,
                "/api/v1/environment-variables",
                Some(json!({"key": "LOG_LEVEL", "value": "debug"})),
                201,
            )
            .await;
        let wi = api
            .owner(
                Method::POST,
                "/api/v1/workload-identity-configs",
                Some(json!({"name": "azure-prod", "cloud": "azure",
                            "tenant_id": "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00",
                            "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"})),
                201,
            )
            .await;
        let provider = api
            .owner(
                Method::POST,
                "/api/v1/secret-providers",
                Some(
                    json!({"name": "azure-static", "provider": "azure_key_vault", "auth": "static",
                            "vault_url": "https://my-vault.vault.azure.net/",
                            "static": {"tenant_id": "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00",
                                       "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                                       "client_secret": "not-a-real-secret"}}),
                ),
                201,
            )
            .await;
        let llm = api
            .owner(
                Method::POST,
                "/api/v1/llm-connections",
                Some(json!({"name": "openai", "provider": "openai",
                            "env": {"OPENAI_API_KEY": "sk-test"}})),
                201,
            )
            .await;
        let role = api
            .owner(Method::GET, "/api/v1/roles/reader", None, 200)
            .await;
        let gateway_route = api
            .owner(
                Method::POST,
                "/api/v1/gateway/routes",
                Some(json!({"name": "openai", "path_prefix": "/openai",
                            "upstream": "https://api.openai.com/v1",
                            "policy": "permit(principal, action, resource);"})),
                201,
            )
            .await;
        api.owner(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({"email": "pending@acme.example"})),
            201,
        )
        .await;
        let invitations = api
            .owner(Method::GET, "/api/v1/invitations", None, 200)
            .await;
        let invitation = invitations
            .as_array()
            .expect("invitations")
            .iter()
            .find(|i| i["email"] == "pending@acme.example")
            .expect("the pending invitation")
            .clone();
        let approval =
            crate::approvals::store_pending(store.as_ref(), api.org.parse().expect("org id")).await;
        crate::sessions_api::record_request(
            &store,
            dir.path(),
            api.org.parse().expect("org id"),
            "foreign-session",
            "user:someone",
        )
        .await;
        // Another person's personal token, and an organization the owner is not in.
        let member_tokens = api
            .call(
                people.token(Who::Member),
                Method::GET,
                "/api/v1/tokens",
                None,
            )
            .await
            .1;
        let (status, foreign_org) = api
            .call(
                people.token(Who::Member),
                Method::POST,
                "/api/v1/orgs",
                Some(json!({"name": "Elsewhere"})),
            )
            .await;
        assert_eq!(status, 201, "{foreign_org}");

        // The owner's second organization B, from which every id above is foreign.
        let b = api
            .owner(
                Method::POST,
                "/api/v1/orgs",
                Some(json!({"name": "Beta"})),
                201,
            )
            .await;
        let b = b["uuid"]
            .as_str()
            .or(b["id"].as_str())
            .expect("org id")
            .to_owned();

        let id_for = |path: &str| -> String {
            let s = |v: &Value| v["id"].as_str().expect("id").to_owned();
            if path.starts_with("/api/v1/automations/") {
                s(&automation)
            } else if path.starts_with("/api/v1/environment-variables/") {
                s(&var)
            } else if path.starts_with("/api/v1/workload-identity-configs/") {
                s(&wi)
            } else if path.starts_with("/api/v1/secret-providers/") {
                s(&provider)
            } else if path.starts_with("/api/v1/llm-connections/") {
                s(&llm)
            } else if path.starts_with("/api/v1/roles/") {
                s(&role)
            } else if path.starts_with("/api/v1/gateway/routes/") {
                s(&gateway_route)
            } else if path.starts_with("/api/v1/approvals/") {
                approval.clone()
            } else if path.starts_with("/api/v1/sessions/") {
                "foreign-session".to_owned()
            } else if path.starts_with("/api/v1/invitations/") {
                s(&invitation)
            } else if path.starts_with("/api/v1/tokens/") {
                s(&member_tokens[0])
            } else {
                panic!("no foreign id for {path}: add one to this test")
            }
        };
        let mut checked = 0;
        let mut wrong = Vec::new();
        for (decl, _) in keyward_server::routes::table() {
            if !decl.path.contains('{') || matches!(decl.need, Need::Public | Need::Automation) {
                continue;
            }
            let path = decl
                .path
                .replace(
                    "{uuid}",
                    foreign_org["uuid"]
                        .as_str()
                        .or(foreign_org["id"].as_str())
                        .expect("org id"),
                )
                .replace("{user_id}", people.user_id(Who::Member))
                .replace(
                    "{token_id}",
                    automation_token["id"].as_str().expect("token id"),
                );
            let path = if path.contains("{id}") {
                path.replace("{id}", &id_for(decl.path))
            } else {
                path
            };
            // Bodies that parse, so the answer is about the id and not the body.
            let body = match (decl.method.as_str(), decl.path) {
                ("GET" | "DELETE", _) => None,
                (_, p) if p.ends_with("/tokens") => Some(json!({"name": "x"})),
                (_, p) if p.ends_with("/environment-variables") => {
                    Some(json!({"environment_variables": []}))
                }
                (_, p) if p.starts_with("/api/v1/members/") => Some(json!({"role": "member"})),
                _ => Some(json!({})),
            };
            let method = Method::from_bytes(decl.method.as_str().as_bytes()).expect("method");
            let (status, value) = api.call_in(&b, BOOTSTRAP_TOKEN, method, &path, body).await;
            if status != 404 {
                wrong.push(format!("{} {path}: {status} {value}", decl.method));
            }
            checked += 1;
        }
        assert!(
            wrong.is_empty(),
            "{} ({}) of {checked} id routes found another organization's id:\n{}",
            wrong.len(),
            backend.name(),
            wrong.join("\n")
        );
        // And the things are still there in A.
        api.owner(Method::GET, "/api/v1/automations/crew", None, 200)
            .await;
        api.owner(Method::GET, "/api/v1/roles/reader", None, 200)
            .await;
        let members = api.owner(Method::GET, "/api/v1/members", None, 200).await;
        assert_eq!(members.as_array().map(Vec::len), Some(5), "{members}");
    }
}
