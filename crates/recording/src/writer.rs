//! The writer the gateway holds: one [`SegmentWriter`] per request, buffered in memory (bounded),
//! chained and written as one object on [`SegmentWriter::close`].
//!
//! Hashes are assigned at close, under a per-session lock, so requests sharing a session id may
//! run at the same time: their segments chain in the order they close, and a failed write leaves
//! the chain where it was.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::chain::{build_line, genesis, parse_line};
use crate::clock::{Clock, SystemClock};
use crate::error::StorageError;
use crate::storage::{Storage, check_session_id};

/// What a record is. `Segment`, `Truncated` and `Close` are written by the writer itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Segment,
    Identity,
    Request,
    RequestChunk,
    Decision,
    Approval,
    Response,
    ResponseChunk,
    Timing,
    Truncated,
    Close,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Identity => "identity",
            Kind::Request => "request",
            Kind::RequestChunk => "request_chunk",
            Kind::Decision => "decision",
            Kind::Approval => "approval",
            Kind::Response => "response",
            Kind::ResponseChunk => "response_chunk",
            Kind::Timing => "timing",
            Kind::Truncated => "truncated",
            Kind::Close => "close",
        }
    }

    fn is_chunk(self) -> bool {
        matches!(self, Kind::RequestChunk | Kind::ResponseChunk)
    }
}

/// What a line costs besides its data (seq, time, kind, two hex hashes, the entry itself): counted
/// against the limit so a stream of one-byte chunks is bounded too.
const LINE_OVERHEAD: usize = 240;

/// What the audit log keeps of a closed segment; verification compares the store against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHead {
    pub session_id: String,
    pub segment: u64,
    /// Number of lines (records) in the segment, its `segment` and `close` records included.
    pub lines: u64,
    /// Hash of the segment's last line: the chain's head after this segment.
    pub head_hash: String,
    /// Size of the stored (compressed) object.
    pub bytes: u64,
}

/// Who and what a segment is about, written into its first record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub caller: Option<String>,
    pub route: Option<String>,
    pub request_id: Option<String>,
}

/// Bounds of the recorder.
#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// Uncompressed bytes one segment keeps in memory (record data plus about 240 bytes a line);
    /// body chunks past it are summarized by a `truncated` record and other records lose their data.
    pub segment_limit_bytes: usize,
    /// Sessions whose chain head is kept in memory; a forgotten one is read back from storage.
    pub cached_sessions: usize,
    /// zstd level.
    pub zstd_level: i32,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            segment_limit_bytes: 8 << 20,
            cached_sessions: 10_000,
            zstd_level: 3,
        }
    }
}

#[derive(Debug)]
struct ChainState {
    loaded: bool,
    next_segment: u64,
    next_seq: u64,
    head: String,
}

struct Inner {
    storage: Storage,
    clock: Arc<dyn Clock>,
    options: RecorderOptions,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<ChainState>>>>,
}

/// Records sessions into a [`Storage`]. Cheap to clone; share one per gateway.
#[derive(Clone)]
pub struct SessionRecorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecorder")
            .field("storage", &self.inner.storage.describe())
            .finish()
    }
}

impl SessionRecorder {
    /// A recorder on the system clock with default bounds.
    pub fn new(storage: Storage) -> SessionRecorder {
        Self::with_clock(storage, RecorderOptions::default(), Arc::new(SystemClock))
    }

