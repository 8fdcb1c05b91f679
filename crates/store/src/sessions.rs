//! Gateway session recordings as the audit log knows them (SPEC §9, issue 17). The recordings
//! themselves live in object storage (`keyward-recording`); every recorded request ends in one
//! `gateway.request` audit event whose `data.session` is the segment's head
//! (`{id, segment, lines, head_hash, bytes}`) or, when writing the recording failed,
//! `{id, error}`. Those heads are the tamper-evident anchor verification checks the store
//! against, and their events are what lists sessions without reading any recording.

use async_trait::async_trait;
use keyward_core::OrgId;

use crate::Result;
use crate::model::AuditRow;

/// The audit event kind that carries a session's segment heads.
pub const GATEWAY_REQUEST_KIND: &str = "gateway.request";

/// The most sessions one list returns.
pub const MAX_SESSIONS_PAGE: i64 = 500;

/// One `gateway.request` event of a session: a segment's head, or the error that kept the
/// segment from being written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionHeadRow {
    /// The audit event as stored: `at_ms`, the caller's subject as `actor`, and its link in the
    /// audit chain, so a reader can check the event was not edited (`AuditKey::is_keyed`).
    pub event: AuditRow,
    pub route: Option<String>,
    /// The HTTP status the gateway answered.
    pub status: Option<i64>,
    /// `None` for an error event (no head) or a malformed one.
    pub segment: Option<u64>,
    pub lines: Option<u64>,
    pub head_hash: Option<String>,
    pub bytes: Option<u64>,
    /// Why the segment was not written.
    pub error: Option<String>,
}

/// Which sessions to list. A session matches `caller` or `route` when any of its requests does,
/// and `since_ms`/`until_ms` when its requests overlap `[since_ms, until_ms)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub caller: Option<String>,
    pub route: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Clamped to 1..=[`MAX_SESSIONS_PAGE`].
    pub limit: i64,
}

/// One session as its audit events summarize it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    /// Events that carry a segment head.
    pub segments: i64,
    /// Events whose recording failed.
    pub errors: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Distinct caller subjects and route names, sorted.
    pub callers: Vec<String>,
    pub routes: Vec<String>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The organization's `gateway.request` events of the session, ordered by segment (events
    /// without a head, such as errors, last, in audit order). Empty for an unknown session or
    /// one of another organization.
    async fn session_heads(&self, org: OrgId, session_id: &str) -> Result<Vec<SessionHeadRow>>;
    /// The organization's sessions matching `filter`, the most recently active first.
    async fn list_sessions(
        &self,
        org: OrgId,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionSummary>>;
}

/// Reads one event's `data` into a head row; a member of the wrong type reads as absent, so an
/// odd event is shown (and fails verification) rather than hiding the rest.
pub(crate) fn head_row(event: AuditRow) -> Result<SessionHeadRow> {
    let data: serde_json::Value = serde_json::from_str(&event.data).map_err(|_| {
        crate::StoreError::Corrupt(format!("audit event {}: data is not JSON", event.seq))
    })?;
    let session = data.get("session");
    let s_u64 = |k: &str| session.and_then(|s| s.get(k)).and_then(|v| v.as_u64());
    let s_str = |k: &str| {
        session
            .and_then(|s| s.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Ok(SessionHeadRow {
        route: data
            .get("route")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        status: data.get("status").and_then(|v| v.as_i64()),
        segment: s_u64("segment"),
        lines: s_u64("lines"),
        head_hash: s_str("head_hash"),
        bytes: s_u64("bytes"),
        error: s_str("error"),
        event,
    })
}

/// A JSON array of strings from an aggregate, without nulls, sorted.
pub(crate) fn string_list(column: &str, json: Option<String>) -> Result<Vec<String>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let values: Vec<Option<String>> = serde_json::from_str(&json)
        .map_err(|_| crate::StoreError::Corrupt(format!("{column} is not a JSON string array")))?;
    let mut out: Vec<String> = values.into_iter().flatten().collect();
    out.sort();
    out.dedup();
    Ok(out)
}
