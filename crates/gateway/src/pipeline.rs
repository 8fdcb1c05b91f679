//! The data path: one ordered function ([`Gateway::handle`] → `forward`) that every request
//! passes. The phases are traits so the order is tested with stand-ins and the real verifier,
//! Cedar policies and credential injector are wired in `lib.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body;
use keyward_policy::{Decision, Effect, Principal, RequestFacts};
use keyward_server::clock::Clock;
use serde_json::json;

use crate::audit::{AuditSender, GatewayEvent};
use crate::body::{BoxError, Counted, GatewayBody, ReadError, drain, read_limited};
use crate::credentials::{CALLER_CREDENTIAL_HEADERS, strip_caller_credentials};
use crate::error::GatewayError;
use crate::identity::IdentityError;
use crate::phases::{
    ApprovalAsk, ApprovalPass, ApprovalPhase, CredentialPhase, IdentityPhase, NoApprovals,
};
use crate::recording::{Recording, Recordings, SESSION_HEADER};
use crate::table::{RouteEntry, RouteTable, request_host};
use crate::upstream::{UpstreamError, remove_hop_by_hop};
use keyward_recording::Kind;

/// The one message for a token that was read and refused, whatever check failed.
pub const REFUSED_TOKEN: &str = "the bearer token was refused";

/// Everything the data path shares between requests.
pub struct Gateway {
    pub table: Arc<RouteTable>,
    pub identity: Arc<dyn IdentityPhase>,
    pub credentials: Arc<dyn CredentialPhase>,
    pub approvals: Arc<dyn ApprovalPhase>,
    /// `None` when recording is off (`--recordings off`).
    pub recordings: Option<Arc<Recordings>>,
    pub audit: AuditSender,
    pub clock: Clock,
}

/// What one request's audit event and metrics say; filled in as the phases pass.
struct Outcome {
    route: Option<Arc<RouteEntry>>,
    method: String,
    path: String,
    host: String,
    principal: Option<Principal>,
    approval: Option<ApprovalPass>,
    decision: Option<Decision>,
    upstream_status: Option<u16>,
    bytes_in: Arc<AtomicU64>,
    /// Replacements made by masking (`masking`), for the audit event.
    masked: crate::masking::CountSlot,
    /// This request's segment, from the moment its caller is known.
    recording: Option<Recording>,
}

impl Gateway {
    /// Answers one request. Never fails: every refusal is a response with the JSON error body,
    /// and every request ends in one audit event once its response body is done.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<GatewayBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError> + std::fmt::Display,
    {
        let started = Instant::now();
        // The snapshot is taken once: a reload during this request does not change its route.
        let snapshot = self.table.load();
        // One form of the path for matching, policy and upstream: what the policy decides on is
        // what the upstream serves (`/openai/../admin` is `/admin`, which no `/openai` route
        // matches). An encoded slash or backslash would be a separator to some upstreams and not
        // to us; it is refused rather than guessed at.
        let raw_path = request.uri().path();
        let (path, refused_path) = match keyward_policy::request_path(raw_path) {
            Ok(path) => (path, None),
            Err(ambiguous) => (keyward_policy::normalize_path(raw_path), Some(ambiguous)),
        };
        let mut outcome = Outcome {
            route: None,
            method: request.method().as_str().to_owned(),
            path,
            host: request_host(&request),
            principal: None,
            approval: None,
            decision: None,
            upstream_status: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            masked: Default::default(),
            recording: None,
        };
        // The body stays here until a phase takes it, so a refusal can read what is left of it.
        let (parts, body) = request.into_parts();
        let mut body = Some(body_counted(body, &outcome.bytes_in));
        let found = if refused_path.is_some() {
            None
        } else {
            snapshot.find(&outcome.host, &outcome.path).cloned()
        };
        let response = match found {
            None => Err(match refused_path {
                Some(ambiguous) => GatewayError::BadRequest(ambiguous.to_string()),
                None => GatewayError::NoRoute {
                    host: outcome.host.clone(),
                    path: outcome.path.clone(),
                },
            }),
            Some(route) => {
                outcome.route = Some(route.clone());
                self.forward(&route, parts, &mut body, &mut outcome).await
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                if matches!(error, GatewayError::Unavailable(_)) {
                    tracing::error!(error = %error, "a request could not be identified");
                }
                if let Some(rest) = body.take() {
                    drain(rest).await;
                }
                error.into_response()
            }
        };
        self.finish(response, outcome, started)
    }

