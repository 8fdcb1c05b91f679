//! Step 4 of the data path, just-in-time approval (SPEC §9): a request that a permitting policy
//! marked `@approval("required")` passes on a grant a person gave — an earlier one still valid
//! (one-shot, or time-boxed), or one asked for now. Asking needs a reason; the request is then
//! held until a decision or the route's `approval_timeout` (any replica's decision releases it:
//! the state is in the database), or answered 403 at once with the approval id when the route or
//! the client (`Prefer: respond-async`) says so. Held requests are tasks, not threads, and are
//! bounded per route and per caller.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;
use keyward_core::api::approvals::{ApprovalMode, ApprovalState, GrantKind, Requester};
use keyward_policy::{ApprovalWait, PrincipalKind};
use keyward_server::clock::Clock;
use keyward_server::domain::approval_service::{
    ApprovalError, Approvals, NewApproval, RequestSummary,
};
use keyward_store::{ApprovalRow, Store};

use crate::error::GatewayError;
use crate::phases::{ApprovalAsk, ApprovalPass, ApprovalPhase};

/// The header carrying the requester's reason.
pub const REASON_HEADER: &str = "x-keyward-approval-reason";
/// Requests of one route waiting for a decision at once; more are refused with 429.
pub const MAX_PENDING_PER_ROUTE: i64 = 1000;
/// Requests of one caller waiting for a decision at once.
pub const MAX_PENDING_PER_CALLER: i64 = 100;

/// The approval phase over the platform's store and audit log.
pub struct ApprovalGate {
    approvals: Approvals,
    store: Arc<dyn Store>,
    clock: Clock,
    admission: crate::approval_admission::Admission,
}

impl ApprovalGate {
    pub fn new(approvals: Approvals, store: Arc<dyn Store>, clock: Clock) -> ApprovalGate {
        ApprovalGate {
            approvals,
            store,
            clock,
            admission: Default::default(),
        }
    }

    /// Persists and audits the expiries that are due (run every few seconds, so an expired
    /// request is in the audit log even if nobody reads it).
    pub async fn expire_due(&self) {
        if let Err(e) = self.approvals.expire_due(self.clock.now()).await {
            tracing::warn!(error = %e, "expiring approval requests failed; retrying later");
        }
    }

    async fn requester(&self, ask: &ApprovalAsk<'_>) -> Requester {
        let p = ask.principal;
        let kind = match p.kind {
            PrincipalKind::Workload => "workload",
            PrincipalKind::Idp | PrincipalKind::Pat => "person",
        };
        // People holding `human_in_the_loop` on the automation may decide its requests: the
        // row names the automation by id.
        let automation_id = match &p.automation {
            Some(name) => match self.store.find_automation_by_name(ask.org, name).await {
                Ok(found) => found.map(|a| a.id),
                Err(e) => {
                    tracing::warn!(error = %e, "the requesting automation could not be looked up; only gateway managers can decide");
                    None
                }
            },
            None => None,
        };
        Requester {
            kind: kind.to_owned(),
            subject: p.subject.clone(),
            email: p.email.clone(),
            automation_id,
        }
    }
}

fn unavailable(e: ApprovalError) -> GatewayError {
    GatewayError::Unavailable(format!("approvals cannot be checked right now: {e}"))
}

fn passed(row: &ApprovalRow) -> ApprovalPass {
    ApprovalPass {
        approval_id: row.id.to_string(),
        grant: match row.grant_kind {
            GrantKind::Once => "once",
            GrantKind::Timebox => "timebox",
        },
    }
}

/// The requester's reason, or the 428 that names the header.
fn reason(headers: &HeaderMap) -> Result<String, GatewayError> {
    let missing = || {
        GatewayError::ReasonRequired(format!(
            "this request needs a person's approval, and asking for one needs a reason: send the header {REASON_HEADER} saying what you are about to do and why"
        ))
    };
    let value = headers.get(REASON_HEADER).ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| {
        GatewayError::ReasonRequired(format!(
            "the {REASON_HEADER} header is not plain text; send the reason as visible ASCII (percent-encode other characters)"
        ))
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(missing());
    }
    keyward_server::domain::approval_service::validate_reason(text)
        .map_err(|e| GatewayError::ReasonRequired(format!("{REASON_HEADER}: {e}")))
}

