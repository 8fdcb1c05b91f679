//! Every way of editing a stored recording that issue 17 names is detected, and the error names
//! the segment and line.
#![allow(clippy::unwrap_used)]

mod common;

use common::{compress, decompress, edit_lines, record_session, recorder};
use keyward_recording::{SegmentHead, Storage, VerifyError, verify};
use tempfile::TempDir;

async fn three_segments() -> (TempDir, Storage, Vec<SegmentHead>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path());
    let (rec, clock) = recorder(storage.clone());
    let heads = record_session(&rec, &clock, "victim", 3).await;
    verify(&storage, "victim", &heads).await.unwrap();
    (dir, storage, heads)
}

#[tokio::test]
async fn a_flipped_byte_in_the_compressed_object_is_reported_for_its_segment() {
    let (_dir, storage, heads) = three_segments().await;
    let mut bytes = storage.get_segment("victim", 1).await.unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    storage.overwrite_segment("victim", 1, bytes).await.unwrap();
    for expected in [&heads[..], &[]] {
        let err = verify(&storage, "victim", expected).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::Corrupt { segment: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("segment 1"), "{err}");
    }
}

#[tokio::test]
async fn an_edited_line_recompressed_is_reported_with_its_line_number() {
    let (_dir, storage, heads) = three_segments().await;
    edit_lines(&storage, "victim", 2, |lines| {
        lines[3] = lines[3].replace("p-openai-chat", "p-openai-chaT");
    })
    .await;
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::LineHash {
                segment: 2,
                line: 4,
                seq: 23,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("segment 2 line 4") && message.contains("edited"),
        "{message}"
    );
}