    /// The phases, in order. Each returns early with the refusal the caller gets.
    async fn forward<B>(
        &self,
        route: &RouteEntry,
        mut parts: http::request::Parts,
        body: &mut Option<Counted<B>>,
        outcome: &mut Outcome,
    ) -> Result<Response<GatewayBody>, GatewayError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError> + std::fmt::Display,
    {
        // 1. Identity first: nothing about the request (body, policy, upstream) is looked at
        //    for a caller we cannot name, and a 401 costs no upstream work.
        let principal = self
            .identity
            .identify(&parts.headers, &route.accept, route.org, self.clock.now())
            .await
            .map_err(|e| match e {
                IdentityError::Unavailable(m) => GatewayError::Unavailable(format!(
                    "the caller's token could not be checked right now: {m}"
                )),
                // Which check failed (kid, alg, issuer, audience) goes to the log only: echoed,
                // it would guide a forger from one attempt to the next.
                IdentityError::Refused { check } => {
                    tracing::info!(route = %route.name, %check, "a caller's token was refused");
                    GatewayError::Unauthenticated(REFUSED_TOKEN.into())
                }
                other => GatewayError::Unauthenticated(other.to_string()),
            })?;
        // A route belongs to one organization; a caller of another one is never let through,
        // whatever the policy says (policies are written per organization).
        if let Some(org) = route.org
            && principal.org != org.to_string()
        {
            outcome.principal = Some(principal);
            return Err(GatewayError::Forbidden {
                message: format!(
                    "route {} belongs to another organization than the caller's",
                    route.name
                ),
                policy_ids: Vec::new(),
            });
        }
        outcome.principal = Some(principal.clone());
        if let (Some(recordings), Some(org)) = (&self.recordings, route.org) {
            let recording = recordings.open(
                org,
                &route.name,
                route.masker.as_ref(),
                &parts.headers,
                &principal,
            )?;
            parts.headers.remove(SESSION_HEADER);
            outcome.recording = Some(recording);
        }

        // 2. The body, only when the policy reads it or the credential signs it (AWS), and
        //    only up to the inspection limit: everything else streams untouched. Before the
        //    decision, because the decision may depend on it.
        let needs_body = route.policy.reads_body()
            || self.credentials.needs_body(&route.credential)
            || crate::masking::masks_requests(route.masker.as_ref());
        // A streamed body stays in `body` until it goes upstream (6).
        let whole = if needs_body { body.take() } else { None };
        let buffered = match whole {
            Some(whole) => Some(read_limited(whole, route.inspect_limit).await.map_err(
                |e| match e {
                    ReadError::TooLarge => GatewayError::PayloadTooLarge {
                        route: route.name.clone(),
                        limit: route.inspect_limit,
                    },
                    ReadError::Failed(m) => GatewayError::BadRequest(m),
                },
            )?),
            None => None,
        };

        // 3. Policy: forbid beats permit, no match follows the route's `no_match`; every
        //    decision keeps the ids of the policies that took it (audit and 403 body).
        let facts = request_facts(route, &parts, &outcome.path, buffered.as_deref());
        let decision = route.policy.decide(&principal, &facts, route.no_match);
        outcome.decision = Some(decision.clone());
        // Masked as soon as the policy has read it, so the recording and the upstream both
        // get the masked body (the policy decides on what the caller sent).
        let masks_requests = crate::masking::masks_requests(route.masker.as_ref());
        let buffered = crate::masking::mask_request(
            &route.name,
            route.masker.as_ref(),
            &mut parts.headers,
            buffered,
            &outcome.masked,
        );
        if let Some(recording) = &outcome.recording {
            recording.request(&parts, &outcome.path, buffered.as_deref(), masks_requests);
            recording.record(
                Kind::Decision,
                json!({
                    "effect": if decision.effect == Effect::Allow { "allow" } else { "deny" },
                    "policy_ids": decision.policy_ids,
                    "no_match": decision.no_match,
                    "approval_required": decision.approval_required,
                }),
            );
        }
        if decision.effect == Effect::Deny {
            return Err(GatewayError::Forbidden {
                message: deny_message(route, &decision),
                policy_ids: decision.policy_ids,
            });
        }

        // 4. Approval: a permit carrying `@approval("required")` lets the request through only
        //    on a human's grant — held here until decided, or refused with the approval id.
        //    After the decision (a forbid never reaches a human), before any credential.
        if decision.approval_required {
            let policy_id = decision
                .policy_ids
                .iter()
                .find(|id| route.policy.asks_approval(id))
                .cloned()
                .unwrap_or_else(|| decision.policy_ids.join(","));
            let body = facts.body.as_ref();
            let ask = |org| ApprovalAsk {
                org,
                route: &route.name,
                wait: route.approval,
                timeout: route.approval_timeout,
                principal: &principal,
                policy_id: &policy_id,
                headers: &parts.headers,
                method: parts.method.as_str(),
                path: &outcome.path,
                host: &outcome.host,
                model: body
                    .and_then(|b| b.json.get("model"))
                    .and_then(serde_json::Value::as_str),
                tool: body
                    .and_then(|b| b.mcp.as_ref())
                    .and_then(|m| m.tool.as_deref()),
            };
            let pass = match route.org {
                Some(org) => self.approvals.approve(ask(org)).await,
                // A file route without an organization: nobody could be asked.
                None => {
                    NoApprovals
                        .approve(ask(keyward_core::OrgId(uuid::Uuid::nil())))
                        .await
                }
            };
            let pass = pass?;
            if let Some(recording) = &outcome.recording {
                recording.record(
                    Kind::Approval,
                    json!({ "approval_id": pass.approval_id, "grant": pass.grant, "state": "approved" }),
                );
            }
            outcome.approval = Some(pass);
        }

        // 5. Credentials: the caller's own are stripped (they are for the gateway, not the
        //    upstream), then the route's is added. Last before sending, so a refused request
        //    never costs a token exchange.
        strip_caller_credentials(&mut parts.headers);
        self.credentials
            .apply(
                route.org,
                &route.name,
                &route.credential,
                &mut parts,
                buffered.as_deref(),
            )
            .await
            .map_err(|e| GatewayError::CredentialUnavailable(e.to_string()))?;

        // 6. Upstream: the path past the route prefix joined onto the upstream's, the query
        //    kept; the body is the buffered one, or the caller's stream passed through.
        parts.uri = route
            .upstream
            .uri_for(&route.forwarded_path(&outcome.path), parts.uri.query())
            .map_err(GatewayError::BadGateway)?;
        crate::masking::prepare_upstream_request(route.masker.as_ref(), &mut parts.headers);
        let body = match (buffered, body.take()) {
            (Some(bytes), _) => GatewayBody::full(bytes),
            (None, Some(stream)) => GatewayBody::new(stream),
            (None, None) => GatewayBody::empty(),
        };
        let upstream_response = route
            .upstream
            .send(Request::from_parts(parts, body), route.timeout)
            .await
            .map_err(|e| {
                metrics::counter!(
                    "keyward_gateway_upstream_errors_total",
                    "route" => route.name.clone(),
                    "kind" => e.kind()
                )
                .increment(1);
                match e {
                    UpstreamError::Timeout(m) => GatewayError::GatewayTimeout(m),
                    UpstreamError::Connect(m) | UpstreamError::Failed(m) => {
                        GatewayError::BadGateway(m)
                    }
                }
            })?;
        outcome.upstream_status = Some(upstream_response.status().as_u16());

        // 7. Response: streamed frame by frame, never collected, so SSE events leave as they
        //    arrive; masked first when the route says so (a bounded carry-over per stream), then
        //    recorded as it passes (`finish`).
        let (mut response_parts, incoming) = upstream_response.into_parts();
        remove_hop_by_hop(&mut response_parts.headers);
        let body = match crate::masking::wrap_response(
            &route.name,
            route.masker.as_ref(),
            &outcome.method,
            &mut response_parts,
            incoming,
            &outcome.masked,
        )? {
            Ok(masked) => GatewayBody::new(masked),
            Err(incoming) => GatewayBody::new(incoming),
        };
        Ok(Response::from_parts(response_parts, body))
    }

