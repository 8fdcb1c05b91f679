//! Gateway session recordings (SPEC §9, issue 17), read back: the list and each session's heads
//! come from the audit log's `gateway.request` events (keyed and hash-chained: the anchor), the
//! records from the recording store (`KEYWARD_RECORDINGS`), one organization per prefix. A session
//! is found through the organization's audit events only, so another organization's session, or
//! one planted in the store without an event, is 404 — and verification reports the latter.
//!
//! Recordings hold what people and agents sent and got back — masked, but still their prompts
//! and answers. `gateway` manage reads every session of the organization; `gateway` read (the
//! default Member) only the sessions the caller took part in, and another's is 404.

use keyward_recording::{
    Record, SegmentHead, SessionInfo, Storage, StorageError, VerifyError, VerifyReport,
    check_session_id,
};
use keyward_store::{SessionFilter, SessionHeadRow, SessionSummary};

use keyward_core::permission::{Feature, Level};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The most records one page of `records` returns.
pub const MAX_RECORDS_PAGE: usize = 10_000;

/// One session: what the audit log says of it, and what the store holds.
#[derive(Debug)]
pub struct SessionView {
    pub summary: SessionSummary,
    pub heads: Vec<SessionHeadRow>,
    /// The store's summary, or why it could not be read.
    pub stored: Result<SessionInfo, String>,
}

/// The outcome of a verification that could be run.
#[derive(Debug)]
pub enum Verification {
    Intact {
        report: VerifyReport,
        write_errors: u64,
    },
    /// The recording (or its anchor) was edited, deleted, truncated or added to; the message
    /// names the segment and line, or the audit event, at fault.
    Broken { message: String, write_errors: u64 },
}

/// A path's session id, refused with the reason before it reaches the store or a key.
pub fn checked_id(id: &str) -> Result<(), ApiError> {
    check_session_id(id).map_err(|e| ApiError::Invalid {
        code: "invalid_session_id",
        message: e.to_string(),
        field: Some("id"),
    })
}

/// The caller's organization's part of the recording store.
fn org_storage(app: &AppState, caller: &Caller) -> Result<Storage, ApiError> {
    let Some(root) = &app.config.recordings else {
        return Err(ApiError::Unavailable {
            code: "recording_off",
            message: "session recording is off on this server (KEYWARD_RECORDINGS=off): set \
                      KEYWARD_RECORDINGS to the store the gateway records into (unset means \
                      <data-dir>/sessions) to read recordings"
                .into(),
        });
    };
    root.within(&caller.org()?.id.to_string())
        .map_err(|e| ApiError::internal(format!("organization prefix of the recording store: {e}")))
}

fn unreadable(storage: &Storage, e: StorageError) -> ApiError {
    ApiError::Unavailable {
        code: "recording_store_unavailable",
        message: format!(
            "cannot read the recording store ({}): {e}; check KEYWARD_RECORDINGS and the store's reachability",
            storage.describe()
        ),
    }
}

/// The organization's sessions, the most recently active first.
pub async fn list(
    app: &AppState,
    caller: &Caller,
    filter: &SessionFilter,
) -> Result<Vec<SessionSummary>, ApiError> {
    if sees_all(caller)? {
        return Ok(app.store.list_sessions(caller.org()?.id, filter).await?);
    }
    let own = caller.actor();
    if filter.caller.as_ref().is_some_and(|c| *c != own) {
        return Ok(Vec::new());
    }
    let filter = SessionFilter {
        caller: Some(own),
        ..filter.clone()
    };
    Ok(app.store.list_sessions(caller.org()?.id, &filter).await?)
}

fn sees_all(caller: &Caller) -> Result<bool, ApiError> {
    Ok(caller.org()?.role.allows(Feature::Gateway, Level::Manage))
}

/// The session's heads (empty when the audit log has none), or 404 when the caller may not see
/// it: a session is as invisible to a reader who took no part in it as a missing one.
async fn heads(app: &AppState, caller: &Caller, id: &str) -> Result<Vec<SessionHeadRow>, ApiError> {
    checked_id(id)?;
    let heads = app.store.session_heads(caller.org()?.id, id).await?;
    if sees_all(caller)? {
        return Ok(heads);
    }
    let own = caller.actor();
    if heads.iter().any(|h| h.event.actor == own) {
        Ok(heads)
    } else {
        Err(ApiError::not_found("session"))
    }
}

fn summarize(id: &str, heads: &[SessionHeadRow]) -> SessionSummary {
    let mut callers: Vec<String> = heads.iter().map(|h| h.event.actor.clone()).collect();
    let mut routes: Vec<String> = heads.iter().filter_map(|h| h.route.clone()).collect();
    callers.sort();
    callers.dedup();
    routes.sort();
    routes.dedup();
    let errors = heads.iter().filter(|h| h.error.is_some()).count() as i64;
    SessionSummary {
        session_id: id.to_owned(),
        segments: heads.len() as i64 - errors,
        errors,
        first_ms: heads.iter().map(|h| h.event.at_ms).min().unwrap_or(0),
        last_ms: heads.iter().map(|h| h.event.at_ms).max().unwrap_or(0),
        callers,
        routes,
    }
}

