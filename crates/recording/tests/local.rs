//! A recording written to a local directory reads back, verifies against its audit heads and
//! replays as the exchange it was.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{record_request, record_session, recorder, recorder_with};
use keyward_recording::{
    Kind, RecorderOptions, SegmentMeta, SessionRecorder, Storage, StorageError, read_session,
    replay, session_info, verify,
};
use serde_json::json;

#[tokio::test]
async fn a_session_of_three_requests_round_trips_and_verifies_against_its_heads() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::from_url(dir.path().to_str().unwrap()).unwrap();
    let (rec, clock) = recorder(storage.clone());
    let heads = record_session(&rec, &clock, "sess-1", 3).await;

    assert_eq!(
        heads.iter().map(|h| h.segment).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(heads.iter().all(|h| h.lines == 10 && h.bytes > 0));

    let report = verify(&storage, "sess-1", &heads).await.unwrap();
    assert!(report.anchored);
    assert_eq!(report.records, 30);
    assert_eq!(report.segments, heads);

    let records = read_session(&storage, "sess-1").await.unwrap();
    assert_eq!(records.len(), 30);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    let kinds: Vec<&str> = records[..10].iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "segment",
            "identity",
            "request",
            "decision",
            "response",
            "response_chunk",
            "response_chunk",
            "response_chunk",
            "timing",
            "close"
        ]
    );
    assert_eq!(records[0].data["caller"], "agent:crew");
    assert_eq!(records[2].data["method"], "POST");
    // The chain runs across segments: segment 1 starts where segment 0 ended.
    assert_eq!(records[10].prev, heads[0].head_hash);
    assert_eq!(records[5].at_ms - records[4].at_ms, 40);

    let listed = storage.list_sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, "sess-1");
    assert_eq!(listed[0].segments, 3);
    assert!(listed[0].first_modified.is_some());
    assert_eq!(storage.list_segments("sess-1").await.unwrap().len(), 3);

    let info = session_info(&storage, "sess-1").await.unwrap();
    assert_eq!(info.segments, 3);
    assert_eq!(info.caller.as_deref(), Some("agent:crew"));
    assert_eq!(info.route.as_deref(), Some("openai"));
    assert_eq!(info.first_at_ms, records[0].at_ms);
    assert_eq!(info.last_at_ms, records[29].at_ms);
    assert_eq!(info.bytes, heads.iter().map(|h| h.bytes).sum::<u64>());
}

#[tokio::test]
async fn files_are_private_and_a_segment_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sessions");
    let storage = Storage::from_url(&format!("file://{}", root.display())).unwrap();
    let (rec, clock) = recorder(storage.clone());
    record_session(&rec, &clock, "s", 1).await;

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("s")), 0o700);
    let file = root.join("s/00000000.jsonl.zst");
    assert_eq!(mode(&file), 0o600);
    let names: Vec<_> = std::fs::read_dir(root.join("s")).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file is left behind");

    let err = storage
        .put_segment("s", 0, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn replay_prints_the_masked_exchange_with_its_timing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path());
    let (rec, clock) = recorder(storage.clone());
    record_session(&rec, &clock, "sess-r", 1).await;
    let records = read_session(&storage, "sess-r").await.unwrap();

    let mut out = Vec::new();
    replay(&records, 0.0, &mut out, false).unwrap();
    let out = String::from_utf8(out).unwrap();
    let expected_in_order = [
        "== session sess-r segment 0 (caller agent:crew, route openai)",
        "> POST /v1/chat/completions?n=0",
        "> content-type: application/json",
        r#"> {"prompt":"hello 0","key":"[MASKED:aws_secret_key]"}"#,
        r#"= decision: {"effect":"allow","policies":["p-openai-chat"]}"#,
        "< 200",
        "< content-type: text/event-stream",
        "< [+40 ms] data: chunk 0 of 0",
        "< [+80 ms] data: chunk 1 of 0",
        "< [+120 ms] data: chunk 2 of 0",
        "== close (",
    ];
    let mut at = 0;
    for needle in expected_in_order {
        let found = out[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing after byte {at} in:\n{out}"));
        at += found + needle.len();
    }

    // With sleeping on, the 120 ms of chunk gaps plus the 120 ms before the response are slept,
    // divided by the speed.
    let started = std::time::Instant::now();
    replay(&records, 4.0, &mut Vec::new(), true).unwrap();
    let slept = started.elapsed().as_millis();
    assert!((55..1000).contains(&slept), "slept {slept} ms");
}

