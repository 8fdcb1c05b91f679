//! The people store (device codes, rate counters, sessions, invitations) on SQLite and, when
//! `KEYWARD_TEST_DATABASE_URL` is set, PostgreSQL: one test body per behaviour.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::{OrgId, UserId};
use keyward_store::*;

mod common;
use common::{Fixture, stores};

async fn person(store: &dyn Store, email: &str) -> UserId {
    let user = UserRow {
        id: UserId::new_random(),
        email: email.into(),
        created_at: 1,
    };
    store.create_user(&user).await.unwrap();
    user.id
}

fn device(device_hash: &str, user_code_hash: &str, expires_at: i64) -> DeviceCodeRow {
    DeviceCodeRow {
        device_hash: device_hash.into(),
        user_code_hash: user_code_hash.into(),
        client_id: "keyward-cli".into(),
        scope: "openid".into(),
        status: DeviceStatus::Pending,
        user_id: None,
        interval_secs: 5,
        last_polled_ms: None,
        created_at: 100,
        expires_at,
        decided_at: None,
    }
}

#[tokio::test]
async fn an_approved_device_code_is_spent_exactly_once() {
    for Fixture { store, .. } in stores().await {
        let user = person(store.as_ref(), "a@example.com").await;
        store
            .create_device_code(&device("d1", "u1", 700))
            .await
            .unwrap();
        assert!(matches!(
            store.create_device_code(&device("d2", "u1", 700)).await,
            Err(StoreError::Conflict { field: "user_code" })
        ));
        // Nothing to spend before approval.
        assert_eq!(store.consume_device("d1", 200).await.unwrap(), None);
        let row = store.decide_device("u1", user, true, 200).await.unwrap();
        assert_eq!(
            (row.status, row.user_id),
            (DeviceStatus::Approved, Some(user))
        );
        // A decided code cannot be decided again.
        assert!(matches!(
            store.decide_device("u1", user, false, 201).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(store.consume_device("d1", 202).await.unwrap(), Some(user));
        assert_eq!(store.consume_device("d1", 203).await.unwrap(), None);
        assert_eq!(
            store.device_by_hash("d1").await.unwrap().unwrap().status,
            DeviceStatus::Consumed
        );

        // Expired codes can be neither approved nor spent, and are purged later.
        store
            .create_device_code(&device("d3", "u3", 300))
            .await
            .unwrap();
        assert!(matches!(
            store.decide_device("u3", user, true, 300).await,
            Err(StoreError::NotFound)
        ));
        store.record_device_poll("d3", 299_000).await.unwrap();
        assert_eq!(
            store
                .device_by_user_code("u3")
                .await
                .unwrap()
                .unwrap()
                .last_polled_ms,
            Some(299_000)
        );
        assert_eq!(store.purge_device_codes(301).await.unwrap(), 1);
        assert!(store.device_by_hash("d3").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn rate_counters_count_within_a_window_and_restart_in_the_next() {
    for Fixture { store, .. } in stores().await {
        assert_eq!(store.rate_counter("k", 1000, 600).await.unwrap(), 0);
        for expected in 1..=3 {
            assert_eq!(
                store
                    .bump_rate_counter("k", 1000 + expected, 600)
                    .await
                    .unwrap(),
                expected
            );
        }
        assert_eq!(store.rate_counter("k", 1199, 600).await.unwrap(), 3);
        assert_eq!(store.rate_counter("other", 1199, 600).await.unwrap(), 0);
        // 1200 starts the next 600 s window.
        assert_eq!(store.rate_counter("k", 1200, 600).await.unwrap(), 0);
        assert_eq!(store.bump_rate_counter("k", 1200, 600).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn sessions_credentials_and_invitations() {
    for Fixture { store, .. } in stores().await {
        let user = person(store.as_ref(), "b@example.com").await;
        assert!(store.local_credential(user).await.unwrap().is_none());
        assert!(matches!(
            store.set_local_totp(user, Some(b"x"), 1).await,
            Err(StoreError::NotFound)
        ));
        store
            .set_local_password(user, "$argon2id$one", 1)
            .await
            .unwrap();
        store
            .set_local_totp(user, Some(b"sealed"), 2)
            .await
            .unwrap();
        store
            .set_local_password(user, "$argon2id$two", 3)
            .await
            .unwrap();
        let credential = store.local_credential(user).await.unwrap().unwrap();
        assert_eq!(credential.password_hash, "$argon2id$two");
        assert_eq!(
            credential.sealed_totp.as_deref(),
            Some(&b"sealed"[..]),
            "a new password keeps TOTP"
        );

        store
            .create_web_session(&WebSessionRow {
                hash: "s".into(),
                user_id: user,
                created_at: 1,
                expires_at: 10,
            })
            .await
            .unwrap();
        assert_eq!(
            store.web_session_user("s", 9).await.unwrap().map(|u| u.id),
            Some(user)
        );
        assert!(store.web_session_user("s", 10).await.unwrap().is_none());
        store.delete_web_session("s").await.unwrap();
        assert!(store.web_session_user("s", 5).await.unwrap().is_none());

        let org = OrgRow {
            id: OrgId::new_random(),
            name: "Acme".into(),
            created_at: 1,
        };
        store.create_org(&org, user, "owner").await.unwrap();
        let invitation = InvitationRow {
            id: "inv-i".into(),
            hash: "i".into(),
            org_id: org.id,
            email: "c@example.com".into(),
            role: "member".into(),
            invited_by: Some(user),
            created_at: 1,
            expires_at: 100,
            accepted_at: None,
        };
        store.create_invitation(&invitation).await.unwrap();
        assert_eq!(
            store.invitation_by_hash("i").await.unwrap(),
            Some(invitation.clone())
        );
        assert!(
            store.accept_invitation("i", 100).await.unwrap().is_none(),
            "expired"
        );
        let accepted = store.accept_invitation("i", 50).await.unwrap().unwrap();
        assert_eq!(accepted.accepted_at, Some(50));
        assert!(
            store.accept_invitation("i", 51).await.unwrap().is_none(),
            "once"
        );

        let invited = person(store.as_ref(), "c@example.com").await;
        store
            .add_membership(org.id, invited, "member", 2)
            .await
            .unwrap();
        assert!(matches!(
            store.add_membership(org.id, invited, "member", 3).await,
            Err(StoreError::Conflict { field: "member" })
        ));
        assert_eq!(
            store
                .membership(org.id, invited)
                .await
                .unwrap()
                .unwrap()
                .role,
            "member"
        );
    }
}

#[tokio::test]
async fn failures_count_per_key_and_are_forgotten_after_a_quiet_period() {
    for Fixture { store, .. } in stores().await {
        assert_eq!(store.failures("acct").await.unwrap(), None);
        assert_eq!(store.record_failure("acct", 1000, 3600).await.unwrap(), 1);
        assert_eq!(store.record_failure("acct", 1010, 3600).await.unwrap(), 2);
        assert_eq!(store.record_failure("addr", 1010, 3600).await.unwrap(), 1);
        assert_eq!(store.failures("acct").await.unwrap(), Some((2, 1010)));
        // An hour after the last failure the count starts over, and stale keys go away.
        assert_eq!(store.record_failure("acct", 4610, 3600).await.unwrap(), 1);
        assert_eq!(store.failures("addr").await.unwrap(), None);
        store.clear_failures("acct").await.unwrap();
        assert_eq!(store.failures("acct").await.unwrap(), None);
    }
}

fn invitation(id: &str, org: OrgId, by: UserId, created_at: i64, expires_at: i64) -> InvitationRow {
    InvitationRow {
        id: id.into(),
        hash: format!("hash-{id}"),
        org_id: org,
        email: format!("{id}@example.com"),
        role: "member".into(),
        invited_by: Some(by),
        created_at,
        expires_at,
        accepted_at: None,
    }
}

#[tokio::test]
async fn pending_invitations_are_listed_per_org_and_revoked_once() {
    for Fixture { store, .. } in stores().await {
        let owner = person(store.as_ref(), "owner@example.com").await;
        let org = OrgRow {
            id: OrgId::new_random(),
            name: "Acme".into(),
            created_at: 1,
        };
        let other = OrgRow {
            id: OrgId::new_random(),
            name: "Other".into(),
            created_at: 1,
        };
        store.create_org(&org, owner, "owner").await.unwrap();
        store.create_org(&other, owner, "owner").await.unwrap();
        let second = invitation("second", org.id, owner, 20, 1000);
        let first = invitation("first", org.id, owner, 10, 1000);
        let expired = invitation("expired", org.id, owner, 5, 100);
        let accepted = invitation("accepted", org.id, owner, 6, 1000);
        let elsewhere = invitation("elsewhere", other.id, owner, 7, 1000);
        for row in [&second, &first, &expired, &accepted, &elsewhere] {
            store.create_invitation(row).await.unwrap();
        }
        store
            .accept_invitation(&accepted.hash, 50)
            .await
            .unwrap()
            .unwrap();

        // Neither accepted nor expired, this organization's only, oldest first.
        let pending = store.pending_invitations(org.id, 100).await.unwrap();
        assert_eq!(pending, vec![first.clone(), second.clone()]);

        // Another organization cannot revoke it, nor can an accepted one be revoked.
        assert!(
            store
                .revoke_invitation(other.id, &first.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .revoke_invitation(org.id, &accepted.id)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.revoke_invitation(org.id, &first.id).await.unwrap(),
            Some(first.clone())
        );
        assert!(
            store
                .revoke_invitation(org.id, &first.id)
                .await
                .unwrap()
                .is_none(),
            "once"
        );
        // The revoked link opens nothing any more.
        assert!(
            store
                .invitation_by_hash(&first.hash)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .accept_invitation(&first.hash, 60)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.pending_invitations(org.id, 100).await.unwrap(),
            vec![second]
        );
    }
}
