//! Recording on the data path (SPEC §9, issue 17): every identified request is one segment of a
//! session (its own, or the caller's `X-Keyward-Session`), holding identity, request, decision,
//! approval, response and timing. What is recorded is masked first: with the route's masker
//! when it has one (the response is then recorded as the caller got it), otherwise with every
//! built-in detector and the organization's secret values, on a copy. A segment is written when
//! its response body ends, off the hot path, and its head goes into the request's audit event —
//! the anchor `keyward session verify` checks the store against.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use keyward_core::OrgId;
use keyward_mask::{ContentKind, MaskConfig, Masker, StreamMasker};
use keyward_recording::{
    Kind, RecorderOptions, SegmentMeta, SegmentWriter, SessionRecorder, Storage, SystemClock,
};
use serde_json::{Value, json};

use crate::credentials::CALLER_CREDENTIAL_HEADERS;
use crate::error::GatewayError;

/// The caller's session id; stripped before the upstream, echoed on the response.
pub const SESSION_HEADER: &str = "x-keyward-session";

/// Segments waiting to be written; past it a request's recording is dropped (and its audit
/// event says so) rather than letting a slow store hold unbounded memory.
const MAX_CLOSING: usize = 256;

/// What one request's segment keeps in memory before chunks are only counted (`truncated`):
/// every open request holds its segment until its body ends, so this times the concurrent
/// requests is what recording can cost.
const SEGMENT_LIMIT: usize = 1 << 20;

/// Headers never recorded, even masked: the caller's credentials are the gateway's to check,
/// and cookies are credentials too.
fn never_recorded(name: &str) -> bool {
    CALLER_CREDENTIAL_HEADERS.contains(&name) || name == "set-cookie" || name == SESSION_HEADER
}

/// One organization's recorder and the masker for routes without their own.
struct OrgRecorder {
    recorder: SessionRecorder,
    masker: Masker,
}

/// The gateway's recordings: one store, one level per organization.
pub struct Recordings {
    storage: Storage,
    orgs: Mutex<HashMap<OrgId, Arc<OrgRecorder>>>,
    closing: Arc<AtomicUsize>,
    /// The runtime segments are written on: the gateway's main one, which outlives the
    /// per-core serving runtimes, so a segment closing at shutdown is still written and its
    /// audit event still sent.
    runtime: Option<tokio::runtime::Handle>,
}

impl Recordings {
    pub fn new(storage: Storage) -> Recordings {
        Recordings {
            storage,
            orgs: Mutex::new(HashMap::new()),
            closing: Arc::new(AtomicUsize::new(0)),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Segments not yet written; shutdown waits for them.
    pub fn closing(&self) -> usize {
        self.closing.load(Ordering::Acquire)
    }

    pub fn describe(&self) -> String {
        self.storage.describe()
    }

    fn org(&self, org: OrgId) -> Result<Arc<OrgRecorder>, String> {
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = orgs.get(&org) {
            return Ok(found.clone());
        }
        let storage = self
            .storage
            .within(&org.to_string())
            .map_err(|e| e.to_string())?;
        let masker = Masker::with_secrets(
            &MaskConfig::default(),
            crate::masking::org_secrets(Some(org)),
        )
        .map_err(|e| e.to_string())?;
        let entry = Arc::new(OrgRecorder {
            recorder: SessionRecorder::with_clock(
                storage,
                RecorderOptions {
                    segment_limit_bytes: SEGMENT_LIMIT,
                    ..RecorderOptions::default()
                },
                Arc::new(SystemClock),
            ),
            masker,
        });
        orgs.insert(org, entry.clone());
        Ok(entry)
    }

    /// Opens this request's segment, after its caller is known. The session is the caller's
    /// `X-Keyward-Session` (refused when malformed) or a fresh one.
    pub fn open(
        &self,
        org: OrgId,
        route: &str,
        route_masker: Option<&Masker>,
        headers: &HeaderMap,
        caller: &keyward_policy::Principal,
    ) -> Result<Recording, GatewayError> {
        let session_id = session_id(headers)?;
        let org_recorder = self.org(org).map_err(|e| {
            GatewayError::Unavailable(format!("the session recorder could not be set up: {e}"))
        })?;
        let meta = SegmentMeta {
            caller: Some(caller.subject.clone()),
            route: Some(route.to_owned()),
            request_id: None,
        };
        let mut writer = org_recorder
            .recorder
            .open_segment(&session_id, meta)
            .map_err(|e| GatewayError::BadRequest(format!("{SESSION_HEADER}: {e}")))?;
        writer.record(
            Kind::Identity,
            json!({
                "subject": caller.subject,
                "kind": caller.kind.as_str(),
                "organization": caller.org,
                "automation": caller.automation,
                "email": caller.email,
            }),
        );
        Ok(Recording {
            session_id,
            writer: Arc::new(Mutex::new(Some(writer))),
            // The route's own masker already masks what the caller gets; without one the
            // recording masks its copy with every built-in detector and the secret values.
            masker: match route_masker {
                Some(m) => m.clone(),
                None => org_recorder.masker.clone(),
            },
            route_masks_responses: route_masker.is_some(),
            closing: self.closing.clone(),
            runtime: self.runtime.clone(),
        })
    }
}

/// The caller's session id, or a fresh time-ordered one.
fn session_id(headers: &HeaderMap) -> Result<String, GatewayError> {
    let Some(value) = headers.get(SESSION_HEADER) else {
        return Ok(uuid::Uuid::now_v7().to_string());
    };
    let id = value
        .to_str()
        .map_err(|_| GatewayError::BadRequest(format!("{SESSION_HEADER} is not visible ASCII")))?;
    keyward_recording::check_session_id(id).map_err(|e| {
        GatewayError::BadRequest(format!(
            "{SESSION_HEADER}: {e}; use 1 to 128 characters of A-Z a-z 0-9 . _ - not starting with a dot"
        ))
    })?;
    Ok(id.to_owned())
}

/// One request's open segment.
pub struct Recording {
    pub session_id: String,
    writer: Arc<Mutex<Option<SegmentWriter>>>,
    masker: Masker,
    route_masks_responses: bool,
    closing: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Recording {
    fn with_writer(&self, f: impl FnOnce(&mut SegmentWriter)) {
        if let Some(w) = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            f(w);
        }
    }

    /// The request line, its headers (credentials left out, the rest masked) and body. A body
    /// already masked for the upstream (`masked_for_upstream`) is recorded as sent; any other is
    /// masked on a copy.
    pub fn request(
        &self,
        parts: &http::request::Parts,
        path: &str,
        body: Option<&[u8]>,
        masked_for_upstream: bool,
    ) {
        let kind = content_kind(&parts.headers);
        let target = match parts.uri.query() {
            Some(q) => format!("{path}?{}", self.mask_text(q)),
            None => path.to_owned(),
        };
        let headers = self.headers(&parts.headers);
        let body = body.map(|b| {
            if masked_for_upstream {
                b.to_vec()
            } else {
                let (out, _) = match kind {
                    ContentKind::Json => self
                        .masker
                        .mask_json_document(b, self.masker.json_document_limit()),
                    other => self.masker.mask(other, b),
                };
                out
            }
        });
        self.with_writer(|w| {
            w.request(
                parts.method.as_str(),
                &target,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                body.as_deref(),
            )
        });
    }

    pub fn record(&self, kind: Kind, data: Value) {
        self.with_writer(|w| w.record(kind, data));
    }

    fn mask_text(&self, text: &str) -> String {
        let (out, _) = self.masker.mask(ContentKind::Text, text.as_bytes());
        String::from_utf8_lossy(&out).into_owned()
    }

    fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .filter(|(name, _)| !never_recorded(name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    self.mask_text(&String::from_utf8_lossy(value.as_bytes())),
                )
            })
            .collect()
    }