#[tokio::test]
async fn a_deleted_line_breaks_the_chain_at_the_next_line() {
    let (_dir, storage, heads) = three_segments().await;
    edit_lines(&storage, "victim", 0, |lines| {
        lines.remove(5);
    })
    .await;
    let err = verify(&storage, "victim", &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::ChainBroken {
                segment: 0,
                line: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("segment 0 line 6"), "{err}");
    verify(&storage, "victim", &heads).await.unwrap_err();
}

#[tokio::test]
async fn a_segment_cut_at_a_line_boundary_misses_its_close() {
    let (_dir, storage, heads) = three_segments().await;
    edit_lines(&storage, "victim", 2, |lines| lines.truncate(6)).await;
    let err = verify(&storage, "victim", &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::MissingClose {
                segment: 2,
                lines: 6
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(err.to_string().contains("segment 2"), "{err}");
}

#[tokio::test]
async fn a_truncation_given_a_forged_close_is_caught_by_the_audit_line_count() {
    let (_dir, storage, heads) = three_segments().await;
    edit_lines(&storage, "victim", 2, |lines| {
        lines.truncate(6);
        let last_hash = lines[5][lines[5].len() - 66..lines[5].len() - 2].to_owned();
        let close = format!(
            "{{\"seq\":26,\"at_ms\":1,\"kind\":\"close\",\"data\":{{}},\"prev\":\"{last_hash}\",\"hash\":\"{}\"}}",
            "0".repeat(64)
        );
        lines.push(rehash(&close));
    })
    .await;
    verify(&storage, "victim", &[]).await.unwrap();
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::AuditMismatch {
                segment: 2,
                what: "lines",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn a_compressed_object_cut_short_is_reported() {
    let (_dir, storage, heads) = three_segments().await;
    let bytes = storage.get_segment("victim", 0).await.unwrap();
    storage
        .overwrite_segment("victim", 0, bytes[..bytes.len() - 9].to_vec())
        .await
        .unwrap();
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Corrupt { segment: 0, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_deleted_middle_segment_is_named_with_or_without_heads() {
    let (_dir, storage, heads) = three_segments().await;
    storage.delete_segment("victim", 1).await.unwrap();
    for expected in [&heads[..], &[]] {
        let err = verify(&storage, "victim", expected).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::MissingSegment { segment: 1, .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_deleted_last_segment_is_only_detected_against_the_audit_heads() {
    let (_dir, storage, heads) = three_segments().await;
    storage.delete_segment("victim", 2).await.unwrap();
    let report = verify(&storage, "victim", &[]).await.unwrap();
    assert!(!report.anchored, "without heads the tail cannot be known");
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::MissingSegment { segment: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("audit log"), "{err}");
}

#[tokio::test]
async fn reordered_segments_are_misplaced() {
    let (_dir, storage, heads) = three_segments().await;
    let zero = storage.get_segment("victim", 0).await.unwrap();
    let one = storage.get_segment("victim", 1).await.unwrap();
    storage.overwrite_segment("victim", 0, one).await.unwrap();
    storage.overwrite_segment("victim", 1, zero).await.unwrap();
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Misplaced { segment: 0, ref found_segment, .. } if found_segment == "1"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_segment_moved_into_another_session_does_not_chain() {
    let (_dir, storage, _heads) = three_segments().await;
    let (rec, clock) = recorder(storage.clone());
    let other = record_session(&rec, &clock, "other", 1).await;
    let stolen = storage.get_segment("victim", 0).await.unwrap();
    storage.overwrite_segment("other", 0, stolen).await.unwrap();
    let err = verify(&storage, "other", &other).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Misplaced { segment: 0, ref found_session, .. } if found_session == "victim"),
        "{err:?}"
    );

    // Even with the header rewritten and its hash recomputed, the chain starts from the other
    // session's genesis.
    let text = decompress(&storage.get_segment("victim", 0).await.unwrap());
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[0] = rehash(&lines[0].replace("\"victim\"", "\"other\""));
    storage
        .overwrite_segment("other", 0, compress(&(lines.join("\n") + "\n")))
        .await
        .unwrap();
    let err = verify(&storage, "other", &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::ChainBroken {
                segment: 0,
                line: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_rewrite_with_every_hash_recomputed_is_caught_only_by_the_audit_heads() {
    let (_dir, storage, heads) = three_segments().await;
    // The attacker edits a body and recomputes the chain from there to the end.
    let mut prev = heads[0].head_hash.clone();
    for segment in 1..3 {
        let text = decompress(&storage.get_segment("victim", segment).await.unwrap());
        let mut out = String::new();
        for line in text.lines() {
            let line = line.replace("hello", "HELLO");
            let start = line.find(",\"prev\":\"").unwrap();
            let fixed = format!(
                "{},\"prev\":\"{prev}\",\"hash\":\"{}\"}}",
                &line[..start],
                "0".repeat(64)
            );
            let fixed = rehash(&fixed);
            prev = fixed[fixed.len() - 66..fixed.len() - 2].to_owned();
            out.push_str(&fixed);
            out.push('\n');
        }
        storage
            .overwrite_segment("victim", segment, compress(&out))
            .await
            .unwrap();
    }
    verify(&storage, "victim", &[]).await.unwrap();
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::AuditMismatch { segment: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_segment_added_after_the_fact_is_not_in_the_audit_heads() {
    let (_dir, storage, heads) = three_segments().await;
    let (rec, clock) = recorder(storage.clone());
    common::record_request(&rec, &clock, "victim", 9).await;
    let err = verify(&storage, "victim", &heads).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::UnexpectedSegment { segment: 3 }),
        "{err:?}"
    );
}

/// What an attacker without the audit log can do: recompute a line's hash from its bytes.
fn rehash(line: &str) -> String {
    use sha2::{Digest, Sha256};
    let cut = line.len() - 75;
    let body = format!("{}}}", &line[..cut]);
    let start = body.find(",\"prev\":\"").unwrap() + 9;
    let prev = &body[start..start + 64];
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(body.as_bytes());
    format!(
        "{},\"hash\":\"{}\"}}",
        &line[..cut],
        hex::encode(h.finalize())
    )
}
