//! The SSO tables (migration 0006) on SQLite and (when `KEYWARD_TEST_DATABASE_URL` is set)
//! PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use keyward_core::{OrgId, UserId};
use keyward_store::*;

mod common;
use common::stores;

fn pending(state_hash: &str, now: i64) -> SsoPendingRow {
    SsoPendingRow {
        state_hash: state_hash.into(),
        protocol: "oidc".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        next_path: "/".into(),
        created_at: now,
        expires_at: now + 600,
    }
}

#[tokio::test]
async fn a_pending_sign_in_is_taken_once_and_not_after_it_expires() {
    for f in stores().await {
        let s = f.store.as_ref();
        s.create_sso_pending(&pending("a", 1000)).await.unwrap();
        s.create_sso_pending(&pending("b", 1000)).await.unwrap();
        assert!(s.find_sso_pending("a", 1001).await.unwrap().is_some());
        let taken = s.take_sso_pending("a", 1001).await.unwrap().unwrap();
        assert_eq!(taken, pending("a", 1000));
        assert_eq!(s.take_sso_pending("a", 1002).await.unwrap(), None);
        assert_eq!(s.find_sso_pending("a", 1002).await.unwrap(), None);
        // Expired: not found, not taken (and gone once another sign-in starts).
        assert_eq!(s.find_sso_pending("b", 1600).await.unwrap(), None);
        s.create_sso_pending(&pending("c", 1700)).await.unwrap();
        assert_eq!(s.take_sso_pending("b", 1000).await.unwrap(), None);
        assert!(matches!(
            s.create_sso_pending(&pending("c", 1700)).await,
            Err(StoreError::Conflict { .. })
        ));
    }
}

#[tokio::test]
async fn the_saml_replay_cache_answers_seen_once_per_id_until_it_expires() {
    for f in stores().await {
        let s = Arc::clone(&f.store);
        // Concurrent first uses: exactly one is not a replay.
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { s.saml_seen("_assertion-1", 2000, 1000).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for t in tries {
            if !t.await.unwrap() {
                fresh += 1;
            }
        }
        assert_eq!(fresh, 1);
        assert!(s.saml_seen("_assertion-1", 2000, 1500).await.unwrap());
        assert!(!s.saml_seen("_assertion-2", 2000, 1500).await.unwrap());
        // Past its expiry the id is forgotten (the assertion itself would be refused as expired).
        assert!(!s.saml_seen("_assertion-1", 3000, 2001).await.unwrap());
    }
}

#[tokio::test]
async fn the_first_organization_is_the_oldest() {
    for f in stores().await {
        let s = f.store.as_ref();
        assert_eq!(s.first_org().await.unwrap(), None);
        let user = UserRow {
            id: UserId::new_random(),
            email: "o@example.com".into(),
            created_at: 1,
        };
        s.create_user(&user).await.unwrap();
        let first = OrgRow {
            id: OrgId::new_random(),
            name: "first".into(),
            created_at: 5,
        };
        let later = OrgRow {
            id: OrgId::new_random(),
            name: "later".into(),
            created_at: 9,
        };
        s.create_org(&later, user.id, "owner").await.unwrap();
        s.create_org(&first, user.id, "owner").await.unwrap();
        assert_eq!(s.first_org().await.unwrap(), Some(first.id));
    }
}