    /// Records the response head and wraps its body so every chunk is recorded as it passes.
    pub fn response<B>(&self, parts: &http::response::Parts, body: B) -> RecordedBody<B> {
        let headers = self.headers(&parts.headers);
        self.with_writer(|w| {
            w.response(
                parts.status.as_u16(),
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )
        });
        let masker = (!self.route_masks_responses)
            .then(|| Box::new(self.masker.stream(content_kind(&parts.headers))));
        RecordedBody {
            inner: body,
            writer: self.writer.clone(),
            masker,
        }
    }

    /// Takes the segment for writing, or `Err` with why it will not be written (too many
    /// segments already waiting for the store).
    pub fn finish(self) -> Result<Closing, String> {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| "the recording was already closed".to_owned())?;
        if self.closing.fetch_add(1, Ordering::AcqRel) >= MAX_CLOSING {
            self.closing.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("keyward_gateway_recordings_dropped_total").increment(1);
            return Err(format!(
                "not recorded: {MAX_CLOSING} segments were already waiting for the recording store"
            ));
        }
        Ok(Closing {
            writer,
            closing: self.closing,
            runtime: self.runtime,
        })
    }
}

/// A segment on its way to the store.
pub struct Closing {
    writer: SegmentWriter,
    closing: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Closing {
    pub fn record(&mut self, kind: Kind, data: Value) {
        self.writer.record(kind, data);
    }

    /// Writes the segment in the background, then hands `then` the audit event's `session`
    /// member: the head, or why it was not written.
    pub fn write_then(self, then: impl FnOnce(Value) + Send + 'static) {
        let runtime = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        match runtime {
            Some(runtime) => {
                runtime.spawn(async move { then(self.close().await) });
            }
            None => {
                let session_id = self.writer.session_id().to_owned();
                self.closing.fetch_sub(1, Ordering::AcqRel);
                then(
                    json!({ "id": session_id, "error": "not recorded: no runtime to write it on" }),
                );
            }
        }
    }

    async fn close(self) -> Value {
        let session_id = self.writer.session_id().to_owned();
        let result = self.writer.close().await;
        self.closing.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(head) => {
                metrics::counter!("keyward_gateway_recorded_segments_total").increment(1);
                json!({
                    "id": head.session_id,
                    "segment": head.segment,
                    "lines": head.lines,
                    "head_hash": head.head_hash,
                    "bytes": head.bytes,
                })
            }
            Err(e) => {
                metrics::counter!("keyward_gateway_recordings_failed_total").increment(1);
                tracing::error!(session = %session_id, error = %e, "a session segment could not be written");
                json!({ "id": session_id, "error": e.to_string() })
            }
        }
    }
}

fn content_kind(headers: &HeaderMap) -> ContentKind {
    ContentKind::from_content_type(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// A response body recorded chunk by chunk as it passes (masked first on a copy when the route
/// does not mask), never buffered beyond the masker's bounded carry.
pub struct RecordedBody<B> {
    inner: B,
    writer: Arc<Mutex<Option<SegmentWriter>>>,
    masker: Option<Box<StreamMasker>>,
}

impl<B> RecordedBody<B> {
    fn chunk(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(w) = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            w.response_chunk(bytes);
        }
    }
}

impl<B> Body for RecordedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    match this.masker.as_mut() {
                        Some(m) => {
                            let out = m.push(data);
                            this.chunk(&out);
                        }
                        None => this.chunk(data),
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(m) = this.masker.take() {
                    let (tail, _) = (*m).finish();
                    this.chunk(&tail);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "recording_tests.rs"]
mod tests;