fn wants_async(wait: ApprovalWait, headers: &HeaderMap) -> bool {
    wait == ApprovalWait::Async
        || headers
            .get_all(http::header::HeaderName::from_static("prefer"))
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

fn refused(row: &ApprovalRow, policy_id: &str, message: String) -> GatewayError {
    GatewayError::ApprovalRequired {
        message,
        policy_ids: vec![policy_id.to_owned()],
        approval_id: Some(row.id.to_string()),
        state: Some(row.state.as_str()),
    }
}

#[async_trait]
impl ApprovalPhase for ApprovalGate {
    async fn approve(&self, ask: ApprovalAsk<'_>) -> Result<ApprovalPass, GatewayError> {
        let subject = ask.principal.subject.as_str();
        let requester = self.requester(&ask).await;
        // A grant already given: time-boxed, or one-shot and not yet spent.
        let now = self.clock.now();
        if let Some(grant) = self
            .approvals
            .find_active_grant(
                ask.org,
                subject,
                requester.automation_id,
                ask.route,
                ask.policy_id,
                now,
            )
            .await
            .map_err(unavailable)?
            && self
                .approvals
                .use_grant(&grant, now)
                .await
                .map_err(unavailable)?
        {
            return Ok(passed(&grant));
        }

        let reason = reason(ask.headers)?;
        let caller_key = format!("{:?}/{subject}/{:?}", ask.org, requester.automation_id);
        let route_key = format!("{:?}/{}", ask.org, ask.route);
        let admitted = self.admission.enter(&route_key, &caller_key).await;
        let (route_pending, caller_pending) = self
            .approvals
            .pending_counts(ask.org, ask.route, subject, requester.automation_id, now)
            .await
            .map_err(unavailable)?;
        if route_pending >= MAX_PENDING_PER_ROUTE {
            return Err(GatewayError::TooManyPending(format!(
                "{route_pending} requests of route {} are already waiting for approval; retry once some are decided",
                ask.route
            )));
        }
        if caller_pending >= MAX_PENDING_PER_CALLER {
            return Err(GatewayError::TooManyPending(format!(
                "{caller_pending} of your requests are already waiting for approval; retry once some are decided"
            )));
        }

        let asynchronous = wants_async(ask.wait, ask.headers);
        // A held request's row expires when the hold ends (whole seconds, rounded up).
        let hold_secs = ask.timeout.as_secs() + u64::from(ask.timeout.subsec_nanos() > 0);
        let new = NewApproval {
            org: ask.org,
            route_id: None,
            route_name: ask.route.to_owned(),
            requester,
            policy_id: ask.policy_id.to_owned(),
            reason,
            summary: RequestSummary {
                method: ask.method.to_owned(),
                path: ask.path.to_owned(),
                host: Some(ask.host.to_owned()).filter(|h| !h.is_empty()),
                model: ask.model.map(str::to_owned),
                tool: ask.tool.map(str::to_owned),
            },
            mode: if asynchronous {
                ApprovalMode::Async
            } else {
                ApprovalMode::Hold
            },
            grant: GrantKind::Once,
            grant_secs: None,
            pending_secs: (!asynchronous).then_some(hold_secs as i64),
        };
        let row = self
            .approvals
            .request_approval(new, now)
            .await
            .map_err(|e| match e {
                ApprovalError::MissingReason | ApprovalError::ReasonTooLong { .. } => {
                    GatewayError::ReasonRequired(format!("{REASON_HEADER}: {e}"))
                }
                other => unavailable(other),
            })?;
        drop(admitted);
        metrics::counter!("keyward_gateway_approvals_requested_total", "route" => ask.route.to_owned())
            .increment(1);
        if asynchronous {
            return Err(refused(
                &row,
                ask.policy_id,
                format!(
                    "approval {} was asked for (policy {}); send the request again once a person has approved it (keyward approval approve {})",
                    row.id, ask.policy_id, row.id
                ),
            ));
        }

        // Held: released by a decision from any replica, or at the row's expiry (which lies
        // within a second after the hold's end, so the answer can say `expired`).
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(hold_secs) + Duration::from_secs(1);
        let clock = self.clock.clone();
        let row = self
            .approvals
            .wait_for_decision(ask.org, row.id, deadline, move || clock.now())
            .await
            .map_err(unavailable)?;
        match row.state {
            ApprovalState::Approved => {
                if self
                    .approvals
                    .use_grant(&row, self.clock.now())
                    .await
                    .map_err(unavailable)?
                {
                    Ok(passed(&row))
                } else {
                    Err(refused(
                        &row,
                        ask.policy_id,
                        format!(
                            "approval {} was used up or ended before this request could use it; ask again",
                            row.id
                        ),
                    ))
                }
            }
            ApprovalState::Denied => {
                let by = row.decided_by_email.as_deref().unwrap_or("an approver");
                let comment = row
                    .decision_comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                Err(refused(
                    &row,
                    ask.policy_id,
                    format!("approval {} was denied by {by}{comment}", row.id),
                ))
            }
            ApprovalState::Pending | ApprovalState::Expired => Err(refused(
                &ApprovalRow {
                    state: ApprovalState::Expired,
                    ..row.clone()
                },
                ask.policy_id,
                format!(
                    "approval {} was not decided within route {}'s approval_timeout of {}s; ask again, or ask with `Prefer: respond-async` and retry once approved",
                    row.id, ask.route, hold_secs
                ),
            )),
            ApprovalState::Revoked | ApprovalState::Executed => Err(refused(
                &row,
                ask.policy_id,
                format!("approval {} is {}; ask again", row.id, row.state.as_str()),
            )),
        }
    }
}