/// One session: its heads from the audit log and the store's summary (not a verification).
pub async fn show(app: &AppState, caller: &Caller, id: &str) -> Result<SessionView, ApiError> {
    let heads = heads(app, caller, id).await?;
    if heads.is_empty() {
        return Err(ApiError::not_found("session"));
    }
    let stored = match org_storage(app, caller) {
        Err(ApiError::Unavailable { message, .. }) => Err(message),
        Err(e) => return Err(e),
        Ok(storage) => keyward_recording::session_info(&storage, id)
            .await
            .map_err(|e| match e {
                VerifyError::NoSuchSession { .. } => format!(
                    "the recording store ({}) has no segment of this session: it was deleted, or never written (see the heads' errors)",
                    storage.describe()
                ),
                other => other.to_string(),
            }),
    };
    Ok(SessionView {
        summary: summarize(id, &heads),
        heads,
        stored,
    })
}

/// The session's records (masked, as stored) after `after_seq`, at most `limit`, and whether
/// more follow. Not a verification: a damaged object is refused, an edited line is not noticed.
pub async fn records(
    app: &AppState,
    caller: &Caller,
    id: &str,
    after_seq: Option<u64>,
    limit: usize,
) -> Result<(Vec<Record>, bool), ApiError> {
    if heads(app, caller, id).await?.is_empty() {
        return Err(ApiError::not_found("session"));
    }
    let storage = org_storage(app, caller)?;
    let all = keyward_recording::read_session(&storage, id)
        .await
        .map_err(|e| match e {
            VerifyError::Storage(e @ (StorageError::Io { .. } | StorageError::ObjectStore { .. })) => {
                unreadable(&storage, e)
            }
            VerifyError::NoSuchSession { .. } => ApiError::Conflict {
                field: "id",
                message: "the audit log holds heads of this session but the recording store has no segment of it: it was deleted; run `keyward session verify`".into(),
            },
            other => ApiError::Conflict {
                field: "id",
                message: format!("the recording cannot be read: {other}; run `keyward session verify`"),
            },
        })?;
    let mut page: Vec<Record> = all
        .into_iter()
        .filter(|r| after_seq.is_none_or(|after| r.seq > after))
        .take(limit.clamp(1, MAX_RECORDS_PAGE) + 1)
        .collect();
    let more = page.len() > limit.clamp(1, MAX_RECORDS_PAGE);
    page.truncate(limit.clamp(1, MAX_RECORDS_PAGE));
    Ok((page, more))
}

/// Verifies the stored recording against the heads the audit log holds for it, after checking
/// that each of those audit events still carries its keyed hash (so the anchor itself was not
/// edited by someone without the master key).
pub async fn verify(app: &AppState, caller: &Caller, id: &str) -> Result<Verification, ApiError> {
    let heads = heads(app, caller, id).await?;
    let storage = org_storage(app, caller)?;
    if heads.is_empty() {
        let stored = storage
            .list_segments(id)
            .await
            .map_err(|e| unreadable(&storage, e))?;
        if stored.is_empty() {
            return Err(ApiError::not_found("session"));
        }
        return Ok(Verification::Broken {
            message: format!(
                "the recording store holds {} segment(s) of session {id} but the audit log has no gateway.request event for it: it was written there after the fact (or its audit events were lost), so nothing anchors it",
                stored.len()
            ),
            write_errors: 0,
        });
    }
    let write_errors = heads.iter().filter(|h| h.error.is_some()).count() as u64;
    let broken = |message: String| {
        Ok(Verification::Broken {
            message,
            write_errors,
        })
    };
    let key = app.master.audit_key();
    let mut expected = Vec::with_capacity(heads.len());
    for h in &heads {
        let seq = h.event.seq;
        if !key.is_keyed(&h.event) {
            return broken(format!(
                "audit event {seq}, which holds a head of this session, does not match its keyed hash: the audit log was edited; run `keyward audit verify`"
            ));
        }
        if h.error.is_some() {
            continue;
        }
        let (Some(segment), Some(lines), Some(head_hash), Some(bytes)) =
            (h.segment, h.lines, h.head_hash.clone(), h.bytes)
        else {
            return broken(format!(
                "audit event {seq} names this session without a complete head (segment, lines, head_hash, bytes) or an error"
            ));
        };
        expected.push(SegmentHead {
            session_id: id.to_owned(),
            segment,
            lines,
            head_hash,
            bytes,
        });
    }
    if expected.is_empty() {
        // Without one head, the library would check the chain unanchored; here that means the
        // store holds segments no audit event vouches for, or nothing was ever written.
        let stored = storage
            .list_segments(id)
            .await
            .map_err(|e| unreadable(&storage, e))?;
        return broken(if stored.is_empty() {
            format!(
                "nothing of session {id} was recorded: the recording of each of its {write_errors} request(s) failed to be written (the heads show why)"
            )
        } else {
            format!(
                "the recording store holds {} segment(s) of session {id} but the audit log has no head for any of them (only write errors): they were added after the fact",
                stored.len()
            )
        });
    }
    match keyward_recording::verify(&storage, id, &expected).await {
        Ok(report) => Ok(Verification::Intact {
            report,
            write_errors,
        }),
        // The store could not be read: nothing was checked, so no verdict either way.
        Err(VerifyError::Storage(
            e @ (StorageError::Io { .. } | StorageError::ObjectStore { .. }),
        )) => Err(unreadable(&storage, e)),
        Err(VerifyError::NoSuchSession { .. }) => broken(format!(
            "the audit log holds {} head(s) of session {id} but the recording store has no segment of it: it was deleted",
            expected.len()
        )),
        Err(e) => broken(e.to_string()),
    }
}
