//! The per-person guards (migration 0009) and the pending sign-in count on SQLite and (when
//! `KEYWARD_TEST_DATABASE_URL` is set) PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::UserId;
use keyward_store::*;

mod common;
use common::stores;

async fn person(s: &dyn Store, email: &str) -> UserId {
    let user = UserRow {
        id: UserId::new_random(),
        email: email.into(),
        created_at: 0,
    };
    s.create_user(&user).await.unwrap();
    user.id
}

fn session(hash: &str, user: UserId) -> WebSessionRow {
    WebSessionRow {
        hash: hash.into(),
        user_id: user,
        created_at: 100,
        expires_at: 10_000,
    }
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_never_an_older_one() {
    for f in stores().await {
        let s = f.store.as_ref();
        let alice = person(s, "alice@example.com").await;
        let bob = person(s, "bob@example.com").await;
        assert!(s.accept_totp_step(alice, 1000).await.unwrap());
        assert!(!s.accept_totp_step(alice, 1000).await.unwrap(), "replay");
        assert!(!s.accept_totp_step(alice, 999).await.unwrap(), "older");
        assert!(s.accept_totp_step(alice, 1001).await.unwrap());
        // Per person.
        assert!(s.accept_totp_step(bob, 1000).await.unwrap());
        // The token cut-off is kept apart from the TOTP step.
        assert_eq!(s.tokens_valid_after(alice).await.unwrap(), None);
        s.end_other_sessions(alice, None, 500).await.unwrap();
        assert!(!s.accept_totp_step(alice, 1001).await.unwrap());
        assert_eq!(s.tokens_valid_after(alice).await.unwrap(), Some(500));
    }
}

#[tokio::test]
async fn ending_other_sessions_keeps_one_and_spares_other_people() {
    for f in stores().await {
        let s = f.store.as_ref();
        let alice = person(s, "alice@example.com").await;
        let bob = person(s, "bob@example.com").await;
        for (hash, who) in [("a1", alice), ("a2", alice), ("a3", alice), ("b1", bob)] {
            s.create_web_session(&session(hash, who)).await.unwrap();
        }
        assert_eq!(
            s.end_other_sessions(alice, Some("a2"), 200).await.unwrap(),
            2
        );
        assert!(s.web_session_user("a1", 150).await.unwrap().is_none());
        assert!(s.web_session_user("a2", 150).await.unwrap().is_some());
        assert!(s.web_session_user("b1", 150).await.unwrap().is_some());
        assert_eq!(s.tokens_valid_after(alice).await.unwrap(), Some(200));
        assert_eq!(s.tokens_valid_after(bob).await.unwrap(), None);
        assert_eq!(s.end_other_sessions(alice, None, 300).await.unwrap(), 1);
        assert!(s.web_session_user("a2", 150).await.unwrap().is_none());
        assert_eq!(s.tokens_valid_after(alice).await.unwrap(), Some(300));
    }
}

#[tokio::test]
async fn live_pending_sign_ins_are_counted_after_expired_ones_go() {
    for f in stores().await {
        let s = f.store.as_ref();
        for (hash, created) in [("old", 0), ("new1", 1000), ("new2", 1000)] {
            s.create_sso_pending(&SsoPendingRow {
                state_hash: hash.into(),
                protocol: "saml".into(),
                nonce: "n".into(),
                pkce_verifier: String::new(),
                next_path: "/".into(),
                created_at: created,
                expires_at: created + 600,
            })
            .await
            .unwrap();
        }
        assert_eq!(s.live_sso_pending(1001).await.unwrap(), 2);
        assert!(
            s.find_sso_pending("old", 0).await.unwrap().is_none(),
            "purged"
        );
        assert_eq!(s.live_sso_pending(1600).await.unwrap(), 0);
    }
}
