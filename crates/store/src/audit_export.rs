//! Audit exports as JSON lines, and their offline verification.
//!
//! Each line is one event with every field its hash covers, so the chain can be checked from
//! the file alone (given the audit key). An export may start mid-chain: it verifies from its
//! first event's `prev_hash`. The last line is an end record whose MAC (under the audit key)
//! covers the first `prev_hash`, the last hash and the count, so dropping lines at either end
//! is caught as well as an edit, a deletion or a reordering in the middle.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditKey, ChainBreak, ChainVerifier};
use crate::model::AuditRow;

/// The label of the end record's MAC, apart from every other use of the audit key.
const END_LABEL: &str = "keyward audit export end v1";

/// One exported event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExportedEvent {
    pub seq: i64,
    /// RFC 3339, for people and SIEMs; `at_ms` is what the hash covers.
    pub at: String,
    pub at_ms: i64,
    pub kind: String,
    pub org_id: Option<String>,
    pub actor: String,
    pub data: serde_json::Value,
    /// The data exactly as hashed, only when `data` would not serialise back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_text: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl ExportedEvent {
    pub fn from_row(row: &AuditRow, at: String) -> Self {
        let parsed = serde_json::from_str::<serde_json::Value>(&row.data).ok();
        let canonical = parsed.as_ref().map(serde_json::Value::to_string);
        let (data, data_text) = match parsed {
            Some(v) if canonical.as_deref() == Some(row.data.as_str()) => (v, None),
            _ => (serde_json::Value::Null, Some(row.data.clone())),
        };
        Self {
            seq: row.seq,
            at,
            at_ms: row.at_ms,
            kind: row.kind.clone(),
            org_id: row.org_id.map(|o| o.to_string()),
            actor: row.actor.clone(),
            data,
            data_text,
            prev_hash: row.prev_hash.clone(),
            hash: row.hash.clone(),
        }
    }

    fn to_row(&self) -> Result<AuditRow, String> {
        let org_id = match &self.org_id {
            None => None,
            Some(text) => Some(
                text.parse::<keyward_core::OrgId>()
                    .map_err(|_| format!("org_id {text:?} is not an id"))?,
            ),
        };
        Ok(AuditRow {
            seq: self.seq,
            at_ms: self.at_ms,
            kind: self.kind.clone(),
            org_id,
            actor: self.actor.clone(),
            data: self
                .data_text
                .clone()
                .unwrap_or_else(|| self.data.to_string()),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        })
    }
}

/// The last line of an export.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExportEnd {
    pub events: u64,
    pub first_prev_hash: String,
    pub last_seq: i64,
    pub last_hash: String,
    pub mac: String,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    export_end: ExportEnd,
}

/// Builds an export's lines one event at a time (constant memory).
pub struct ExportWriter<'k> {
    key: &'k AuditKey,
    events: u64,
    first_prev_hash: Option<String>,
    last: Option<(i64, String)>,
}

impl<'k> ExportWriter<'k> {
    pub fn new(key: &'k AuditKey) -> Self {
        Self {
            key,
            events: 0,
            first_prev_hash: None,
            last: None,
        }
    }

    /// The line (without newline) for `event`.
    pub fn line(&mut self, event: &ExportedEvent) -> Result<String, serde_json::Error> {
        if self.first_prev_hash.is_none() {
            self.first_prev_hash = Some(event.prev_hash.clone());
        }
        self.events += 1;
        self.last = Some((event.seq, event.hash.clone()));
        serde_json::to_string(event)
    }

    /// The end record's line.
    pub fn end(self) -> Result<String, serde_json::Error> {
        let first = self.first_prev_hash.unwrap_or_default();
        let (last_seq, last_hash) = self.last.unwrap_or((0, String::new()));
        let mac = end_mac(self.key, self.events, &first, last_seq, &last_hash);
        serde_json::to_string(&EndLine {
            export_end: ExportEnd {
                events: self.events,
                first_prev_hash: first,
                last_seq,
                last_hash,
                mac,
            },
        })
    }
}

