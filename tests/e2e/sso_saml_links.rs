//! Security review M3 for SAML: a person is the configured IdP's `(entity ID, NameID)`; the
//! signed email attribute links that identity to an account the first time only.

use serde_json::{Value, json};

use crate::common::*;
use crate::sso_oidc::Browser;
use crate::sso_saml::{idp_keys, options, relay, samlify, samlify_ready, start};

const ROLE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
const EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";

#[tokio::test(flavor = "multi_thread")]
async fn saml_people_are_their_name_id_and_an_address_links_only_once() {
    install_crypto();
    if !samlify_ready() {
        return;
    }
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let keys = idp_keys(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let base = format!("https://127.0.0.1:{port}");
        let server = Server::start(&options(&backend, dir.path(), port, &keys.2));
        let ca = server.ca_file.clone().unwrap();

        // Signs `name_id` in with the email attribute `email`: status, body, session.
        let sign_in = |name_id: &'static str, email: &'static str| {
            let (keys, base, ca) = (&keys, &base, &ca);
            async move {
                let mut browser = Browser::new(&[ca.as_path()]);
                let to = start(&mut browser, base).await;
                let response = samlify(
                    keys,
                    base,
                    &to,
                    name_id,
                    json!([{"name": EMAIL, "values": [email]}, {"name": ROLE, "values": ["member"]}]),
                );
                let landed = browser
                    .post_form(
                        &format!("{base}/auth/saml/acs"),
                        &[
                            ("SAMLResponse".to_owned(), response),
                            ("RelayState".to_owned(), relay(&to)),
                        ],
                    )
                    .await;
                let me = (landed.status == 303).then_some(());
                let me = match me {
                    Some(()) => Some(
                        serde_json::from_str::<Value>(
                            &browser.get(&format!("{base}/auth/session")).await.body,
                        )
                        .unwrap(),
                    ),
                    None => None,
                };
                (landed.status, landed.body, me)
            }
        };

        let (status, body, me) = sign_in("ada-0001", "ada@acme.example").await;
        assert_eq!(status, 303, "{name}: {body}");
        let ada = me.unwrap()["user"]["id"].clone();
        // The IdP changes her address: the NameID still names her.
        let (status, body, me) = sign_in("ada-0001", "ada.lovelace@acme.example").await;
        assert_eq!(status, 303, "{name}: {body}");
        assert_eq!(me.unwrap()["user"]["id"], ada, "{name}");
        // Another NameID with her first address is someone else.
        let (status, body, _) = sign_in("mallory-0002", "ada@acme.example").await;
        assert_eq!(status, 403, "{name}: {body}");
        assert!(
            body.contains("linked to a different identity"),
            "{name}: {body}"
        );
    }
}

/// An account someone made for another person's address before that person ever signed in (an
/// invitation link from any organization was enough to give it a password): the person's first
/// identity-provider sign-in ends that password and the personal access tokens made under it,
/// while an account without a password (the bootstrap owner's) keeps its tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_first_link_ends_the_credentials_of_a_pre_created_account() {
    install_crypto();
    if !samlify_ready() {
        return;
    }
    let backend = Backend::Sqlite;
    let dir = tempfile::tempdir().unwrap();
    let keys = idp_keys(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let base = format!("https://127.0.0.1:{port}");
    let server = Server::start(&options(&backend, dir.path(), port, &keys.2));
    let ca = server.ca_file.clone().unwrap();
    let store = crate::rbac::open_store(&backend, &dir.path().join("keyward")).await;
    let (victim_id, planted) = crate::rbac::person(store.as_ref(), "grace@acme.example").await;
    let victim: keyward_core::UserId = victim_id.parse().unwrap();
    store
        .set_local_password(
            victim,
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA",
            1,
        )
        .await
        .unwrap();
    let me = |token: String| {
        let client = server.client();
        let url = format!("{}/api/v1/tokens", server.url);
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(planted.clone()).await, 200);

    for (name_id, email) in [
        ("grace-0001", "grace@acme.example"),
        ("owner-0001", "owner@acme.example"),
    ] {
        let mut browser = crate::sso_oidc::Browser::new(&[ca.as_path()]);
        let to = start(&mut browser, &base).await;
        let response = samlify(
            &keys,
            &base,
            &to,
            name_id,
            json!([{"name": EMAIL, "values": [email]}, {"name": ROLE, "values": ["member"]}]),
        );
        let landed = browser
            .post_form(
                &format!("{base}/auth/saml/acs"),
                &[
                    ("SAMLResponse".to_owned(), response),
                    ("RelayState".to_owned(), relay(&to)),
                ],
            )
            .await;
        assert_eq!(landed.status, 303, "{email}: {}", landed.body);
    }
    assert_eq!(
        me(planted).await,
        401,
        "the planted token outlives the link"
    );
    assert!(store.local_credential(victim).await.unwrap().is_none());
    assert_eq!(
        me(BOOTSTRAP_TOKEN.to_owned()).await,
        200,
        "the owner had no password to end"
    );
}
