//! Reading and verifying a stored session against the heads the audit log kept.
//!
//! Without heads, a changed byte (the zstd checksum or a line's hash), a deleted, inserted or
//! reordered line or segment in the middle (the chain), a segment moved from another session (the
//! genesis and the segment header) and a segment cut short inside (its missing `close` record) are
//! detected. Deleting whole trailing segments, or a rewrite that recomputes every hash, is only
//! detected against the heads from the audit log.

use serde_json::Value;

use crate::chain::{genesis, parse_line};
use crate::error::StorageError;
use crate::storage::{SegmentObject, Storage};
use crate::writer::SegmentHead;

/// One record as stored, with where it is.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Record {
    pub segment: u64,
    /// 1-based line number inside its segment.
    pub line: u64,
    pub seq: u64,
    pub at_ms: u64,
    pub kind: String,
    pub data: Value,
    pub prev: String,
    pub hash: String,
}

/// What a successful verification saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub session_id: String,
    /// The heads recomputed from the store, one per segment.
    pub segments: Vec<SegmentHead>,
    pub records: u64,
    /// Whether heads from the audit log were given: without them, deleting trailing segments or a
    /// rewrite with recomputed hashes cannot be detected.
    pub anchored: bool,
}

/// Why a session does not verify, naming the segment and line.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("session {session_id} has no segment in the store")]
    NoSuchSession { session_id: String },
    #[error(
        "segment {segment} is missing: {why}; it was deleted (or never written, if the audit log has no head for it)"
    )]
    MissingSegment { segment: u64, why: &'static str },
    #[error(
        "segment {segment}: the compressed object is damaged ({reason}): a byte was changed or the object was cut short"
    )]
    Corrupt { segment: u64, reason: String },
    #[error("segment {segment} line {line}: {defect}: the line was edited or cut")]
    BadLine {
        segment: u64,
        line: u64,
        defect: String,
    },
    #[error(
        "segment {segment} line {line} (seq {seq}): the stored hash {stored} does not match the line's bytes (hash {computed}): the line was edited"
    )]
    LineHash {
        segment: u64,
        line: u64,
        seq: u64,
        stored: String,
        computed: String,
    },
    #[error(
        "segment {segment} line {line}: its prev {found} is not the hash {expected} of the record before it: a line or segment before this point was deleted, inserted or reordered, or the segment comes from another session"
    )]
    ChainBroken {
        segment: u64,
        line: u64,
        expected: String,
        found: String,
    },
    #[error(
        "segment {segment} line {line}: seq {found} where {expected} was expected: a record was deleted or inserted"
    )]
    Sequence {
        segment: u64,
        line: u64,
        expected: u64,
        found: u64,
    },
    #[error(
        "segment {segment} line 1: the segment header says session {found_session} segment {found_segment}: the object was moved or renamed"
    )]
    Misplaced {
        segment: u64,
        found_session: String,
        found_segment: String,
    },
    #[error("segment {segment} ends after line {lines} without its close record: it was truncated")]
    MissingClose { segment: u64, lines: u64 },
    #[error(
        "segment {segment}: the audit log recorded {expected} {what}, the store has {found}: the segment was {meaning}"
    )]
    AuditMismatch {
        segment: u64,
        what: &'static str,
        expected: String,
        found: String,
        meaning: &'static str,
    },
    #[error(
        "segment {segment} is in the store but the audit log has no head for it: it was added after the fact (or its audit event was lost)"
    )]
    UnexpectedSegment { segment: u64 },
    #[error("an expected head is for session {found}, not {session_id}")]
    WrongHead { session_id: String, found: String },
}

async fn load(
    storage: &Storage,
    session_id: &str,
) -> Result<Vec<(SegmentObject, Vec<u8>)>, VerifyError> {
    let segments = storage.list_segments(session_id).await?;
    let mut out = Vec::with_capacity(segments.len());
    for s in segments {
        let bytes = storage.get_segment(session_id, s.segment).await?;
        out.push((s, bytes));
    }
    Ok(out)
}

fn decode(segment: u64, bytes: &[u8]) -> Result<String, VerifyError> {
    let raw = zstd::stream::decode_all(bytes).map_err(|e| VerifyError::Corrupt {
        segment,
        reason: e.to_string(),
    })?;
    String::from_utf8(raw).map_err(|e| VerifyError::Corrupt {
        segment,
        reason: format!("not UTF-8 text: {e}"),
    })
}

fn records_of(segment: u64, text: &str) -> Result<Vec<(Record, String)>, VerifyError> {
    let mut out = Vec::new();
    // Split on '\n' only: `lines()` would drop a '\r' an editor added, and those bytes count.
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(out);
    }
    for (i, line) in body.split('\n').enumerate() {
        let line_no = i as u64 + 1;
        let parsed = parse_line(line).map_err(|d| VerifyError::BadLine {
            segment,
            line: line_no,
            defect: d.to_string(),
        })?;
        out.push((
            Record {
                segment,
                line: line_no,
                seq: parsed.seq,
                at_ms: parsed.at_ms,
                kind: parsed.kind,
                data: parsed.data,
                prev: parsed.prev,
                hash: parsed.stored_hash,
            },
            parsed.computed_hash,
        ));
    }
    Ok(out)
}

