//! `/api/v1/sessions`: gateway session recordings — list, show, records (for replay), verify.
//! Verification answers 200 either way (`ok: false` with the place at fault): the check ran;
//! its verdict is the body, as `/api/v1/audit/verify` does for the audit chain.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use keyward_core::api::sessions::{
    SessionDetail, SessionRecord, SessionRecords, SessionSegment, SessionSummary,
    SessionVerification, StoredSession, VerifiedSegment,
};
use keyward_store::SessionFilter;
use keyward_store::sessions::MAX_SESSIONS_PAGE;
use serde::Deserialize;

use super::audit::time_ms;
use super::query;
use crate::caller::Caller;
use crate::clock::ms_to_datetime;
use crate::domain::gateway_sessions::{self as domain, MAX_RECORDS_PAGE, Verification};
use crate::error::ApiError;
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const DEFAULT_RECORDS: usize = 1_000;

fn summary_wire(s: keyward_store::SessionSummary) -> SessionSummary {
    SessionSummary {
        id: s.session_id,
        segments: s.segments.max(0) as u64,
        errors: s.errors.max(0) as u64,
        first_at: ms_to_datetime(s.first_ms),
        last_at: ms_to_datetime(s.last_ms),
        callers: s.callers,
        routes: s.routes,
    }
}

fn head_wire(h: keyward_store::SessionHeadRow) -> SessionSegment {
    SessionSegment {
        segment: h.segment,
        audit_seq: h.event.seq,
        at: ms_to_datetime(h.event.at_ms),
        caller: h.event.actor,
        route: h.route,
        status: h.status,
        lines: h.lines,
        head_hash: h.head_hash,
        bytes: h.bytes,
        error: h.error,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    caller: Option<String>,
    route: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
}

/// The organization's sessions, the most recently active first.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<SessionSummary>>, ApiError> {
    let q = query(q, "caller, route, since, until, limit")?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_SESSIONS_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_SESSIONS_PAGE}"),
        ));
    }
    let filter = SessionFilter {
        caller: q.caller.filter(|c| !c.is_empty()),
        route: q.route.filter(|r| !r.is_empty()),
        since_ms: time_ms("since", q.since.as_deref())?,
        until_ms: time_ms("until", q.until.as_deref())?,
        limit,
    };
    let rows = domain::list(&app, &caller, &filter).await?;
    Ok(Json(rows.into_iter().map(summary_wire).collect()))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let view = domain::show(&app, &caller, &id).await?;
    let (stored, stored_error) = match view.stored {
        Ok(i) => (
            Some(StoredSession {
                segments: i.segments,
                bytes: i.bytes,
                first_at_ms: i.first_at_ms,
                last_at_ms: i.last_at_ms,
                caller: i.caller,
                route: i.route,
            }),
            None,
        ),
        Err(e) => (None, Some(e)),
    };
    Ok(Json(SessionDetail {
        summary: summary_wire(view.summary),
        heads: view.heads.into_iter().map(head_wire).collect(),
        stored,
        stored_error,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    after_seq: Option<u64>,
    limit: Option<usize>,
}

/// The masked records as stored, in order, for replay (not verified: see `verify`).
pub async fn records(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Json<SessionRecords>, ApiError> {
    let q = query(q, "after_seq, limit")?;
    let limit = q.limit.unwrap_or(DEFAULT_RECORDS);
    if !(1..=MAX_RECORDS_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_RECORDS_PAGE}"),
        ));
    }
    let (records, more) = domain::records(&app, &caller, &id, q.after_seq, limit).await?;
    let next_after_seq = more.then(|| records.last().map(|r| r.seq)).flatten();
    Ok(Json(SessionRecords {
        id,
        records: records
            .into_iter()
            .map(|r| SessionRecord {
                segment: r.segment,
                line: r.line,
                seq: r.seq,
                at_ms: r.at_ms,
                kind: r.kind,
                data: r.data,
                prev: r.prev,
                hash: r.hash,
            })
            .collect(),
        next_after_seq,
    }))
}

pub async fn verify(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionVerification>, ApiError> {
    Ok(Json(match domain::verify(&app, &caller, &id).await? {
        Verification::Intact {
            report,
            write_errors,
        } => SessionVerification {
            id,
            ok: true,
            error: None,
            records: report.records,
            segments: report
                .segments
                .into_iter()
                .map(|s| VerifiedSegment {
                    segment: s.segment,
                    lines: s.lines,
                    head_hash: s.head_hash,
                    bytes: s.bytes,
                })
                .collect(),
            anchored: report.anchored,
            write_errors,
        },
        Verification::Broken {
            message,
            write_errors,
        } => SessionVerification {
            id,
            ok: false,
            error: Some(message),
            records: 0,
            segments: Vec::new(),
            anchored: false,
            write_errors,
        },
    }))
}
