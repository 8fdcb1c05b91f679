//! `/api/v1/sessions`: gateway session recordings (SPEC §9) — the list (from the audit log), one
//! session with its segment heads, its masked records for replay, and its verification.
//!
//! Times are RFC 3339 for people and `*_ms` (milliseconds since the Unix epoch) where the
//! difference matters: replay sleeps the gaps between records' `at_ms`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// One session in a list: what the audit log's `gateway.request` events say of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionSummary {
    pub id: String,
    /// Requests whose segment was recorded (each has a head in the audit log).
    pub segments: u64,
    /// Requests whose recording failed to be written.
    pub errors: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    /// Distinct caller subjects and route names, sorted.
    pub callers: Vec<String>,
    pub routes: Vec<String>,
}

/// One `gateway.request` event of a session: a segment's head, or why it was not written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionSegment {
    /// `None` for a request whose recording failed.
    pub segment: Option<u64>,
    /// The audit event that holds this head.
    pub audit_seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub caller: String,
    pub route: Option<String>,
    pub status: Option<i64>,
    pub lines: Option<u64>,
    pub head_hash: Option<String>,
    /// Compressed size of the stored object.
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the recording store holds of a session (read from its first and last segments).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredSession {
    pub segments: u64,
    /// Compressed bytes of all segments.
    pub bytes: u64,
    /// `at_ms` of the first and last records.
    pub first_at_ms: u64,
    pub last_at_ms: u64,
    /// From the first segment's header.
    pub caller: Option<String>,
    pub route: Option<String>,
}

/// `GET /api/v1/sessions/{id}`: the summary, every head the audit log holds, and the store's view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub heads: Vec<SessionSegment>,
    /// `None` when the store could not be read; `stored_error` then says why.
    pub stored: Option<StoredSession>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_error: Option<String>,
}

/// One recorded record, masked as stored. Not verified: `GET …/verify` checks the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionRecord {
    pub segment: u64,
    /// 1-based line inside its segment.
    pub line: u64,
    pub seq: u64,
    pub at_ms: u64,
    pub kind: String,
    pub data: Value,
    /// The hash chain links as stored (see docs/gateway-sessions.md).
    pub prev: String,
    pub hash: String,
}

/// `GET /api/v1/sessions/{id}/records`: records after `after_seq`, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionRecords {
    pub id: String,
    pub records: Vec<SessionRecord>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_seq: Option<u64>,
}

/// A segment as verification recomputed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifiedSegment {
    pub segment: u64,
    pub lines: u64,
    pub head_hash: String,
    pub bytes: u64,
}

/// `GET /api/v1/sessions/{id}/verify`, answered 200 whether or not the recording is intact: the
/// check itself succeeded. `ok: false` carries `error`, naming the segment and line at fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionVerification {
    pub id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Records checked (0 when the check failed).
    pub records: u64,
    pub segments: Vec<VerifiedSegment>,
    /// Whether the store was compared with heads from the (keyed, hash-chained) audit log: only
    /// then are deleted trailing segments and whole rewrites detected.
    pub anchored: bool,
    /// Requests of the session whose recording failed to be written (no head, nothing to check).
    pub write_errors: u64,
}
