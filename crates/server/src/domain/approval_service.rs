//! The approval service the gateway calls (SPEC §9, just-in-time approval): it creates a
//! request, waits for its decision, finds and spends grants, and expires what ran out — each
//! transition audited. It needs no HTTP request: the gateway builds one with its own store and
//! an [`Auditor`] over the platform's audit chain.

use std::sync::Arc;

use keyward_core::api::approvals::{ApprovalMode, ApprovalState, GrantKind, Requester};
use keyward_core::{ApprovalId, AutomationId, OrgId};
use keyward_store::{ApprovalRow, Store, StoreError, Transition};
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::time::Instant;

use super::approval_webhook::ApprovalWebhook;
use crate::audit::{Auditor, kind};

/// The longest reason kept (characters); a longer one is refused, not cut.
pub const MAX_REASON_CHARS: usize = 1000;
/// How long a grant lasts unless the route or the approver says otherwise.
pub const DEFAULT_GRANT_SECS: i64 = 30 * 60;
/// No grant lasts longer: every grant expires.
pub const MAX_GRANT_SECS: i64 = 48 * 3600;
/// How long a held request waits unless the route says otherwise.
pub const DEFAULT_HOLD_SECS: i64 = 60;
/// How long an asynchronous request stays open for a decision.
pub const DEFAULT_ASYNC_SECS: i64 = 24 * 3600;
/// The audit actor of transitions nobody made (expiry).
pub const SYSTEM_ACTOR: &str = "system:approvals";

/// The longest text kept for each field of a [`RequestSummary`].
pub const MAX_SUMMARY_FIELD: usize = 512;

/// What the gateway knows of the request that needs approval. Never a body or a header value;
/// the path is kept without its query string (which may carry keys or tokens).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestSummary {
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

impl RequestSummary {
    /// Without the path's query string, each field cut to [`MAX_SUMMARY_FIELD`] characters.
    pub fn sanitized(self) -> Self {
        let cut = |s: String| s.chars().take(MAX_SUMMARY_FIELD).collect::<String>();
        let path = self
            .path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            method: cut(self.method),
            path: cut(path),
            host: self.host.map(cut),
            model: self.model.map(cut),
            tool: self.tool.map(cut),
        }
    }
}

/// A request for approval, as the gateway's policy phase produces it.
#[derive(Clone, Debug)]
pub struct NewApproval {
    pub org: OrgId,
    /// The stored route's id, when the route came from the database.
    pub route_id: Option<String>,
    pub route_name: String,
    pub requester: Requester,
    /// The id of the Cedar policy that asked for approval.
    pub policy_id: String,
    /// `X-Keyward-Approval-Reason`, required.
    pub reason: String,
    pub summary: RequestSummary,
    pub mode: ApprovalMode,
    pub grant: GrantKind,
    /// The grant's length once approved (default [`DEFAULT_GRANT_SECS`], at most
    /// [`MAX_GRANT_SECS`]).
    pub grant_secs: Option<i64>,
    /// How long it waits for a decision (default [`DEFAULT_HOLD_SECS`] held,
    /// [`DEFAULT_ASYNC_SECS`] async).
    pub pending_secs: Option<i64>,
}

#[derive(Debug, Error)]
pub enum ApprovalError {
    #[error(
        "a reason is required: send it in the X-Keyward-Approval-Reason header (what you are about to do and why)"
    )]
    MissingReason,
    #[error("the reason is {chars} characters long; keep it to at most {max}")]
    ReasonTooLong { chars: usize, max: usize },
    #[error("a grant lasts at most 48h ({max} seconds); {asked} seconds were asked for")]
    GrantTooLong { asked: i64, max: i64 },
    #[error("{field} must be a positive number of seconds (got {value})")]
    NotPositive { field: &'static str, value: i64 },
    #[error("approval store: {0}")]
    Store(#[from] StoreError),
    #[error("recording the approval in the audit log failed: {0}")]
    Audit(StoreError),
}

/// Checks a reason: present (not blank) and at most [`MAX_REASON_CHARS`].
pub fn validate_reason(reason: &str) -> Result<String, ApprovalError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApprovalError::MissingReason);
    }
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(ApprovalError::ReasonTooLong {
            chars,
            max: MAX_REASON_CHARS,
        });
    }
    Ok(reason.to_owned())
}