fn end_mac(key: &AuditKey, events: u64, first: &str, last_seq: i64, last_hash: &str) -> String {
    key.mac(
        END_LABEL,
        &[&events.to_string(), first, &last_seq.to_string(), last_hash],
    )
}

/// Why an export does not verify, naming the line (1-based).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportBreak {
    #[error("line {line}: not an exported audit event ({reason})")]
    Malformed { line: u64, reason: String },
    #[error("line {line}: {source}")]
    Chain { line: u64, source: ChainBreak },
    #[error(
        "line {line}: the end record does not match the events before it ({what}): lines were deleted, added or edited"
    )]
    End { line: u64, what: String },
    #[error(
        "the export has no end record after line {line}: it was cut short (its last lines were deleted)"
    )]
    NoEnd { line: u64 },
    #[error("line {line}: there are lines after the end record")]
    AfterEnd { line: u64 },
    #[error("cannot read the export: {0}")]
    Read(String),
}

impl ExportBreak {
    pub fn line(&self) -> Option<u64> {
        match self {
            ExportBreak::Malformed { line, .. }
            | ExportBreak::Chain { line, .. }
            | ExportBreak::End { line, .. }
            | ExportBreak::NoEnd { line }
            | ExportBreak::AfterEnd { line } => Some(*line),
            ExportBreak::Read(_) => None,
        }
    }
}

/// What a verified export holds.
#[derive(Debug, PartialEq, Eq)]
pub struct ExportSummary {
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
}