    /// Counts the response body as it streams and, once it is done or abandoned, records the
    /// request's metrics and audit event (8: off the hot path, batched by `audit`). A recorded
    /// request's segment is written first, and its head goes into that event.
    fn finish(
        &self,
        response: Response<GatewayBody>,
        mut outcome: Outcome,
        started: Instant,
    ) -> Response<GatewayBody> {
        let status = response.status().as_u16();
        let allowed = outcome
            .decision
            .as_ref()
            .is_some_and(|d| d.effect == Effect::Allow && !d.approval_required);
        let decision = if allowed { "allow" } else { "deny" };
        let seconds = started.elapsed().as_secs_f64();
        match &outcome.route {
            Some(route) => route.metrics.record(allowed, status, seconds),
            None => crate::route_metrics::record_unrouted(status, seconds),
        }

        let bytes_out = Arc::new(AtomicU64::new(0));
        let counted = bytes_out.clone();
        let audit = self.audit.clone();
        let clock = self.clock.clone();
        let (mut parts, body) = response.into_parts();
        let recording = outcome.recording.take();
        let body = match &recording {
            Some(recording) => {
                if let Ok(value) = http::HeaderValue::from_str(&recording.session_id) {
                    parts.headers.insert(SESSION_HEADER, value);
                }
                GatewayBody::new(recording.response(&parts, body))
            }
            None => body,
        };
        let headers_ms = started.elapsed().as_millis() as u64;
        let body = Counted::new(body, counted).on_drop(move || {
            let principal = outcome.principal.as_ref();
            let mut data = json!({
                "route": outcome.route.as_ref().map(|r| r.name.clone()),
                "method": outcome.method,
                "path": outcome.path,
                "decision": decision,
                "policy_ids": outcome.decision.as_ref().map(|d| d.policy_ids.clone()).unwrap_or_default(),
                "status": status,
                "bytes_in": outcome.bytes_in.load(Ordering::Relaxed),
                "bytes_out": bytes_out.load(Ordering::Relaxed),
                "duration_ms": started.elapsed().as_millis() as u64,
                "principal_kind": principal.map(|p| p.kind.as_str()),
            });
            let masked = outcome.masked.lock().map(|c| c.clone()).unwrap_or_default();
            if !masked.is_empty() {
                data["masked"] = json!(masked);
            }
            if let Some(code) = outcome.upstream_status {
                data["upstream_status"] = json!(code);
            }
            if let Some(name) = principal.and_then(|p| p.automation.as_ref()) {
                data["automation"] = json!(name);
            }
            if let Some(email) = principal.and_then(|p| p.email.as_ref()) {
                data["email"] = json!(email);
            }
            if let Some(pass) = &outcome.approval {
                data["approval_id"] = json!(pass.approval_id);
                data["approval_grant"] = json!(pass.grant);
            }
            let org = outcome.route.as_ref().and_then(|r| r.org);
            let actor = principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject.clone());
            let Some(recording) = recording else {
                audit.send(GatewayEvent {
                    at_ms: clock.now_ms(),
                    org,
                    actor,
                    data,
                });
                return;
            };
            let session_id = recording.session_id.clone();
            let mut closing = match recording.finish() {
                Ok(closing) => closing,
                Err(why) => {
                    data["session"] = json!({ "id": session_id, "error": why });
                    audit.send(GatewayEvent {
                        at_ms: clock.now_ms(),
                        org,
                        actor,
                        data,
                    });
                    return;
                }
            };
            closing.record(
                Kind::Timing,
                json!({ "headers_ms": headers_ms, "total_ms": data["duration_ms"] }),
            );
            closing.write_then(move |session| {
                data["session"] = session;
                audit.send(GatewayEvent {
                    at_ms: clock.now_ms(),
                    org,
                    actor,
                    data,
                });
            });
        });
        Response::from_parts(parts, GatewayBody::new(body))
    }
}

fn body_counted<B>(body: B, count: &Arc<AtomicU64>) -> Counted<B> {
    Counted::new(body, count.clone())
}

fn deny_message(route: &RouteEntry, decision: &Decision) -> String {
    if decision.no_match || decision.policy_ids.is_empty() {
        format!(
            "no policy of route {} permits this request, and the route denies what no policy permits (no_match = \"deny\")",
            route.name
        )
    } else {
        format!(
            "denied by policy {} of route {}",
            decision.policy_ids.join(", "),
            route.name
        )
    }
}

/// What the policy sees. Credential headers appear by name only: their values are the
/// caller's secrets and never reach a policy.
fn request_facts(
    route: &RouteEntry,
    parts: &http::request::Parts,
    path: &str,
    body: Option<&[u8]>,
) -> RequestFacts {
    keyward_policy::request_facts(
        &route.name,
        parts,
        path,
        body,
        |name| route.policy.reads_context(name),
        &CALLER_CREDENTIAL_HEADERS,
    )
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
pub(crate) mod tests;