/// The records of one stored segment object, parsed but not verified.
pub(crate) fn decode_records(segment: u64, bytes: &[u8]) -> Result<Vec<Record>, VerifyError> {
    let text = decode(segment, bytes)?;
    Ok(records_of(segment, &text)?
        .into_iter()
        .map(|(r, _)| r)
        .collect())
}

/// Every record of a session in order, parsed but not verified (run [`verify`] for that).
pub async fn read_session(storage: &Storage, session_id: &str) -> Result<Vec<Record>, VerifyError> {
    let mut out = Vec::new();
    for (object, bytes) in load(storage, session_id).await? {
        let text = decode(object.segment, &bytes)?;
        out.extend(
            records_of(object.segment, &text)?
                .into_iter()
                .map(|(r, _)| r),
        );
    }
    if out.is_empty() {
        return Err(VerifyError::NoSuchSession {
            session_id: session_id.to_owned(),
        });
    }
    Ok(out)
}

/// Verifies a session's chain and, given the heads the audit log kept for it, that nothing was
/// deleted, truncated or added. Pass every head the audit log has for the session.
pub async fn verify(
    storage: &Storage,
    session_id: &str,
    expected_heads: &[SegmentHead],
) -> Result<VerifyReport, VerifyError> {
    if let Some(h) = expected_heads.iter().find(|h| h.session_id != session_id) {
        return Err(VerifyError::WrongHead {
            session_id: session_id.to_owned(),
            found: h.session_id.clone(),
        });
    }
    let loaded = load(storage, session_id).await?;
    if loaded.is_empty() && expected_heads.is_empty() {
        return Err(VerifyError::NoSuchSession {
            session_id: session_id.to_owned(),
        });
    }
    for (i, (object, _)) in loaded.iter().enumerate() {
        if object.segment != i as u64 {
            return Err(VerifyError::MissingSegment {
                segment: i as u64,
                why: "the segment numbers in the store skip it",
            });
        }
    }
    let mut heads: Vec<&SegmentHead> = expected_heads.iter().collect();
    heads.sort_by_key(|h| h.segment);
    for h in &heads {
        if h.segment >= loaded.len() as u64 {
            return Err(VerifyError::MissingSegment {
                segment: loaded.len() as u64,
                why: "the audit log has a head for it (or a later one) but the store does not",
            });
        }
    }

    let mut prev = genesis(session_id);
    let mut seq = 0u64;
    let mut computed_heads = Vec::with_capacity(loaded.len());
    let mut total = 0u64;
    for (object, bytes) in &loaded {
        let segment = object.segment;
        let text = decode(segment, bytes)?;
        let records = records_of(segment, &text)?;
        for (record, computed) in &records {
            if record.hash != *computed {
                return Err(VerifyError::LineHash {
                    segment,
                    line: record.line,
                    seq: record.seq,
                    stored: record.hash.clone(),
                    computed: computed.clone(),
                });
            }
            if record.line == 1 {
                check_header(session_id, segment, record)?;
            }
            if record.prev != prev {
                return Err(VerifyError::ChainBroken {
                    segment,
                    line: record.line,
                    expected: prev,
                    found: record.prev.clone(),
                });
            }
            if record.seq != seq {
                return Err(VerifyError::Sequence {
                    segment,
                    line: record.line,
                    expected: seq,
                    found: record.seq,
                });
            }
            prev = record.hash.clone();
            seq += 1;
        }
        let lines = records.len() as u64;
        if records.last().map(|(r, _)| r.kind.as_str()) != Some("close") {
            return Err(VerifyError::MissingClose { segment, lines });
        }
        total += lines;
        computed_heads.push(SegmentHead {
            session_id: session_id.to_owned(),
            segment,
            lines,
            head_hash: prev.clone(),
            bytes: bytes.len() as u64,
        });
    }

    for found in &computed_heads {
        let Some(expected) = heads.iter().find(|h| h.segment == found.segment) else {
            if heads.is_empty() {
                continue;
            }
            return Err(VerifyError::UnexpectedSegment {
                segment: found.segment,
            });
        };
        if expected.lines != found.lines {
            return Err(VerifyError::AuditMismatch {
                segment: found.segment,
                what: "lines",
                expected: expected.lines.to_string(),
                found: found.lines.to_string(),
                meaning: if found.lines < expected.lines {
                    "truncated"
                } else {
                    "extended"
                },
            });
        }
        if expected.head_hash != found.head_hash {
            return Err(VerifyError::AuditMismatch {
                segment: found.segment,
                what: "as head hash",
                expected: expected.head_hash.clone(),
                found: found.head_hash.clone(),
                meaning: "rewritten (every hash recomputed)",
            });
        }
    }
    Ok(VerifyReport {
        session_id: session_id.to_owned(),
        segments: computed_heads,
        records: total,
        anchored: !heads.is_empty(),
    })
}

fn check_header(session_id: &str, segment: u64, record: &Record) -> Result<(), VerifyError> {
    let found_session = record.data.get("session_id").and_then(Value::as_str);
    let found_segment = record.data.get("segment").and_then(Value::as_u64);
    if record.kind != "segment"
        || found_session != Some(session_id)
        || found_segment != Some(segment)
    {
        return Err(VerifyError::Misplaced {
            segment,
            found_session: found_session.unwrap_or("<none>").to_owned(),
            found_segment: found_segment.map_or("<none>".to_owned(), |s| s.to_string()),
        });
    }
    Ok(())
}
