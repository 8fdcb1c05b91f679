//! The audit hash chain. Each event's hash covers its own fields and the previous event's hash,
//! so editing any event, or deleting one, breaks every link after it.

use aws_lc_rs::digest::{SHA256, digest};

use crate::model::{AuditRow, NewAuditEvent};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of one event, over a length-prefixed encoding of every field so no two different events
/// can serialise to the same bytes.
pub fn event_hash(
    seq: i64,
    at_ms: i64,
    kind: &str,
    org_id: Option<&str>,
    actor: &str,
    data: &str,
    prev_hash: &str,
) -> String {
    let mut buf = Vec::with_capacity(256 + data.len());
    for field in [
        seq.to_string().as_str(),
        at_ms.to_string().as_str(),
        kind,
        org_id.unwrap_or(""),
        actor,
        data,
        prev_hash,
    ] {
        buf.extend_from_slice(&(field.len() as u64).to_be_bytes());
        buf.extend_from_slice(field.as_bytes());
    }
    hex::encode(digest(&SHA256, &buf).as_ref())
}

/// Builds the stored row for `event`, chained after `(prev_seq, prev_hash)`.
pub fn chain(event: &NewAuditEvent, prev: Option<(i64, String)>) -> AuditRow {
    let (prev_seq, prev_hash) = prev.unwrap_or((0, GENESIS_HASH.to_owned()));
    let seq = prev_seq + 1;
    let data = event.data.to_string();
    let org = event.org_id.map(|o| o.to_string());
    let hash = event_hash(
        seq,
        event.at_ms,
        &event.kind,
        org.as_deref(),
        &event.actor,
        &data,
        &prev_hash,
    );
    AuditRow {
        seq,
        at_ms: event.at_ms,
        kind: event.kind.clone(),
        org_id: event.org_id,
        actor: event.actor.clone(),
        data,
        prev_hash,
        hash,
    }
}

/// Why a chain does not verify, naming the first broken event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("audit event {seq} was altered: its stored hash does not match its contents")]
    Altered { seq: i64 },
    #[error(
        "audit event {seq} does not follow event {expected_prev}: events were deleted or reordered"
    )]
    Gap { seq: i64, expected_prev: i64 },
    #[error("audit event {seq} does not link to the hash of the event before it")]
    Unlinked { seq: i64 },
    #[error(
        "the audit log ends at event {last_seq}, but the chain head says {head_seq}: the newest events were deleted"
    )]
    Truncated { last_seq: i64, head_seq: i64 },
}

impl ChainBreak {
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Altered { seq }
            | ChainBreak::Gap { seq, .. }
            | ChainBreak::Unlinked { seq } => *seq,
            ChainBreak::Truncated { last_seq, .. } => *last_seq + 1,
        }
    }
}

/// Incremental verifier: feed rows in `seq` order.
#[derive(Debug)]
pub struct ChainVerifier {
    prev_seq: i64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev_seq: 0,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, row: &AuditRow) -> Result<(), ChainBreak> {
        if row.seq != self.prev_seq + 1 {
            return Err(ChainBreak::Gap {
                seq: row.seq,
                expected_prev: self.prev_seq,
            });
        }
        if row.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked { seq: row.seq });
        }
        let org = row.org_id.map(|o| o.to_string());
        let expected = event_hash(
            row.seq,
            row.at_ms,
            &row.kind,
            org.as_deref(),
            &row.actor,
            &row.data,
            &row.prev_hash,
        );
        if expected != row.hash {
            return Err(ChainBreak::Altered { seq: row.seq });
        }
        self.prev_seq = row.seq;
        self.prev_hash = row.hash.clone();
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the chain with the recorded head (catches deletion of the newest rows).
    pub fn finish(&self, head: Option<(i64, String)>) -> Result<(), ChainBreak> {
        match head {
            Some((head_seq, head_hash))
                if head_seq != self.prev_seq || head_hash != self.prev_hash =>
            {
                if head_seq > self.prev_seq {
                    Err(ChainBreak::Truncated {
                        last_seq: self.prev_seq,
                        head_seq,
                    })
                } else {
                    Err(ChainBreak::Altered { seq: head_seq })
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        for i in 0..n {
            let prev = rows.last().map(|r| (r.seq, r.hash.clone()));
            rows.push(chain(
                &NewAuditEvent {
                    at_ms: i as i64,
                    kind: "token.minted".into(),
                    org_id: None,
                    actor: "automation:x".into(),
                    data: serde_json::json!({"i": i}),
                },
                prev,
            ));
        }
        rows
    }

    fn verify(rows: &[AuditRow], head: Option<(i64, String)>) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for r in rows {
            v.check(r)?;
        }
        v.finish(head)?;
        Ok(v.checked)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let rows = events(5);
        let head = rows.last().map(|r| (r.seq, r.hash.clone()));
        assert_eq!(verify(&rows, head), Ok(5));
    }

    #[test]
    fn an_edit_names_the_edited_event() {
        let mut rows = events(5);
        let head = rows.last().map(|r| (r.seq, r.hash.clone()));
        rows[2].actor = "someone else".into();
        assert_eq!(verify(&rows, head), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn a_deletion_names_the_event_after_the_gap() {
        let mut rows = events(5);
        let head = rows.last().map(|r| (r.seq, r.hash.clone()));
        rows.remove(1);
        assert_eq!(
            verify(&rows, head.clone()),
            Err(ChainBreak::Gap {
                seq: 3,
                expected_prev: 1
            })
        );
        rows.truncate(1);
        let err = verify(&rows, head).unwrap_err();
        assert!(matches!(
            err,
            ChainBreak::Truncated {
                last_seq: 1,
                head_seq: 5
            }
        ));
    }
}
