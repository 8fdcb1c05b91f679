//! Masking on the data path (SPEC §9, issue 17): a route with `[route.mask]` has its response
//! body (and, with `requests = true`, its request body) rewritten by `keyward-mask` before it
//! leaves the gateway. Streams are masked frame by frame with a bounded carry-over; a JSON
//! response of known, bounded length is masked whole so JSON paths apply.
//!
//! Every organization has one [`ExactValueSet`] shared by its routes' maskers, holding the
//! secret values the gateway injected for it (reported by the credential phase) and the values
//! set with [`set_static_values`]. The values are held only in memory and are never logged.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::body::{Body, Frame, SizeHint};
use keyward_core::OrgId;
use keyward_mask::{ContentKind, Counts, ExactValueSet, ExactValues, MAX_EXACT_LEN, Masker};
use zeroize::Zeroizing;

use crate::error::GatewayError;

/// The most injected values kept per organization; the oldest is forgotten past it (a rotated
/// value stays masked until then).
const MAX_INJECTED: usize = 256;

/// The replacements made for one request, read by the audit event once the body is done.
pub type CountSlot = Arc<Mutex<Counts>>;

#[derive(Default)]
struct OrgValues {
    set: Arc<ExactValueSet>,
    injected: VecDeque<Zeroizing<String>>,
    statics: Vec<Zeroizing<String>>,
}

impl OrgValues {
    /// Rebuilds the matcher from both lists. A value too long for exact matching is left out
    /// (the detectors still apply to it) rather than failing every other value.
    fn rebuild(&self) {
        let values = self
            .injected
            .iter()
            .chain(self.statics.iter())
            .map(|v| v.as_bytes())
            .filter(|v| v.len() <= MAX_EXACT_LEN);
        match ExactValues::new(values) {
            Ok(values) => self.set.replace(values),
            Err(e) => {
                tracing::warn!(error = %e, "the organization's secret values could not be compiled for masking")
            }
        }
    }
}

// Process-wide: one gateway process serves its organizations' routes, and the credential phase
// and the route table reach the same set without threading it through either.
static ORGS: LazyLock<Mutex<HashMap<Option<OrgId>, OrgValues>>> = LazyLock::new(Mutex::default);

fn with_org<T>(org: Option<OrgId>, f: impl FnOnce(&mut OrgValues) -> T) -> T {
    let mut orgs = ORGS.lock().unwrap_or_else(|p| p.into_inner());
    f(orgs.entry(org).or_default())
}

/// The organization's secret values, shared by every masker of its routes.
pub fn org_secrets(org: Option<OrgId>) -> Arc<ExactValueSet> {
    with_org(org, |o| o.set.clone())
}

/// Called by the credential phase with each secret value it resolved for `org`, so responses
/// that echo it are masked. Cheap when the value is already known.
pub fn report_secret(org: Option<OrgId>, value: &str) {
    with_org(org, |o| {
        if o.injected.iter().any(|v| v.as_str() == value) {
            return;
        }
        if o.injected.len() >= MAX_INJECTED {
            o.injected.pop_front();
        }
        o.injected.push_back(Zeroizing::new(value.to_owned()));
        o.rebuild();
    });
}

/// Replaces the organization's static values (read from the platform), keeping the injected
/// ones. Rebuilds only when they changed.
pub fn set_static_values(org: Option<OrgId>, values: Vec<Zeroizing<String>>) {
    with_org(org, |o| {
        if o.statics == values {
            return;
        }
        o.statics = values;
        o.rebuild();
    });
}

/// How often the organizations' static values are re-read from the platform's store.
const STATIC_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads every masking organization's static values once. The gateway awaits this before it
/// accepts a connection: a response served earlier would pass a static value through unmasked.
/// An organization whose values cannot be read is logged and left to the next refresh.
pub async fn load_static_values(
    store: &dyn keyward_store::Store,
    master: &keyward_store::crypto::MasterKey,
    orgs: std::collections::BTreeSet<OrgId>,
) {
    for org in orgs {
        match static_values(store, master, org).await {
            Ok(values) => set_static_values(Some(org), values),
            Err(e) => {
                tracing::warn!(%org, error = %e, "the organization's static values could not be read for masking; the previous ones stay masked")
            }
        }
    }
}

/// Wakes [`refresh_static_values`] before its next tick.
static REFRESH_SOON: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Asks for the static values to be read again now: a reload installed a masking route, maybe
/// of an organization not read yet.
pub fn refresh_soon() {
    REFRESH_SOON.notify_one();
}