    pub fn with_clock(storage: Storage, options: RecorderOptions, clock: Arc<dyn Clock>) -> Self {
        SessionRecorder {
            inner: Arc::new(Inner {
                storage,
                clock,
                options,
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Starts recording one request of `session_id` (the caller's `X-Keyward-Session`, or a fresh
    /// id for a one-request session). Fails only on an unusable id.
    pub fn open_segment(
        &self,
        session_id: &str,
        meta: SegmentMeta,
    ) -> Result<SegmentWriter, StorageError> {
        check_session_id(session_id)?;
        Ok(SegmentWriter {
            recorder: self.clone(),
            session_id: session_id.to_owned(),
            opened_at_ms: self.inner.clock.now_ms(),
            meta,
            entries: Vec::new(),
            data_bytes: 0,
            dropped: None,
        })
    }

    fn chain(&self, session_id: &str) -> Arc<tokio::sync::Mutex<ChainState>> {
        let mut sessions = match self.inner.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(state) = sessions.get(session_id) {
            return state.clone();
        }
        if sessions.len() >= self.inner.options.cached_sessions {
            // Only entries nobody is closing right now; they are read back from storage if needed.
            sessions.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let state = Arc::new(tokio::sync::Mutex::new(ChainState {
            loaded: false,
            next_segment: 0,
            next_seq: 0,
            head: genesis(session_id),
        }));
        sessions.insert(session_id.to_owned(), state.clone());
        state
    }
}

/// Reads where a stored session's chain ends, so a restarted gateway continues it.
async fn load_chain(
    storage: &Storage,
    session_id: &str,
    state: &mut ChainState,
) -> Result<(), StorageError> {
    let segments = storage.list_segments(session_id).await?;
    *state = ChainState {
        loaded: false,
        next_segment: 0,
        next_seq: 0,
        head: genesis(session_id),
    };
    if let Some(last) = segments.last() {
        let bytes = storage.get_segment(session_id, last.segment).await?;
        let text = zstd::stream::decode_all(bytes.as_slice()).map_err(|e| StorageError::Compress(format!(
            "the last stored segment {} of session {session_id} cannot be decompressed ({e}); run verify on the session",
            last.segment
        )))?;
        let text = String::from_utf8_lossy(&text);
        let line = text.lines().last().unwrap_or_default();
        let parsed = parse_line(line).map_err(|e| StorageError::Compress(format!(
            "the last line of stored segment {} of session {session_id} is unreadable ({e}); run verify on the session",
            last.segment
        )))?;
        state.next_segment = last.segment + 1;
        state.next_seq = parsed.seq + 1;
        state.head = parsed.stored_hash;
    }
    state.loaded = true;
    Ok(())
}

struct Entry {
    at_ms: u64,
    kind: Kind,
    data: String,
}

#[derive(Debug)]
struct Dropped {
    first_at_ms: u64,
    chunks: u64,
    bytes: u64,
}

/// One request's records, in memory until [`SegmentWriter::close`]. Dropping it unclosed
/// records nothing.
pub struct SegmentWriter {
    recorder: SessionRecorder,
    session_id: String,
    opened_at_ms: u64,
    meta: SegmentMeta,
    entries: Vec<Entry>,
    data_bytes: usize,
    dropped: Option<Dropped>,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("session_id", &self.session_id)
            .field("records", &self.entries.len())
            .finish()
    }
}

/// A body as record data: `{"text": …}` when it is UTF-8, else `{"base64": …}`.
pub fn body_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

fn headers_value<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Array(headers.into_iter().map(|(k, v)| json!([k, v])).collect())
}

impl SegmentWriter {
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Adds a record stamped now. `data` must already be masked: what is given here is stored.
    pub fn record(&mut self, kind: Kind, data: Value) {
        let at_ms = self.recorder.inner.clock.now_ms();
        let text = data.to_string();
        let limit = self.recorder.inner.options.segment_limit_bytes;
        if self.data_bytes + text.len() + LINE_OVERHEAD > limit {
            if kind.is_chunk() {
                let bytes = data
                    .get("body")
                    .map(|b| b.to_string().len())
                    .unwrap_or(text.len()) as u64;
                let d = self.dropped.get_or_insert(Dropped {
                    first_at_ms: at_ms,
                    chunks: 0,
                    bytes: 0,
                });
                d.chunks += 1;
                d.bytes += bytes;
                return;
            }
            let omitted = json!({ "omitted_bytes": text.len(), "reason": "segment size limit" });
            self.push(at_ms, kind, omitted.to_string());
            return;
        }
        self.push(at_ms, kind, text);
    }

    fn push(&mut self, at_ms: u64, kind: Kind, data: String) {
        self.data_bytes += data.len() + LINE_OVERHEAD;
        self.entries.push(Entry { at_ms, kind, data });
    }

    /// The request line, selected headers (already filtered and masked) and masked body.
    pub fn request<'a>(
        &mut self,
        method: &str,
        path: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Option<&[u8]>,
    ) {
        let mut data = json!({ "method": method, "path": path, "headers": headers_value(headers) });
        if let Some(body) = body {
            data["body"] = body_value(body);
        }
        self.record(Kind::Request, data);
    }

    /// The response status and selected headers.
    pub fn response<'a>(
        &mut self,
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        self.record(
            Kind::Response,
            json!({ "status": status, "headers": headers_value(headers) }),
        );
    }

    /// One masked response body chunk, stamped when it passed (replay reproduces the timing).
    pub fn response_chunk(&mut self, bytes: &[u8]) {
        self.record(Kind::ResponseChunk, json!({ "body": body_value(bytes) }));
    }

    /// Chains and writes the segment; returns the head for the audit log. Takes as long as the
    /// put; call it off the proxy's hot path.
    pub async fn close(self) -> Result<SegmentHead, StorageError> {
        let inner = self.recorder.inner.clone();
        let closed_at_ms = inner.clock.now_ms();
        let state = self.recorder.chain(&self.session_id);
        let mut state = state.lock().await;
        if !state.loaded {
            load_chain(&inner.storage, &self.session_id, &mut state).await?;
        }
        let segment = state.next_segment;
        let mut seq = state.next_seq;
        let mut prev = state.head.clone();
        let mut text = String::with_capacity(self.data_bytes + 256 * (self.entries.len() + 3));
        let mut lines = 0u64;
        let before_close = 1 + self.entries.len() as u64 + u64::from(self.dropped.is_some());
        let mut add = |at_ms: u64, kind: Kind, data: &str| {
            let (line, hash) = build_line(seq, at_ms, kind.as_str(), data, &prev);
            text.push_str(&line);
            text.push('\n');
            prev = hash;
            seq += 1;
            lines += 1;
        };
        let header = json!({
            "session_id": self.session_id,
            "segment": segment,
            "caller": self.meta.caller,
            "route": self.meta.route,
            "request_id": self.meta.request_id,
        });
        add(self.opened_at_ms, Kind::Segment, &header.to_string());
        for e in &self.entries {
            add(e.at_ms, e.kind, &e.data);
        }
        if let Some(d) = &self.dropped {
            let data = json!({
                "reason": "segment size limit",
                "limit_bytes": inner.options.segment_limit_bytes,
                "dropped_chunks": d.chunks,
                "dropped_bytes": d.bytes,
            });
            add(d.first_at_ms, Kind::Truncated, &data.to_string());
        }
        let close = json!({ "records": before_close, "duration_ms": closed_at_ms.saturating_sub(self.opened_at_ms) });
        add(closed_at_ms, Kind::Close, &close.to_string());
        let level = inner.options.zstd_level;
        let compressed = tokio::task::spawn_blocking(move || compress(text.as_bytes(), level))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))??;
        let bytes = compressed.len() as u64;
        if let Err(e) = inner
            .storage
            .put_segment(&self.session_id, segment, compressed)
            .await
        {
            // Another writer (a second replica) took this segment: read the chain's end again
            // next time instead of colliding on the same number forever.
            if matches!(e, StorageError::AlreadyExists { .. }) {
                state.loaded = false;
            }
            return Err(e);
        }
        state.next_segment = segment + 1;
        state.next_seq = seq;
        state.head = prev.clone();
        Ok(SegmentHead {
            session_id: self.session_id,
            segment,
            lines,
            head_hash: prev,
            bytes,
        })
    }
}

/// zstd with the frame checksum on, so a flipped byte is reported as corruption by the
/// decompressor before any line is read.
pub(crate) fn compress(bytes: &[u8], level: i32) -> Result<Vec<u8>, StorageError> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), level)
        .map_err(|e| StorageError::Compress(e.to_string()))?;
    encoder
        .include_checksum(true)
        .map_err(|e| StorageError::Compress(e.to_string()))?;
    std::io::Write::write_all(&mut encoder, bytes)
        .map_err(|e| StorageError::Compress(e.to_string()))?;
    encoder
        .finish()
        .map_err(|e| StorageError::Compress(e.to_string()))
}
