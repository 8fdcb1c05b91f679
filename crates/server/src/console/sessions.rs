//! `/console/sessions`: gateway session recordings (SPEC §9) — the list, searched by caller,
//! route and time as `GET /api/v1/sessions` allows, and one session's replay view: its masked
//! records as stored (requests, decisions, responses, with their offsets in time) and the
//! verification of the recording against the audit log's heads.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use keyward_recording::Record;
use keyward_store::SessionFilter;
use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use super::audit::since_ms;
use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render};
use crate::clock::ms_to_datetime;
use crate::domain::gateway_sessions::{self as domain, Verification};
use crate::domain::members::list_members;
use crate::error::ApiError;
use crate::state::AppState;

/// Sessions listed at once.
const LIST_LIMIT: i64 = 100;
/// Records shown on one page of the replay.
const RECORDS_PAGE: usize = 500;

fn at(ms: i64) -> String {
    ms_to_datetime(ms).format(&Rfc3339).unwrap_or_default()
}

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    caller: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

pub struct SessionRow {
    pub id: String,
    pub segments: i64,
    pub errors: i64,
    pub first: String,
    pub last: String,
    pub callers: String,
    pub routes: String,
}

#[derive(Template)]
#[template(path = "console/sessions.html")]
pub struct SessionsPage {
    pub layout: Layout,
    pub caller: String,
    pub route: String,
    pub since: String,
    pub until: String,
    pub sessions: Vec<SessionRow>,
}

/// The caller as recorded: `user:<id>`/`automation:<id>` as is, a member's email as theirs.
async fn caller_key(app: &AppState, ctx: &Ctx, caller: &str) -> Result<Option<String>, ApiError> {
    let caller = caller.trim();
    if caller.is_empty() {
        return Ok(None);
    }
    if caller.contains('@') && !caller.contains(':') {
        let members = list_members(app, &ctx.caller).await?;
        if let Some(m) = members
            .iter()
            .find(|m| m.user.email.eq_ignore_ascii_case(caller))
        {
            return Ok(Some(format!("user:{}", m.user.id)));
        }
    }
    Ok(Some(caller.to_owned()))
}

async fn search(app: &AppState, ctx: &Ctx, s: &Search) -> Result<Vec<SessionRow>, ApiError> {
    let filter = SessionFilter {
        caller: caller_key(app, ctx, &s.caller).await?,
        route: Some(s.route.trim().to_owned()).filter(|r| !r.is_empty()),
        since_ms: since_ms(&s.since)?,
        until_ms: since_ms(&s.until).map_err(|_| {
            ApiError::invalid(
                "until",
                "'until' must be a day like 2026-01-31 or a time like 2026-01-31T12:00:00Z",
            )
        })?,
        limit: LIST_LIMIT,
    };
    Ok(domain::list(app, &ctx.caller, &filter)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.session_id,
            segments: s.segments,
            errors: s.errors,
            first: at(s.first_ms),
            last: at(s.last_ms),
            callers: s.callers.join(", "),
            routes: s.routes.join(", "),
        })
        .collect())
}

/// `GET /console/sessions`
pub async fn page(
    State(app): State<AppState>,
    ctx: Ctx,
    query: Result<Query<Search>, QueryRejection>,
) -> Response {
    let layout = ctx.layout("Sessions", "/console/sessions");
    let Ok(Query(s)) = query else {
        return error_page(
            Some(layout),
            ApiError::invalid("query", "the search takes caller, route, since and until"),
        );
    };
    let (sessions, flash) = match search(&app, &ctx, &s).await {
        Ok(rows) => (rows, None),
        // A bad search keeps the form filled in, with what to fix above it.
        Err(e @ ApiError::Invalid { .. }) => (Vec::new(), Flash::error(e.status_and_message().1)),
        Err(e) => return error_page(Some(layout), e),
    };
    render(
        if flash.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &SessionsPage {
            caller: s.caller,
            route: s.route,
            since: s.since,
            until: s.until,
            sessions,
            layout: layout.with_flash(flash),
        },
    )
}

pub struct HeadView {
    pub segment: String,
    pub at: String,
    pub caller: String,
    pub route: String,
    pub status: String,
    pub error: Option<String>,
}

/// One record as the replay shows it: `>` sent, `<` answered, `=` decided by Keyward.
pub struct RecordView {
    pub seq: u64,
    pub segment: u64,
    pub offset_ms: u64,
    pub kind: String,
    pub mark: &'static str,
    pub text: String,
}