/// Keeps every masking organization's static values current: every 30 s after the load at
/// start ([`load_static_values`]), and at once after a reload that installed a masking route
/// ([`refresh_soon`]), off the request path. An organization is read only while one of its
/// routes masks.
pub async fn refresh_static_values(
    store: Arc<dyn keyward_store::Store>,
    master: Arc<keyward_store::crypto::MasterKey>,
    masking_orgs: impl Fn() -> std::collections::BTreeSet<OrgId> + Send + 'static,
) {
    let mut tick = tokio::time::interval(STATIC_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the start already loaded them.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = REFRESH_SOON.notified() => {}
        }
        load_static_values(store.as_ref(), &master, masking_orgs()).await;
    }
}

/// The organization's static values, unsealed with the master key as a kickoff unseals them.
async fn static_values(
    store: &dyn keyward_store::Store,
    master: &keyward_store::crypto::MasterKey,
    org: OrgId,
) -> Result<Vec<Zeroizing<String>>, String> {
    let mut values = Vec::new();
    let automations = store
        .list_automations(org)
        .await
        .map_err(|e| format!("listing the automations: {e}"))?;
    for automation in automations {
        let resolved = store
            .resolved_values(automation.id)
            .await
            .map_err(|e| format!("reading automation {}'s values: {e}", automation.name))?;
        for r in resolved {
            let aad = keyward_store::crypto::Aad::Resolved {
                automation: automation.id,
                var: r.env_var_id,
            }
            .bytes();
            // A value that does not open (another master key) is skipped, never fatal.
            if let Ok(plain) = master.open(&aad, &r.sealed_value)
                && let Ok(text) = std::str::from_utf8(&plain)
            {
                values.push(Zeroizing::new(text.to_owned()));
            }
        }
    }
    // Secret values set directly on an environment variable (`--secret`) are Keyward's to keep
    // as much as the ones it resolves.
    let vars = store
        .list_env_vars(org)
        .await
        .map_err(|e| format!("listing the environment variables: {e}"))?;
    for var in vars.iter().filter(|v| v.secret) {
        let Some(sealed) = &var.sealed_value else {
            continue;
        };
        let aad = keyward_store::crypto::Aad::EnvVar { id: var.id }.bytes();
        if let Ok(plain) = master.open(&aad, sealed)
            && let Ok(text) = std::str::from_utf8(&plain)
        {
            values.push(Zeroizing::new(text.to_owned()));
        }
    }
    values.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    values.dedup_by(|a, b| a.as_str() == b.as_str());
    Ok(values)
}

/// The route's masker, compiled once when the route is loaded (the route file validated it).
pub fn route_masker(
    config: Option<&keyward_mask::MaskConfig>,
    org: Option<OrgId>,
) -> Result<Option<Masker>, String> {
    config
        .map(|c| Masker::with_secrets(c, org_secrets(org)).map_err(|e| e.to_string()))
        .transpose()
}

/// Whether the request body must be buffered (to be masked before it is forwarded).
pub fn masks_requests(masker: Option<&Masker>) -> bool {
    masker.is_some_and(Masker::masks_requests)
}

