//! A session's summary for `keyward session list|show`: the listing's figures plus caller, route
//! and times from its first and last segments (two reads, whatever the session's length).

use serde_json::Value;

use crate::storage::Storage;
use crate::verify::{VerifyError, decode_records};

/// What a session list shows of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub segments: u64,
    /// Compressed bytes of all segments.
    pub bytes: u64,
    /// `at_ms` of the first record of the first segment and of the last record of the last one.
    pub first_at_ms: u64,
    pub last_at_ms: u64,
    /// From the first segment's header.
    pub caller: Option<String>,
    pub route: Option<String>,
}

/// Summarizes one session. Not a verification: run [`crate::verify`] for that.
pub async fn session_info(storage: &Storage, session_id: &str) -> Result<SessionInfo, VerifyError> {
    let segments = storage.list_segments(session_id).await?;
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(VerifyError::NoSuchSession {
            session_id: session_id.to_owned(),
        });
    };
    let head = decode_records(
        first.segment,
        &storage.get_segment(session_id, first.segment).await?,
    )?;
    let tail = if last.segment == first.segment {
        head.clone()
    } else {
        decode_records(
            last.segment,
            &storage.get_segment(session_id, last.segment).await?,
        )?
    };
    let header = head.first().map(|r| &r.data);
    let text = |key: &str| {
        header
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(SessionInfo {
        session_id: session_id.to_owned(),
        segments: segments.len() as u64,
        bytes: segments.iter().map(|s| s.bytes).sum(),
        first_at_ms: head.first().map_or(0, |r| r.at_ms),
        last_at_ms: tail.last().map_or(0, |r| r.at_ms),
        caller: text("caller"),
        route: text("route"),
    })
}