pub struct VerifyView {
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/session.html")]
pub struct SessionPage {
    pub layout: Layout,
    pub id: String,
    pub callers: String,
    pub routes: String,
    pub first: String,
    pub last: String,
    pub heads: Vec<HeadView>,
    pub stored: Result<String, String>,
    pub verify: VerifyView,
    pub records: Vec<RecordView>,
    pub records_error: Option<String>,
    /// `after_seq` of the next page of records.
    pub next: Option<u64>,
}

fn body_text(b: &Value) -> String {
    if let Some(t) = b.get("text").and_then(Value::as_str) {
        t.to_owned()
    } else if let Some(b64) = b.get("base64").and_then(Value::as_str) {
        let len = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(|v| v.len())
            .unwrap_or(0);
        format!("[{len} binary bytes]")
    } else {
        b.to_string()
    }
}

fn headers_text(d: &Value) -> String {
    d.get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|pair| {
            let part = |i: usize| pair.get(i).and_then(Value::as_str).unwrap_or("");
            format!("{}: {}\n", part(0), part(1))
        })
        .collect()
}

/// The record's text as the CLI's replay prints it (`keyward session replay`).
fn record_view(r: Record, start_ms: u64) -> RecordView {
    let d = &r.data;
    let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let (mark, text) = match r.kind.as_str() {
        "request" => {
            let mut t = format!("{} {}\n{}", field("method"), field("path"), headers_text(d));
            if let Some(b) = d.get("body") {
                t.push('\n');
                t.push_str(&body_text(b));
            }
            (">", t)
        }
        "request_chunk" => (">", body_text(d.get("body").unwrap_or(&Value::Null))),
        "response" => (
            "<",
            format!(
                "{}\n{}",
                d.get("status").unwrap_or(&Value::Null),
                headers_text(d)
            ),
        ),
        "response_chunk" => ("<", body_text(d.get("body").unwrap_or(&Value::Null))),
        "segment" => (
            "=",
            format!(
                "segment {} (caller {}, route {})",
                d.get("segment").unwrap_or(&Value::Null),
                field("caller"),
                field("route")
            ),
        ),
        _ => ("=", d.to_string()),
    };
    RecordView {
        seq: r.seq,
        segment: r.segment,
        offset_ms: r.at_ms.saturating_sub(start_ms),
        kind: r.kind,
        mark,
        text,
    }
}

#[derive(Deserialize, Default)]
pub struct RecordsPage {
    after_seq: Option<u64>,
}

/// `GET /console/sessions/{id}`: the replay view (records after `after_seq`) and the verdict.
pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<RecordsPage>,
) -> Response {
    let layout = ctx.layout("Session", "/console/sessions");
    let view = match domain::show(&app, &ctx.caller, &id).await {
        Ok(v) => v,
        Err(e) => return error_page(Some(layout), e),
    };
    let verify = match domain::verify(&app, &ctx.caller, &id).await {
        Ok(Verification::Intact {
            report,
            write_errors,
        }) => VerifyView {
            ok: true,
            text: format!(
                "Verified: {} segments, {} records, anchored in the audit log: {}{}.",
                report.segments.len(),
                report.records,
                report.anchored,
                if write_errors > 0 {
                    format!("; {write_errors} request(s) failed to be recorded")
                } else {
                    String::new()
                }
            ),
        },
        Ok(Verification::Broken { message, .. }) => VerifyView {
            ok: false,
            text: format!("Does not verify: {message}"),
        },
        Err(e) => VerifyView {
            ok: false,
            text: format!("Not verified: {}", e.status_and_message().1),
        },
    };
    let (records, records_error, next) =
        match domain::records(&app, &ctx.caller, &id, q.after_seq, RECORDS_PAGE).await {
            Ok((records, more)) => {
                let start = records.first().map_or(0, |r| r.at_ms);
                let next = more.then(|| records.last().map(|r| r.seq)).flatten();
                // Offsets count from each segment's first record (one request each).
                let mut segment_start = (u64::MAX, start);
                let views = records
                    .into_iter()
                    .map(|r| {
                        if r.segment != segment_start.0 {
                            segment_start = (r.segment, r.at_ms);
                        }
                        record_view(r, segment_start.1)
                    })
                    .collect();
                (views, None, next)
            }
            Err(e) => (Vec::new(), Some(e.status_and_message().1), None),
        };
    let summary = view.summary;
    render(
        StatusCode::OK,
        &SessionPage {
            layout: Layout {
                title: format!("Session {id}"),
                ..layout
            },
            callers: summary.callers.join(", "),
            routes: summary.routes.join(", "),
            first: at(summary.first_ms),
            last: at(summary.last_ms),
            heads: view
                .heads
                .into_iter()
                .map(|h| HeadView {
                    segment: h.segment.map_or_else(|| "–".to_owned(), |s| s.to_string()),
                    at: at(h.event.at_ms),
                    caller: h.event.actor,
                    route: h.route.unwrap_or_default(),
                    status: h.status.map_or_else(String::new, |s| s.to_string()),
                    error: h.error,
                })
                .collect(),
            stored: view
                .stored
                .map(|i| format!("{} segment(s), {} bytes compressed", i.segments, i.bytes)),
            verify,
            records,
            records_error,
            next,
            id,
        },
    )
}
