//! Shared by the recording tests: a clock the test moves, a sample exchange, and byte surgery.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyward_recording::{
    Clock, Kind, RecorderOptions, SegmentHead, SegmentMeta, SessionRecorder, Storage,
};
use serde_json::json;

pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn recorder(storage: Storage) -> (SessionRecorder, Arc<ManualClock>) {
    recorder_with(storage, RecorderOptions::default())
}

pub fn recorder_with(
    storage: Storage,
    options: RecorderOptions,
) -> (SessionRecorder, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1_765_000_000_000)));
    (
        SessionRecorder::with_clock(storage, options, clock.clone()),
        clock,
    )
}

/// One request of a session: identity, request, decision, response and three chunks 40 ms apart.
pub async fn record_request(
    recorder: &SessionRecorder,
    clock: &ManualClock,
    session: &str,
    n: u32,
) -> SegmentHead {
    let mut w = recorder
        .open_segment(
            session,
            SegmentMeta {
                caller: Some("agent:crew".into()),
                route: Some("openai".into()),
                request_id: Some(format!("req-{n}")),
            },
        )
        .unwrap();
    w.record(
        Kind::Identity,
        json!({"subject": "agent:crew", "kind": "workload"}),
    );
    w.request(
        "POST",
        &format!("/v1/chat/completions?n={n}"),
        [("content-type", "application/json")],
        Some(format!(r#"{{"prompt":"hello {n}","key":"[MASKED:aws_secret_key]"}}"#).as_bytes()),
    );
    w.record(
        Kind::Decision,
        json!({"effect": "allow", "policies": ["p-openai-chat"]}),
    );
    clock.advance(120);
    w.response(200, [("content-type", "text/event-stream")]);
    for i in 0..3 {
        clock.advance(40);
        w.response_chunk(format!("data: chunk {i} of {n}\n\n").as_bytes());
    }
    w.record(Kind::Timing, json!({"upstream_ms": 240}));
    clock.advance(5);
    w.close().await.unwrap()
}

/// A minimal request whose close result is returned, not unwrapped.
pub async fn try_record_request(
    recorder: &SessionRecorder,
    clock: &ManualClock,
    session: &str,
) -> Result<SegmentHead, keyward_recording::StorageError> {
    let mut w = recorder
        .open_segment(session, SegmentMeta::default())
        .unwrap();
    w.request("GET", "/", [], None);
    clock.advance(1);
    w.close().await
}

/// A session of `requests` segments.
pub async fn record_session(
    recorder: &SessionRecorder,
    clock: &ManualClock,
    session: &str,
    requests: u32,
) -> Vec<SegmentHead> {
    let mut heads = Vec::new();
    for n in 0..requests {
        heads.push(record_request(recorder, clock, session, n).await);
        clock.advance(1000);
    }
    heads
}

pub fn decompress(bytes: &[u8]) -> String {
    String::from_utf8(zstd::stream::decode_all(bytes).unwrap()).unwrap()
}

pub fn compress(text: &str) -> Vec<u8> {
    zstd::stream::encode_all(text.as_bytes(), 3).unwrap()
}

/// Rewrites a segment's decompressed lines with `edit` and stores it back recompressed.
pub async fn edit_lines(
    storage: &Storage,
    session: &str,
    segment: u64,
    edit: impl FnOnce(&mut Vec<String>),
) {
    let text = decompress(&storage.get_segment(session, segment).await.unwrap());
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    storage
        .overwrite_segment(session, segment, compress(&out))
        .await
        .unwrap();
}
