//! Approval requests as people see and decide them through `/api/v1/approvals` (SPEC §9).
//!
//! Who sees a request: a role with `gateway` read, or whoever holds `human_in_the_loop` (or
//! `full_access`) on the automation that asked. Anyone else is told it does not exist (404),
//! and their list is filtered, as for private automations. Who decides: a person (never an
//! automation token, which the route layer refuses) whose role grants `gateway` manage or who
//! holds `human_in_the_loop` on the requesting automation — and never the requester.

use keyward_core::api::approvals::{ApprovalState, ApproveRequest};
use keyward_core::permission::AutomationPermission;
use keyward_core::{ApprovalId, Feature, Level, OrgId};
use keyward_store::{ApprovalFilter, ApprovalRow, Decision, StoreError, Transition};

use super::access::held_on_automation;
use super::approval_service::{
    ApprovalError, MAX_REASON_CHARS, audit_data, event_kind, expire_and_audit, validate_grant_secs,
};
use crate::caller::{Caller, OrgContext, Principal};
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

/// The longest decision comment kept (characters).
pub const MAX_COMMENT_CHARS: usize = MAX_REASON_CHARS;

/// The organization of a route declared `Need::Person`: the one selected, or the only one.
fn org(caller: &Caller) -> Result<&OrgContext, ApiError> {
    caller.org.as_ref().ok_or_else(|| ApiError::Invalid {
        code: "organization_required",
        message:
            "choose the organization with the X-Keyward-Organization-Id header (CLI: --org <uuid>)"
                .into(),
        field: Some("X-Keyward-Organization-Id"),
    })
}

/// Whether the caller holds `human_in_the_loop` on the automation that asked.
async fn in_the_loop(app: &AppState, caller: &Caller, row: &ApprovalRow) -> Result<bool, ApiError> {
    let Some(automation) = row.requester_automation else {
        return Ok(false);
    };
    let access = match app.store.automation_access(row.org_id, automation).await {
        Ok(access) => access,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let held = held_on_automation(app, caller, &access).await?;
    Ok(AutomationPermission::HumanInTheLoop.granted_by(&held))
}

async fn may_see(app: &AppState, caller: &Caller, row: &ApprovalRow) -> Result<bool, ApiError> {
    Ok(org(caller)?.role.allows(Feature::Gateway, Level::Read)
        || in_the_loop(app, caller, row).await?)
}

/// Persists expiries that are due, so what people read matches the audit log.
async fn settle(app: &AppState, org: OrgId, now: i64) -> Result<(), ApiError> {
    expire_and_audit(app.store.as_ref(), &app.audit, Some(org), now)
        .await
        .map_err(|e| match e {
            ApprovalError::Store(e) | ApprovalError::Audit(e) => ApiError::from(e),
            other => ApiError::internal(other),
        })?;
    Ok(())
}

pub struct ListQuery {
    pub state: Option<String>,
    pub route: Option<String>,
    pub requester: Option<String>,
    pub limit: Option<i64>,
}

pub(crate) async fn list_approvals(
    app: &AppState,
    caller: &Caller,
    q: ListQuery,
) -> Result<Vec<ApprovalRow>, ApiError> {
    let org_id = org(caller)?.id;
    let state = q
        .state
        .as_deref()
        .map(|s| {
            ApprovalState::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    format!("unknown state '{s}'; use pending, approved, denied, expired, revoked or executed"),
                )
            })
        })
        .transpose()?;
    settle(app, org_id, caller.now).await?;
    let filter = ApprovalFilter {
        state,
        route: q.route,
        requester: q.requester,
        before: None,
        limit: q.limit.unwrap_or(100),
    };
    let rows = app
        .store
        .list_approvals(org_id, &filter, caller.now)
        .await?;
    if org(caller)?.role.allows(Feature::Gateway, Level::Read) {
        return Ok(rows);
    }
    let mut visible = Vec::new();
    for row in rows {
        if in_the_loop(app, caller, &row).await? {
            visible.push(row);
        }
    }
    Ok(visible)
}

