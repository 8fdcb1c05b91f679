//! Security review M3 and L4 (SSO part), against the real OpenID Provider of `sso_oidc`:
//! accounts are found by the provider's `(issuer, sub)`; an address links an identity only the
//! first time and only when the provider vouches for it; the provider's roles keep deciding
//! after the first sign-in (personal access tokens, the Owner role).

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::sso_oidc::{
    Browser, callback_for, free_port, idp_accounts_file, keycloak_options, node_ready, start,
    start_idp,
};

/// What the IdP says about each login from now on.
fn idp_says(dir: &Path, accounts: Value) {
    std::fs::write(idp_accounts_file(dir), accounts.to_string()).unwrap();
}

/// Signs `login` in through the IdP in a fresh browser: the landing status and body, and the
/// signed-in session (`/auth/session`) when it landed.
async fn sign_in(server: &Server, cas: &[&Path], login: &str) -> (u16, String, Option<Value>) {
    let mut browser = Browser::new(cas);
    let auth_url = start(&mut browser, server).await;
    let callback = callback_for(&mut browser, server, &auth_url, login).await;
    let landed = browser.get(&callback).await;
    if landed.status != 303 {
        assert!(browser.cookie("keyward_session").is_none(), "{login}");
        return (landed.status, landed.body, None);
    }
    let me = browser.get(&format!("{}/auth/session", server.url)).await;
    let me: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["signed_in"], true, "{me}");
    (landed.status, landed.body, Some(me))
}

/// A personal access token of `user`, as one they made earlier would be stored.
async fn personal_token(options: &ServerOptions, user: &str) -> String {
    let token = keyward_store::secret::generate_token("kwp_").unwrap();
    let sql = format!(
        "INSERT INTO api_tokens (id, kind, hash, prefix, name, user_id, created_at) \
         VALUES ('{}', 'personal', '{}', '{}', 'laptop', '{user}', 0)",
        uuid::Uuid::new_v4(),
        keyward_store::secret::hash_token(&token),
        keyward_store::secret::display_prefix(&token),
    );
    assert_eq!(exec_sql(options, &sql).await, 1);
    token
}

async fn orgs_with(server: &Server, token: &str) -> (u16, Value) {
    call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/orgs", server.url),
        Some(token),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sso_accounts_are_linked_by_subject_and_follow_the_providers_roles() {
    install_crypto();
    if !node_ready() {
        return;
    }
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let idp = start_idp(dir.path(), &format!("https://127.0.0.1:{port}"));
        let options = keycloak_options(&backend, dir.path(), &idp, port);
        let server = Server::start(&options);
        let ca = server.ca_file.clone().unwrap();
        let cas = [ca.as_path(), idp.trust.as_path()];

        // M3: an IdP account presenting the bootstrap owner's address, unverified or with no
        // verdict at all, does not become the owner (nor anyone).
        for verdict in [json!(false), Value::Null] {
            idp_says(
                dir.path(),
                json!({"mallory": {"email": "owner@acme.example", "email_verified": verdict,
                                   "roles": ["factory-admin"]}}),
            );
            let (status, body, me) = sign_in(&server, &cas, "mallory").await;
            assert_eq!(status, 403, "{name} {verdict}: {body} {me:?}");
            assert!(body.contains("does not vouch for your address"), "{body}");
        }
        // Usernames are not addresses: upn/preferred_username naming the owner match nobody.
        idp_says(
            dir.path(),
            json!({"mallory": {"email": null, "upn": "owner@acme.example",
                               "preferred_username": "owner@acme.example", "roles": ["member"]}}),
        );
        let (status, body, _) = sign_in(&server, &cas, "mallory").await;
        assert_eq!(status, 403, "{name}: {body}");

        // A verified first sign-in links carol's identity (sub "carol") to a new account.
        idp_says(
            dir.path(),
            json!({"carol": {"email": "carol@acme.example", "roles": ["member"]}}),
        );
        let (status, body, me) = sign_in(&server, &cas, "carol").await;
        assert_eq!(status, 303, "{name}: {body}");
        let me = me.unwrap();
        let carol = me["user"]["id"].as_str().unwrap().to_owned();
        assert_eq!(me["user"]["email"], "carol@acme.example");

        // Her address changes at the IdP (even to an unverified one): still her account.
        idp_says(
            dir.path(),
            json!({"carol": {"email": "carol.new@acme.example", "email_verified": false,
                             "roles": ["member"]}}),
        );
        let (status, body, me) = sign_in(&server, &cas, "carol").await;
        assert_eq!(status, 303, "{name}: {body}");
        assert_eq!(me.unwrap()["user"]["id"], carol.as_str());

        // Another subject presenting her (verified) address is not her.
        idp_says(
            dir.path(),
            json!({"carol-2": {"email": "carol@acme.example", "roles": ["member"]}}),
        );
        let (status, body, _) = sign_in(&server, &cas, "carol-2").await;
        assert_eq!(status, 403, "{name}: {body}");
        assert!(
            body.contains("linked to a different identity"),
            "{name}: {body}"
        );

        // L4: a personal access token stops working once a sign-in shows she lost the role...
        let token = personal_token(&options, &carol).await;
        assert_eq!(orgs_with(&server, &token).await.0, 200, "{name}");
        idp_says(dir.path(), json!({"carol": {"roles": []}}));
        let (status, body, _) = sign_in(&server, &cas, "carol").await;
        assert_eq!(status, 403, "{name}: {body}");
        let (status, body) = orgs_with(&server, &token).await;
        assert_eq!(status, 403, "{name}: {body}");
        assert_eq!(body["error"], "not_assigned", "{body}");
        // ... and works again once she is assigned again and signs in.
        idp_says(dir.path(), json!({"carol": {"roles": ["member"]}}));
        assert_eq!(sign_in(&server, &cas, "carol").await.0, 303, "{name}");
        assert_eq!(orgs_with(&server, &token).await.0, 200, "{name}");

        // factory-admin is applied at every sign-in: granted, then withdrawn.
        let role = |me: Option<Value>| me.unwrap()["organizations"][0]["role"].clone();
        idp_says(
            dir.path(),
            json!({"dave@acme.example": {"roles": ["factory-admin"]}}),
        );
        let (_, _, me) = sign_in(&server, &cas, "dave@acme.example").await;
        assert_eq!(role(me), "owner", "{name}");
        idp_says(
            dir.path(),
            json!({"dave@acme.example": {"roles": ["member"]}}),
        );
        let (_, _, me) = sign_in(&server, &cas, "dave@acme.example").await;
        assert_eq!(
            role(me),
            "member",
            "{name}: demoted at the IdP, demoted here"
        );
        idp_says(dir.path(), json!({"carol": {"roles": ["factory-admin"]}}));
        let (_, _, me) = sign_in(&server, &cas, "carol").await;
        assert_eq!(role(me), "owner", "{name}: a member promoted at the IdP");

        // The last owner is never demoted: carol is made the only owner, then loses the role.
        let demoted = exec_sql(
            &options,
            "UPDATE memberships SET role = 'member' WHERE user_id = \
             (SELECT id FROM users WHERE email = 'owner@acme.example')",
        )
        .await;
        assert_eq!(demoted, 1);
        idp_says(dir.path(), json!({"carol": {"roles": ["member"]}}));
        let (_, _, me) = sign_in(&server, &cas, "carol").await;
        assert_eq!(role(me), "owner", "{name}: the last owner stays");
        assert!(
            server.stderr().contains("last owner"),
            "{name}: the kept owner is logged"
        );
    }
}
