//! The same recording round-trips through a real S3-compatible server: moto's server mode
//! (`interop/.venv/bin/moto_server`, installed by scripts/test). Skipped with a reason when it
//! is absent, unless KEYWARD_REQUIRE_INTEROP=1.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../../tests/support/moto_server.rs"]
mod moto_server;

use common::{record_session, recorder};
use keyward_recording::{
    S3Credentials, Storage, StorageError, VerifyError, read_session, replay, verify,
};
use moto_server::start_moto;
use zeroize::Zeroizing;

fn credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Zeroizing::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        session_token: None,
    }
}

#[tokio::test]
async fn a_recording_round_trips_through_moto_s3_and_tampering_there_is_detected() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let created = reqwest::Client::new()
        .put(format!("{}/recordings", moto.url))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "{}",
        created.text().await.unwrap()
    );
    let url = format!(
        "s3://recordings/gw/sessions?endpoint={}&region=us-east-1",
        moto.url
    );
    let s3 = Storage::s3(&url, credentials()).unwrap();
    assert!(!format!("{s3:?}").contains("EXAMPLEKEY"));

    let (rec, clock) = recorder(s3.clone());
    let heads = record_session(&rec, &clock, "sess-s3", 3).await;
    record_session(&rec, &clock, "another", 1).await;

    let report = verify(&s3, "sess-s3", &heads).await.unwrap();
    assert_eq!(report.segments, heads);
    let sessions = s3.list_sessions().await.unwrap();
    let ids: Vec<&str> = sessions.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["another", "sess-s3"]);
    assert_eq!(sessions[1].segments, 3);
    assert!(sessions[1].last_modified.is_some());
    let segments = s3.list_segments("sess-s3").await.unwrap();
    assert_eq!(
        segments.iter().map(|s| s.bytes).collect::<Vec<_>>(),
        heads.iter().map(|h| h.bytes).collect::<Vec<_>>()
    );

    // Downloaded into a local directory, the same bytes verify against the same heads.
    let dir = tempfile::tempdir().unwrap();
    let local = Storage::local(dir.path());
    for s in &segments {
        let bytes = s3.get_segment("sess-s3", s.segment).await.unwrap();
        local
            .put_segment("sess-s3", s.segment, bytes)
            .await
            .unwrap();
    }
    verify(&local, "sess-s3", &heads).await.unwrap();
    let from_s3 = read_session(&s3, "sess-s3").await.unwrap();
    assert_eq!(from_s3, read_session(&local, "sess-s3").await.unwrap());
    let mut out = Vec::new();
    replay(&from_s3, 0.0, &mut out, false).unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("< [+40 ms] data: chunk 0 of 2")
    );

    // Segments are write-once: a second writer of the same segment is refused, not obeyed.
    let again = s3
        .put_segment("sess-s3", 0, b"overwrite".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(again, StorageError::AlreadyExists { .. }),
        "{again:?}"
    );

    let missing = s3.get_segment("sess-s3", 9).await.unwrap_err();
    assert!(
        matches!(missing, StorageError::NotFound { .. }),
        "{missing:?}"
    );

    // Tampered in the bucket: a flipped byte, then a deleted last segment.
    let mut bytes = s3.get_segment("sess-s3", 1).await.unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    s3.overwrite_segment("sess-s3", 1, bytes).await.unwrap();
    let err = verify(&s3, "sess-s3", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Corrupt { segment: 1, .. }),
        "{err:?}"
    );

    s3.overwrite_segment("sess-s3", 1, local.get_segment("sess-s3", 1).await.unwrap())
        .await
        .unwrap();
    verify(&s3, "sess-s3", &heads).await.unwrap();
    s3.delete_segment("sess-s3", 2).await.unwrap();
    let err = verify(&s3, "sess-s3", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::MissingSegment { segment: 2, .. }),
        "{err:?}"
    );
    drop(moto);
}

#[tokio::test]
async fn a_wrong_bucket_is_reported_with_the_servers_code() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let url = format!("s3://no-such-bucket/p?endpoint={}", moto.url);
    let s3 = Storage::s3(&url, credentials()).unwrap();
    let err = s3.put_segment("s", 0, b"x".to_vec()).await.unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(
        message.contains("NoSuchBucket") || message.contains("does not exist"),
        "{message}"
    );
}