/// Asks the upstream for an uncompressed body: a compressed one cannot be masked.
pub fn prepare_upstream_request(masker: Option<&Masker>, headers: &mut HeaderMap) {
    if masker.is_some() {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
}

/// Masks a buffered request body (whole) when the route asks, fixing its `Content-Length`.
pub fn mask_request(
    route: &str,
    masker: Option<&Masker>,
    headers: &mut HeaderMap,
    body: Option<Bytes>,
    slot: &CountSlot,
) -> Option<Bytes> {
    let (Some(masker), Some(bytes)) = (masker, body.as_ref()) else {
        return body;
    };
    if !masker.masks_requests() {
        return body;
    }
    let (out, counts) = match content_kind(headers) {
        ContentKind::Json => masker.mask_json_document(bytes, masker.json_document_limit()),
        kind => masker.mask(kind, bytes),
    };
    record(route, slot, &counts);
    if headers.contains_key(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
    }
    Some(Bytes::from(out))
}

fn content_kind(headers: &HeaderMap) -> ContentKind {
    ContentKind::from_content_type(
        headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// Wraps the upstream's response body in a [`MaskingBody`] when the route masks, adjusting the
/// headers; refuses a compressed body, which cannot be masked.
pub fn wrap_response<B>(
    route: &str,
    masker: Option<&Masker>,
    method: &str,
    parts: &mut http::response::Parts,
    body: B,
    slot: &CountSlot,
) -> Result<Result<MaskingBody<B>, B>, GatewayError> {
    let Some(masker) = masker else {
        return Ok(Err(body));
    };
    let has_body = method != "HEAD"
        && parts.status != http::StatusCode::NO_CONTENT
        && parts.status != http::StatusCode::NOT_MODIFIED;
    if !has_body {
        return Ok(Err(body));
    }
    if let Some(encoding) = parts.headers.get(CONTENT_ENCODING)
        && !encoding
            .to_str()
            .is_ok_and(|e| e.trim().eq_ignore_ascii_case("identity"))
    {
        return Err(GatewayError::BadGateway(format!(
            "route {} masks responses, but the upstream answered with Content-Encoding {:?}; the \
             gateway cannot mask a compressed body (it asks for `Accept-Encoding: identity`; \
             configure the upstream to honour it)",
            route,
            String::from_utf8_lossy(encoding.as_bytes())
        )));
    }
    let kind = content_kind(&parts.headers);
    let length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let whole =
        kind == ContentKind::Json && length.is_some_and(|n| n <= masker.json_document_limit());
    parts.headers.remove(CONTENT_LENGTH);
    let body = if whole {
        MaskingBody::document(body, masker.clone(), route, slot.clone())
    } else {
        MaskingBody::stream(body, masker, kind, route, slot.clone())
    };
    Ok(Ok(body))
}

/// Adds a body's counts to the request's slot and to `keyward_gateway_masked_total`.
fn record(route: &str, slot: &CountSlot, counts: &Counts) {
    if counts.is_empty() {
        return;
    }
    for (detector, n) in counts.iter() {
        metrics::counter!(
            "keyward_gateway_masked_total",
            "route" => route.to_owned(),
            "detector" => detector.to_owned()
        )
        .increment(n);
    }
    slot.lock().unwrap_or_else(|p| p.into_inner()).merge(counts);
}

enum Mode {
    Stream(Box<keyward_mask::StreamMasker>),
    /// The whole JSON document, masked at the end so JSON paths apply.
    Document {
        masker: Masker,
        buffer: BytesMut,
    },
    Done,
}

/// A response body masked on its way to the caller: each data frame goes through the stream
/// masker (what it holds back is bounded by the longest match), and the rest is emitted when
/// the upstream's body ends. Counts reach the slot at the end of the body; a body abandoned
/// midway records none.
pub struct MaskingBody<B> {
    inner: B,
    mode: Mode,
    ready: VecDeque<Frame<Bytes>>,
    route: String,
    slot: CountSlot,
}

impl<B> MaskingBody<B> {
    pub fn stream(
        inner: B,
        masker: &Masker,
        kind: ContentKind,
        route: &str,
        slot: CountSlot,
    ) -> Self {
        Self::with_mode(
            inner,
            Mode::Stream(Box::new(masker.stream(kind))),
            route,
            slot,
        )
    }

    pub fn document(inner: B, masker: Masker, route: &str, slot: CountSlot) -> Self {
        let mode = Mode::Document {
            masker,
            buffer: BytesMut::new(),
        };
        Self::with_mode(inner, mode, route, slot)
    }

    fn with_mode(inner: B, mode: Mode, route: &str, slot: CountSlot) -> Self {
        MaskingBody {
            inner,
            mode,
            ready: VecDeque::new(),
            route: route.to_owned(),
            slot,
        }
    }

    /// Emits what the masker still holds and records the counts.
    fn flush(&mut self) {
        let (tail, counts) = match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Stream(stream) => (*stream).finish(),
            Mode::Document { masker, buffer } => {
                masker.mask_json_document(&buffer, masker.json_document_limit())
            }
            Mode::Done => return,
        };
        record(&self.route, &self.slot, &counts);
        if !tail.is_empty() {
            self.ready.push_back(Frame::data(Bytes::from(tail)));
        }
    }
}

impl<B> Body for MaskingBody<B>
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
        loop {
            if let Some(frame) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if matches!(this.mode, Mode::Done) {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    // What is held back is dropped: an unfinished match is never emitted.
                    this.mode = Mode::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => this.flush(),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match &mut this.mode {
                        Mode::Stream(stream) => {
                            let out = stream.push(&data);
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                            }
                        }
                        Mode::Document { masker, buffer } => {
                            buffer.extend_from_slice(&data);
                            // A body longer than its Content-Length said is masked as a
                            // stream rather than held past the document limit.
                            if buffer.len() > masker.json_document_limit() {
                                let mut stream = masker.stream(ContentKind::Json);
                                let out = stream.push(buffer);
                                this.mode = Mode::Stream(Box::new(stream));
                                if !out.is_empty() {
                                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                                }
                            }
                        }
                        Mode::Done => {}
                    },
                    // Trailers end the data: flush before them.
                    Err(other) => {
                        this.flush();
                        this.ready.push_back(other);
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.mode, Mode::Done) && self.ready.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
#[path = "masking_tests.rs"]
mod tests;