/// Checks a grant length: positive and at most [`MAX_GRANT_SECS`].
pub fn validate_grant_secs(secs: i64) -> Result<i64, ApprovalError> {
    if secs <= 0 {
        return Err(ApprovalError::NotPositive {
            field: "duration",
            value: secs,
        });
    }
    if secs > MAX_GRANT_SECS {
        return Err(ApprovalError::GrantTooLong {
            asked: secs,
            max: MAX_GRANT_SECS,
        });
    }
    Ok(secs)
}

/// What an audit event says about an approval (the reason included: it is the justification
/// auditors look for, and it is bounded).
pub fn audit_data(row: &ApprovalRow) -> Value {
    json!({
        "approval_id": row.id,
        "route": row.route_name,
        "route_id": row.route_id,
        "requester": row.requester_subject,
        "requester_kind": row.requester_kind,
        "automation_id": row.requester_automation,
        "policy_id": row.policy_id,
        "reason": row.reason,
        "summary": row.summary,
        "mode": row.mode.as_str(),
        "grant": row.grant_kind.as_str(),
        "state": row.state.as_str(),
        "expires_at": row.expires_at,
        "grant_expires_at": row.grant_expires_at,
        "decided_by": row.decided_by_email,
        "comment": row.decision_comment,
        "revoked_by": row.revoked_by_email,
        "revoke_comment": row.revoke_comment,
    })
}

/// The audit event type of the state a transition reached.
pub fn event_kind(state: ApprovalState) -> &'static str {
    match state {
        ApprovalState::Pending => kind::APPROVAL_REQUESTED,
        ApprovalState::Approved => kind::APPROVAL_APPROVED,
        ApprovalState::Denied => kind::APPROVAL_DENIED,
        ApprovalState::Expired => kind::APPROVAL_EXPIRED,
        ApprovalState::Revoked => kind::APPROVAL_REVOKED,
        ApprovalState::Executed => kind::APPROVAL_EXECUTED,
    }
}

/// Creates, waits for, spends and expires approval requests. Cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<dyn Store>,
    audit: Auditor,
    webhook: Option<Arc<ApprovalWebhook>>,
}

impl Approvals {
    pub fn new(store: Arc<dyn Store>, audit: Auditor, webhook: Option<ApprovalWebhook>) -> Self {
        Self {
            store,
            audit,
            webhook: webhook.map(Arc::new),
        }
    }

    async fn record(&self, row: &ApprovalRow, actor: &str) -> Result<(), ApprovalError> {
        self.audit
            .record(
                event_kind(row.state),
                Some(row.org_id),
                actor,
                audit_data(row),
            )
            .await
            .map_err(ApprovalError::Audit)
    }

    /// Creates a pending request, audits `approval.requested` (actor: the requester) and
    /// announces it through the webhook, off this call's path.
    pub async fn request_approval(
        &self,
        new: NewApproval,
        now: i64,
    ) -> Result<ApprovalRow, ApprovalError> {
        let reason = validate_reason(&new.reason)?;
        let grant_secs = validate_grant_secs(new.grant_secs.unwrap_or(DEFAULT_GRANT_SECS))?;
        let pending = new.pending_secs.unwrap_or(match new.mode {
            ApprovalMode::Hold => DEFAULT_HOLD_SECS,
            ApprovalMode::Async => DEFAULT_ASYNC_SECS,
        });
        if pending <= 0 {
            return Err(ApprovalError::NotPositive {
                field: "pending_secs",
                value: pending,
            });
        }
        let row = ApprovalRow {
            id: ApprovalId::new_ordered(),
            org_id: new.org,
            route_id: new.route_id,
            route_name: new.route_name,
            requester_kind: new.requester.kind,
            requester_subject: new.requester.subject,
            requester_email: new.requester.email,
            requester_automation: new.requester.automation_id,
            policy_id: new.policy_id,
            reason,
            summary: serde_json::to_value(new.summary.sanitized()).unwrap_or(Value::Null),
            mode: new.mode,
            grant_kind: new.grant,
            grant_seconds: grant_secs,
            state: ApprovalState::Pending,
            created_at: now,
            expires_at: now.saturating_add(pending),
            decided_by_user: None,
            decided_by_email: None,
            decision_comment: None,
            decided_at: None,
            grant_expires_at: None,
            executed_at: None,
            revoked_by_user: None,
            revoked_by_email: None,
            revoke_comment: None,
            revoked_at: None,
        };
        self.store.create_approval(&row).await?;
        self.record(&row, &requester_actor(&row)).await?;
        if let Some(hook) = &self.webhook {
            hook.announce(&row);
        }
        Ok(row)
    }