/// `{id}` is the approval's UUID; one the caller may not see is 404 like another org's.
pub(crate) async fn find_approval(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ApprovalRow, ApiError> {
    let org_id = org(caller)?.id;
    let id: ApprovalId = id.parse().map_err(|_| ApiError::not_found("approval"))?;
    settle(app, org_id, caller.now).await?;
    let row = app
        .store
        .get_approval(org_id, id, caller.now)
        .await
        .map_err(or_not_found("approval"))?;
    if !may_see(app, caller, &row).await? {
        return Err(ApiError::not_found("approval"));
    }
    Ok(row)
}

/// The rules on the decider: a person with the right to decide, who is not the requester.
async fn ensure_may_decide(
    app: &AppState,
    caller: &Caller,
    row: &ApprovalRow,
) -> Result<(), ApiError> {
    let Principal::Person { user, email } = &caller.principal else {
        return Err(crate::caller::wrong_kind());
    };
    let ctx = org(caller)?;
    if !ctx.role.allows(Feature::Gateway, Level::Manage) && !in_the_loop(app, caller, row).await? {
        return Err(ApiError::Forbidden {
            code: "forbidden",
            message: format!(
                "deciding approvals needs a role granting manage on gateway, or the human_in_the_loop permission on the requesting automation; your role '{}' grants neither",
                ctx.role.name
            ),
        });
    }
    let same = |v: &str| v.eq_ignore_ascii_case(email) || v == user.to_string();
    if same(&row.requester_subject) || row.requester_email.as_deref().is_some_and(same) {
        return Err(ApiError::Forbidden {
            code: "own_request",
            message:
                "you made this request: an approver is never the requester; ask another approver"
                    .into(),
        });
    }
    Ok(())
}

fn comment(text: Option<String>, required: bool) -> Result<Option<String>, ApiError> {
    let text = text.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    match &text {
        None if required => Err(ApiError::invalid(
            "comment",
            "a comment is required: say why (it goes into the audit log)",
        )),
        Some(c) if c.chars().count() > MAX_COMMENT_CHARS => Err(ApiError::invalid(
            "comment",
            format!("the comment is longer than {MAX_COMMENT_CHARS} characters"),
        )),
        _ => Ok(text),
    }
}

/// `30m`, `2h`, `90s`, `1d` or plain seconds.
pub fn parse_duration(text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        ApiError::invalid(
            "duration",
            format!("{text:?} is not a duration like 30m, 2h or 90s (at most 48h)"),
        )
    };
    let value: i64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    value.checked_mul(factor).ok_or_else(bad)
}

/// A refused transition: 409 naming the state the request is in.
fn not_pending(row: &ApprovalRow, action: &str) -> ApiError {
    ApiError::Conflict {
        field: "state",
        message: format!(
            "approval {} is {}, so it cannot be {action}; only {} can",
            row.id,
            row.state,
            if action == "revoked" {
                "an approved, unexpired grant"
            } else {
                "a pending request"
            }
        ),
    }
}

async fn record(app: &AppState, caller: &Caller, row: &ApprovalRow) -> Result<(), ApiError> {
    app.audit
        .record(
            event_kind(row.state),
            Some(row.org_id),
            &caller.actor(),
            audit_data(row),
        )
        .await?;
    Ok(())
}

fn person(caller: &Caller) -> Result<(keyward_core::UserId, String), ApiError> {
    match &caller.principal {
        Principal::Person { user, email } => Ok((*user, email.clone())),
        Principal::Automation { .. } => Err(crate::caller::wrong_kind()),
    }
}

pub(crate) async fn approve(
    app: &AppState,
    caller: &Caller,
    row: ApprovalRow,
    body: ApproveRequest,
) -> Result<ApprovalRow, ApiError> {
    ensure_may_decide(app, caller, &row).await?;
    let grant = body.grant.unwrap_or(row.grant_kind);
    let secs = match body.duration.as_deref() {
        Some(d) => parse_duration(d)?,
        None => row.grant_seconds,
    };
    let secs =
        validate_grant_secs(secs).map_err(|e| ApiError::invalid("duration", e.to_string()))?;
    let (user, email) = person(caller)?;
    let decision = Decision {
        approve: true,
        user,
        email,
        comment: comment(body.comment, false)?,
        grant_kind: grant,
        grant_expires_at: caller.now.saturating_add(secs),
    };
    decided(app, caller, &row, decision, "approved").await
}

pub(crate) async fn deny(
    app: &AppState,
    caller: &Caller,
    row: ApprovalRow,
    text: Option<String>,
) -> Result<ApprovalRow, ApiError> {
    ensure_may_decide(app, caller, &row).await?;
    let (user, email) = person(caller)?;
    let decision = Decision {
        approve: false,
        user,
        email,
        comment: comment(text, true)?,
        grant_kind: row.grant_kind,
        grant_expires_at: caller.now,
    };
    decided(app, caller, &row, decision, "denied").await
}

async fn decided(
    app: &AppState,
    caller: &Caller,
    row: &ApprovalRow,
    decision: Decision,
    action: &str,
) -> Result<ApprovalRow, ApiError> {
    match app
        .store
        .decide_approval(row.org_id, row.id, &decision, caller.now)
        .await
        .map_err(or_not_found("approval"))?
    {
        Transition::Done(done) => {
            record(app, caller, &done).await?;
            Ok(done)
        }
        Transition::Refused(now) => Err(not_pending(&now, action)),
    }
}

pub(crate) async fn revoke(
    app: &AppState,
    caller: &Caller,
    row: ApprovalRow,
    text: Option<String>,
) -> Result<ApprovalRow, ApiError> {
    ensure_may_decide(app, caller, &row).await?;
    let (user, email) = person(caller)?;
    let Some(text) = comment(text, true)? else {
        return Err(ApiError::invalid("comment", "a comment is required"));
    };
    match app
        .store
        .revoke_approval(row.org_id, row.id, user, &email, &text, caller.now)
        .await
        .map_err(or_not_found("approval"))?
    {
        Transition::Done(done) => {
            record(app, caller, &done).await?;
            Ok(done)
        }
        Transition::Refused(now) => Err(not_pending(&now, "revoked")),
    }
}
