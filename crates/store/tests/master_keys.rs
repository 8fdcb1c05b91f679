//! Master-key rotation on both backends: re-sealing in batches, resuming, and what a start with
//! each key is told afterwards.
#![allow(clippy::unwrap_used)]

use keyward_store::crypto::{Aad, MasterKey};
use keyward_store::master_keys::{self, AdmitError, SealedColumn};
use keyward_store::*;

mod common;
use common::stores;

fn key_row(kid: &str, sealed: Vec<u8>) -> SigningKeyRow {
    SigningKeyRow {
        kid: kid.into(),
        alg: "RS256".into(),
        source: KeySource::Generated,
        fingerprint: format!("fp-{kid}"),
        public_jwk: "{}".into(),
        sealed_private_key: Some(sealed),
        published_at: 1,
        activates_at: 2,
        activation_recorded: false,
        retires_at: None,
        retired_at: None,
    }
}

#[tokio::test]
async fn a_resumed_rotation_skips_what_is_done_and_retires_the_old_key() {
    for f in stores().await {
        let s = f.store.as_ref();
        let (old, _) = MasterKey::generate().unwrap();
        let (mut new, _) = MasterKey::generate().unwrap();
        let kids: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        for kid in &kids {
            let aad = Aad::SigningKey { kid }.bytes();
            let sealed = old.seal(&aad, format!("private {kid}").as_bytes()).unwrap();
            s.insert_signing_key(&key_row(kid, sealed)).await.unwrap();
        }
        master_keys::keep_audit_key(s, &old).await.unwrap();
        s.begin_master_rotation(&old.id_hex(), &new.id_hex(), 10)
            .await
            .unwrap();

        // A first run that got through two batches of two before it died.
        let cells = s
            .sealed_cells(SealedColumn::SigningKey, None, 2)
            .await
            .unwrap();
        assert_eq!(cells.len(), 2);
        let mut done = Vec::new();
        for cell in &cells {
            let aad = Aad::SigningKey { kid: &cell.key.a }.bytes();
            let plain = old.open(&aad, &cell.sealed).unwrap();
            done.push((
                cell.key.clone(),
                cell.sealed.clone(),
                new.seal(&aad, &plain).unwrap(),
            ));
        }
        assert_eq!(
            s.reseal_cells(SealedColumn::SigningKey, &done)
                .await
                .unwrap(),
            2
        );
        // Meanwhile no server may start, whatever key it has.
        let mut probe = MasterKey::generate().unwrap().0;
        assert!(matches!(
            master_keys::admit(s, &mut probe).await,
            Err(AdmitError::Unfinished { .. })
        ));

        let mut batches = Vec::new();
        let report = master_keys::reseal_all(s, &old, &new, 2, |column, r| {
            batches.push((column, r.resealed))
        })
        .await
        .unwrap();
        assert_eq!((report.resealed, report.already), (4, 2), "{report:?}");
        assert_eq!(batches.len(), 3, "{batches:?}");
        for key in s.signing_keys().await.unwrap() {
            let sealed = key.sealed_private_key.unwrap();
            assert_eq!(MasterKey::sealed_key_id(&sealed), Some(new.id_hex()));
            let aad = Aad::SigningKey { kid: &key.kid }.bytes();
            assert_eq!(
                &new.open(&aad, &sealed).unwrap()[..],
                format!("private {}", key.kid).as_bytes()
            );
        }
        // The audit key moved with the rest and is the old key's derived one.
        let audit = master_keys::stored_audit_key(s, &[&new])
            .await
            .unwrap()
            .unwrap();
        let rows = s
            .append_audit(
                &old.audit_key(),
                &[NewAuditEvent {
                    at_ms: 1,
                    kind: "x".into(),
                    org_id: None,
                    actor: "a".into(),
                    data: serde_json::json!({}),
                }],
            )
            .await
            .unwrap();
        assert!(audit.is_keyed(&rows[0]));

        s.finish_master_rotation(&old.id_hex(), &new.id_hex(), 20)
            .await
            .unwrap();
        master_keys::admit(s, &mut new).await.unwrap();
        assert!(new.audit_key().is_keyed(&rows[0]));
        let mut old = old;
        match master_keys::admit(s, &mut old).await {
            Err(AdmitError::Retired { successor, .. }) => assert_eq!(successor, new.id_hex()),
            other => panic!("{other:?}"),
        }
    }
}