    /// Holds until the request is decided or `deadline` passes, and returns the row as it
    /// reads then. An undecided request past its own deadline is expired (and audited).
    pub async fn wait_for_decision(
        &self,
        org: OrgId,
        id: ApprovalId,
        deadline: Instant,
        now: impl Fn() -> i64,
    ) -> Result<ApprovalRow, ApprovalError> {
        let watcher = self.store.approval_watcher();
        watcher.wait_for_decision(id, deadline).await?;
        let row = self.store.get_approval(org, id, now()).await?;
        if row.state == ApprovalState::Expired {
            self.expire_due(now()).await?;
        }
        Ok(row)
    }

    /// An approved, unexpired grant covering this requester, route and policy.
    pub async fn find_active_grant(
        &self,
        org: OrgId,
        requester_subject: &str,
        requester_automation: Option<AutomationId>,
        route: &str,
        policy_id: &str,
        now: i64,
    ) -> Result<Option<ApprovalRow>, ApprovalError> {
        Ok(self
            .store
            .find_active_grant(
                org,
                requester_subject,
                requester_automation,
                route,
                policy_id,
                now,
            )
            .await?)
    }

    /// Lets one request through on `grant`: a one-shot grant is spent (approved → executed,
    /// audited; `false` when another request spent it first or it ended), a time-boxed one
    /// only has to be still approved.
    pub async fn use_grant(&self, grant: &ApprovalRow, now: i64) -> Result<bool, ApprovalError> {
        match grant.grant_kind {
            GrantKind::Timebox => Ok(self
                .store
                .get_approval(grant.org_id, grant.id, now)
                .await?
                .state
                == ApprovalState::Approved),
            GrantKind::Once => match self.store.consume_once(grant.org_id, grant.id, now).await? {
                Transition::Done(row) => {
                    self.record(&row, &requester_actor(&row)).await?;
                    Ok(true)
                }
                Transition::Refused(_) => Ok(false),
            },
        }
    }

    /// Persists and audits every expiry that is due; returns how many.
    pub async fn expire_due(&self, now: i64) -> Result<usize, ApprovalError> {
        expire_and_audit(self.store.as_ref(), &self.audit, None, now).await
    }

    /// Held requests of the route, and of the requester, still waiting (for the bounds).
    pub async fn pending_counts(
        &self,
        org: OrgId,
        route: &str,
        requester_subject: &str,
        requester_automation: Option<AutomationId>,
        now: i64,
    ) -> Result<(i64, i64), ApprovalError> {
        Ok((
            self.store.count_pending(org, route, now).await?,
            self.store
                .count_pending_for(org, requester_subject, requester_automation, now)
                .await?,
        ))
    }
}

/// How the requester appears as an audit actor.
pub fn requester_actor(row: &ApprovalRow) -> String {
    match row.requester_automation {
        Some(a) => format!("automation:{a}"),
        None => format!("{}:{}", row.requester_kind, row.requester_subject),
    }
}

/// Persists due expiries (of `org`, or all) and audits each as `approval.expired`.
pub async fn expire_and_audit(
    store: &dyn Store,
    audit: &Auditor,
    org: Option<OrgId>,
    now: i64,
) -> Result<usize, ApprovalError> {
    let expired = store.expire_due(org, now).await?;
    for row in &expired {
        audit
            .record(
                kind::APPROVAL_EXPIRED,
                Some(row.org_id),
                SYSTEM_ACTOR,
                audit_data(row),
            )
            .await
            .map_err(ApprovalError::Audit)?;
    }
    Ok(expired.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(matches!(
            validate_reason("  "),
            Err(ApprovalError::MissingReason)
        ));
        assert_eq!(validate_reason(" why \n").unwrap(), "why");
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert!(matches!(
            validate_reason(&long),
            Err(ApprovalError::ReasonTooLong { .. })
        ));
    }

    #[test]
    fn grants_always_end_within_48_hours() {
        assert_eq!(validate_grant_secs(1800).unwrap(), 1800);
        assert!(validate_grant_secs(0).is_err());
        let e = validate_grant_secs(MAX_GRANT_SECS + 1).unwrap_err();
        assert!(e.to_string().contains("48h"), "{e}");
    }

    #[test]
    fn the_summary_keeps_no_query_string() {
        let s = RequestSummary {
            method: "GET".into(),
            path: "/v1/files?api_key=sk-live-123#frag".into(),
            host: Some("h".repeat(2000)),
            model: None,
            tool: None,
        }
        .sanitized();
        assert_eq!(s.path, "/v1/files");
        assert_eq!(s.host.unwrap().len(), MAX_SUMMARY_FIELD);
    }
}