/// Verifies an export line by line (constant memory) under `key`.
pub fn verify_export(reader: impl BufRead, key: &AuditKey) -> Result<ExportSummary, ExportBreak> {
    let mut verifier: Option<ChainVerifier<'_>> = None;
    let mut first: Option<(i64, String)> = None;
    let mut last: Option<(i64, String)> = None;
    let mut events = 0u64;
    let mut ended = false;
    let mut line_no = 0u64;
    for line in reader.lines() {
        let line = line.map_err(|e| ExportBreak::Read(e.to_string()))?;
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        if ended {
            return Err(ExportBreak::AfterEnd { line: line_no });
        }
        if let Ok(end) = serde_json::from_str::<EndLine>(&line) {
            let end = end.export_end;
            let first_prev = first.as_ref().map(|f| f.1.clone()).unwrap_or_default();
            let (last_seq, last_hash) = last.clone().unwrap_or((0, String::new()));
            let expected = end_mac(key, events, &first_prev, last_seq, &last_hash);
            let what = if end.events != events {
                Some(format!(
                    "it counts {} events, the file has {events}",
                    end.events
                ))
            } else if end.last_seq != last_seq || end.last_hash != last_hash {
                Some(format!(
                    "it ends at event {}, the file at event {last_seq}",
                    end.last_seq
                ))
            } else if end.first_prev_hash != first_prev {
                Some("the first event's prev_hash differs".to_owned())
            } else if aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                end.mac.as_bytes(),
            )
            .is_err()
            {
                Some("its MAC does not verify under the audit key".to_owned())
            } else {
                None
            };
            if let Some(what) = what {
                return Err(ExportBreak::End {
                    line: line_no,
                    what,
                });
            }
            ended = true;
            continue;
        }
        let event: ExportedEvent =
            serde_json::from_str(&line).map_err(|e| ExportBreak::Malformed {
                line: line_no,
                reason: e.to_string(),
            })?;
        let row = event.to_row().map_err(|reason| ExportBreak::Malformed {
            line: line_no,
            reason,
        })?;
        let v = verifier.get_or_insert_with(|| {
            first = Some((row.seq, row.prev_hash.clone()));
            ChainVerifier::resume(key, row.seq - 1, row.prev_hash.clone())
        });
        v.check(&row).map_err(|source| ExportBreak::Chain {
            line: line_no,
            source,
        })?;
        events += 1;
        last = Some((row.seq, row.hash.clone()));
    }
    if !ended {
        return Err(ExportBreak::NoEnd { line: line_no });
    }
    Ok(ExportSummary {
        events,
        first_seq: first.map(|f| f.0),
        last_seq: last.map(|l| l.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain;
    use crate::model::NewAuditEvent;

    fn key() -> AuditKey {
        AuditKey::derive(&[9u8; 32], "k".into())
    }

    /// Events 1..=n, exported from event `from`.
    fn export(key: &AuditKey, n: usize, from: i64) -> Vec<String> {
        let mut prev = None;
        let mut writer = ExportWriter::new(key);
        let mut lines = Vec::new();
        for i in 0..n {
            let row = chain(
                key,
                &NewAuditEvent {
                    at_ms: 1_000 + i as i64,
                    kind: "token.minted".into(),
                    org_id: None,
                    actor: "automation:x".into(),
                    data: serde_json::json!({"i": i, "name": "a\"b"}),
                },
                prev.take(),
            );
            prev = Some((row.seq, row.hash.clone()));
            if row.seq >= from {
                let event = ExportedEvent::from_row(&row, "t".into());
                assert!(event.data_text.is_none());
                lines.push(writer.line(&event).unwrap());
            }
        }
        lines.push(writer.end().unwrap());
        lines
    }

    fn check(lines: &[String]) -> Result<ExportSummary, ExportBreak> {
        verify_export(lines.join("\n").as_bytes(), &key())
    }

    #[test]
    fn a_whole_and_a_mid_chain_export_verify() {
        let all = check(&export(&key(), 5, 1)).unwrap();
        assert_eq!(
            (all.events, all.first_seq, all.last_seq),
            (5, Some(1), Some(5))
        );
        let tail = check(&export(&key(), 5, 3)).unwrap();
        assert_eq!((tail.events, tail.first_seq), (3, Some(3)));
    }

    #[test]
    fn an_edit_a_deletion_and_a_reordering_name_the_line() {
        let lines = export(&key(), 5, 1);
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("automation:x", "automation:y");
        let err = check(&edited).unwrap_err();
        assert_eq!(err.line(), Some(3), "{err}");
        assert!(err.to_string().contains("altered"), "{err}");

        let mut deleted = lines.clone();
        deleted.remove(1);
        let err = check(&deleted).unwrap_err();
        assert_eq!(err.line(), Some(2), "{err}");

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&swapped).unwrap_err().line(), Some(2));

        // The first or last event dropped: only the end record can tell.
        let mut head_cut = lines.clone();
        head_cut.remove(0);
        assert!(matches!(
            check(&head_cut),
            Err(ExportBreak::End { line: 5, .. })
        ));
        let mut tail_cut = lines.clone();
        tail_cut.remove(4);
        assert!(matches!(
            check(&tail_cut),
            Err(ExportBreak::End { line: 5, .. })
        ));
        let mut no_end = lines.clone();
        no_end.pop();
        assert!(matches!(check(&no_end), Err(ExportBreak::NoEnd { .. })));
        // An end record rewritten to match, without the key, does not verify.
        let mut forged = lines.clone();
        forged.remove(4);
        let end: EndLine = serde_json::from_str(&lines[5]).unwrap();
        let mut end = end.export_end;
        end.events = 4;
        end.last_seq = 4;
        end.last_hash = serde_json::from_str::<ExportedEvent>(&lines[3])
            .unwrap()
            .hash;
        forged[4] = serde_json::to_string(&EndLine { export_end: end }).unwrap();
        let err = check(&forged).unwrap_err();
        assert!(err.to_string().contains("MAC"), "{err}");
    }

    #[test]
    fn another_key_does_not_verify() {
        let lines = export(&key(), 3, 1);
        let other = AuditKey::derive(&[1u8; 32], "o".into());
        let err = verify_export(lines.join("\n").as_bytes(), &other).unwrap_err();
        assert_eq!(err.line(), Some(1), "{err}");
    }
}