#[tokio::test]
async fn chunks_over_the_segment_limit_are_summarized_by_a_truncated_record() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path());
    let options = RecorderOptions {
        segment_limit_bytes: 4096,
        ..RecorderOptions::default()
    };
    let (rec, _clock) = recorder_with(storage.clone(), options);
    let mut w = rec.open_segment("big", SegmentMeta::default()).unwrap();
    w.request("GET", "/stream", [], None);
    for _ in 0..100 {
        w.response_chunk(&[b'x'; 500]);
    }
    w.record(Kind::Timing, json!({"huge": "y".repeat(10_000)}));
    let head = w.close().await.unwrap();
    verify(&storage, "big", &[head]).await.unwrap();

    let records = read_session(&storage, "big").await.unwrap();
    let chunks = records
        .iter()
        .filter(|r| r.kind == "response_chunk")
        .count();
    assert!(chunks < 10, "{chunks} chunks kept");
    let truncated = records.iter().find(|r| r.kind == "truncated").unwrap();
    assert_eq!(
        truncated.data["dropped_chunks"].as_u64().unwrap() as usize,
        100 - chunks
    );
    let timing = records.iter().find(|r| r.kind == "timing").unwrap();
    assert!(timing.data["omitted_bytes"].as_u64().unwrap() > 10_000);
    assert_eq!(records.last().unwrap().kind, "close");

    // One-byte chunks are bounded too: each line costs more than its data.
    let mut w = rec.open_segment("tiny", SegmentMeta::default()).unwrap();
    for _ in 0..10_000 {
        w.response_chunk(b"x");
    }
    let head = w.close().await.unwrap();
    assert!(head.lines < 30, "{} lines kept", head.lines);
    let records = read_session(&storage, "tiny").await.unwrap();
    let truncated = records.iter().find(|r| r.kind == "truncated").unwrap();
    assert_eq!(
        truncated.data["dropped_chunks"].as_u64().unwrap(),
        10_000 - (head.lines - 3)
    );
}

#[tokio::test]
async fn a_restarted_recorder_continues_the_chain_and_concurrent_requests_share_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path());
    let (rec, clock) = recorder(storage.clone());
    let mut heads = record_session(&rec, &clock, "long", 2).await;

    // A new recorder (a restarted gateway) knows nothing in memory: it reads the chain's end.
    let (rec2, clock2) = recorder(storage.clone());
    heads.push(record_request(&rec2, &clock2, "long", 7).await);
    assert_eq!(heads[2].segment, 2);

    // Several requests of one session closing at once chain in the order they close.
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let rec: SessionRecorder = rec2.clone();
            let clock = clock2.clone();
            tokio::spawn(async move { record_request(&rec, &clock, "long", 100 + n).await })
        })
        .collect();
    for t in tasks {
        heads.push(t.await.unwrap());
    }
    let report = verify(&storage, "long", &heads).await.unwrap();
    assert_eq!(report.segments.len(), 11);

    // The first recorder's memory is stale (the second wrote segments 2..10): its next write is
    // refused rather than overwriting, and the one after continues from storage.
    let err = common::try_record_request(&rec, &clock, "long")
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err:?}");
    heads.push(record_request(&rec, &clock, "long", 200).await);
    assert_eq!(heads.last().unwrap().segment, 11);
    verify(&storage, "long", &heads).await.unwrap();
}

#[tokio::test]
async fn unusable_session_ids_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = recorder(Storage::local(dir.path()));
    for bad in ["../etc", "a/b", "", ".x"] {
        let err = rec.open_segment(bad, SegmentMeta::default()).unwrap_err();
        assert!(err.to_string().contains("not usable"), "{err}");
    }
}
