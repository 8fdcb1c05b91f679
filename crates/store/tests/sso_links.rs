//! External identity links (security review M3, L4) on both backends.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

mod common;

use keyward_core::UserId;
use keyward_store::*;

use common::stores;

async fn user(store: &dyn Store, email: &str) -> UserId {
    let id = UserId::new_random();
    store
        .create_user(&UserRow {
            id,
            email: email.into(),
            created_at: 1,
        })
        .await
        .unwrap();
    id
}

fn link(issuer: &str, subject: &str, user: UserId, at: i64) -> SsoLinkRow {
    SsoLinkRow {
        issuer: issuer.into(),
        subject: subject.into(),
        user_id: user,
        email: Some("a@acme.example".into()),
        admitted: true,
        created_at: at,
        last_seen_at: at,
    }
}

#[tokio::test]
async fn an_identity_links_one_account_and_an_account_one_identity_per_provider() {
    for f in stores().await {
        let s = f.store.as_ref();
        let name = s.backend();
        let alice = user(s, "a@acme.example").await;
        let bob = user(s, "b@acme.example").await;
        assert_eq!(s.sso_link("https://idp", "sub-a").await.unwrap(), None);
        assert_eq!(s.sso_admitted(alice).await.unwrap(), None, "{name}");
        s.create_sso_link(&link("https://idp", "sub-a", alice, 10))
            .await
            .unwrap();
        let found = s.sso_link("https://idp", "sub-a").await.unwrap().unwrap();
        assert_eq!((found.user_id, found.admitted), (alice, true), "{name}");
        // The same identity for bob, or another identity at the same provider for alice: taken.
        for taken in [
            link("https://idp", "sub-a", bob, 11),
            link("https://idp", "sub-other", alice, 11),
        ] {
            assert!(
                matches!(
                    s.create_sso_link(&taken).await,
                    Err(StoreError::Conflict { .. })
                ),
                "{name}"
            );
        }
        // Another provider may link alice too (a change of identity provider).
        s.create_sso_link(&link("urn:saml-idp", "alice", alice, 12))
            .await
            .unwrap();

        // The most recent sign-in decides; the address is kept when a sign-in has none.
        s.record_sso_sign_in("https://idp", "sub-a", None, false, 20)
            .await
            .unwrap();
        assert_eq!(s.sso_admitted(alice).await.unwrap(), Some(false), "{name}");
        let found = s.sso_link("https://idp", "sub-a").await.unwrap().unwrap();
        assert_eq!(found.email.as_deref(), Some("a@acme.example"));
        assert_eq!(found.last_seen_at, 20);
        s.record_sso_sign_in("urn:saml-idp", "alice", Some("new@acme.example"), true, 30)
            .await
            .unwrap();
        assert_eq!(s.sso_admitted(alice).await.unwrap(), Some(true), "{name}");
        assert!(matches!(
            s.record_sso_sign_in("https://idp", "nobody", None, true, 40)
                .await,
            Err(StoreError::NotFound)
        ));
    }
}
