//! The audit hash chain. Each event's hash covers its own fields and the previous event's hash,
//! so editing any event, or deleting one, breaks every link after it.
//!
//! The links are HMAC-SHA-256 under a key derived from the master key ([`AuditKey`]), which
//! never enters the database: someone who can write the database but does not hold the master
//! key cannot rewrite an event and recompute the links after it. Logs written before keyed
//! links have plain SHA-256 links; such an unkeyed prefix still verifies, because the first
//! keyed event commits to its last hash (its `prev_hash` is under the HMAC), but an unkeyed
//! event after a keyed one, or a log with no keyed event at all, does not. That first keyed
//! event must be the anchor written once at the upgrade ([`ANCHOR_KIND`]), so unkeyed events
//! slipped in front of ordinary keyed ones are not taken for an old log.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;

use crate::model::{AuditRow, NewAuditEvent};

/// The kind of the keyed event that anchors a log written before keyed links; its data says
/// how many unkeyed events it anchors (`unkeyed_events`). Only it may follow unkeyed events.
pub const ANCHOR_KIND: &str = "audit.chain_keyed";

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The label the audit key is derived under (HMAC-SHA-256 of it with the master key), so the
/// key differs from every other use of the master key.
const AUDIT_KEY_LABEL: &[u8] = b"keyward audit chain v1";

/// The key of the audit chain's links, derived from the master key.
#[derive(Clone)]
pub struct AuditKey {
    key: hmac::Key,
    /// The key's bytes, kept only so a master-key rotation can store them sealed.
    seed: std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>,
    master_id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("master_id", &self.master_id)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Derives the key from the master key's bytes; `master_id` names that master key in
    /// messages (it is not secret).
    pub(crate) fn derive(master: &[u8], master_id: String) -> Self {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, master), AUDIT_KEY_LABEL);
        Self::from_seed(tag.as_ref(), master_id)
    }

    /// The key from its bytes as [`AuditKey::seed`] gave them (stored sealed in the database).
    pub(crate) fn from_seed(seed: &[u8], master_id: String) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, seed),
            seed: std::sync::Arc::new(zeroize::Zeroizing::new(seed.to_vec())),
            master_id,
        }
    }

    /// The key's bytes, to be sealed under a new master key; never to be shown or logged.
    pub(crate) fn seed(&self) -> &[u8] {
        &self.seed
    }

    /// A keyed MAC of `label` and `parts` (length-prefixed), for records outside the chain
    /// such as the end of an export.
    pub fn mac(&self, label: &str, parts: &[&str]) -> String {
        let mut buf = Vec::new();
        for field in std::iter::once(label).chain(parts.iter().copied()) {
            buf.extend_from_slice(&(field.len() as u64).to_be_bytes());
            buf.extend_from_slice(field.as_bytes());
        }
        hex::encode(hmac::sign(&self.key, &buf).as_ref())
    }

    /// The id of the master key this key was derived from.
    pub fn master_id(&self) -> &str {
        &self.master_id
    }

    /// The keyed hash of one event.
    #[allow(clippy::too_many_arguments)]
    pub fn event_hash(
        &self,
        seq: i64,
        at_ms: i64,
        kind: &str,
        org_id: Option<&str>,
        actor: &str,
        data: &str,
        prev_hash: &str,
    ) -> String {
        let buf = encode(seq, at_ms, kind, org_id, actor, data, prev_hash);
        hex::encode(hmac::sign(&self.key, &buf).as_ref())
    }

    fn row_hash(&self, row: &AuditRow) -> String {
        let org = row.org_id.map(|o| o.to_string());
        self.event_hash(
            row.seq,
            row.at_ms,
            &row.kind,
            org.as_deref(),
            &row.actor,
            &row.data,
            &row.prev_hash,
        )
    }

    /// Whether the row's hash is its keyed hash.
    pub fn is_keyed(&self, row: &AuditRow) -> bool {
        verify_slices_are_equal(self.row_hash(row).as_bytes(), row.hash.as_bytes()).is_ok()
    }
}

/// A length-prefixed encoding of every field, so no two different events serialise to the
/// same bytes.
fn encode(
    seq: i64,
    at_ms: i64,
    kind: &str,
    org_id: Option<&str>,
    actor: &str,
    data: &str,
    prev_hash: &str,
) -> Vec<u8> {
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
    buf
}

/// The unkeyed (plain SHA-256) hash of one event, as logs written before keyed links carry.
pub fn unkeyed_event_hash(
    seq: i64,
    at_ms: i64,
    kind: &str,
    org_id: Option<&str>,
    actor: &str,
    data: &str,
    prev_hash: &str,
) -> String {
    let buf = encode(seq, at_ms, kind, org_id, actor, data, prev_hash);
    hex::encode(digest(&SHA256, &buf).as_ref())
}

/// Whether the row's hash is its unkeyed hash.
pub fn is_unkeyed(row: &AuditRow) -> bool {
    let org = row.org_id.map(|o| o.to_string());
    unkeyed_event_hash(
        row.seq,
        row.at_ms,
        &row.kind,
        org.as_deref(),
        &row.actor,
        &row.data,
        &row.prev_hash,
    ) == row.hash
}

/// Builds the stored row for `event`, chained after `(prev_seq, prev_hash)` under `key`.
pub fn chain(key: &AuditKey, event: &NewAuditEvent, prev: Option<(i64, String)>) -> AuditRow {
    let (prev_seq, prev_hash) = prev.unwrap_or((0, GENESIS_HASH.to_owned()));
    let seq = prev_seq + 1;
    let data = event.data.to_string();
    let org = event.org_id.map(|o| o.to_string());
    let hash = key.event_hash(
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
    #[error(
        "audit event {seq} was altered: its stored hash does not match its contents under the master key"
    )]
    Altered { seq: i64 },
    #[error(
        "audit event {seq} does not verify under master key {master_id}: it was altered, or the log was written with another master key"
    )]
    OtherKey { seq: i64, master_id: String },
    #[error(
        "audit event {seq} carries an unkeyed SHA-256 hash after keyed events: it was rewritten by someone without the master key"
    )]
    Unkeyed { seq: i64 },
    #[error(
        "audit events before {seq} carry unkeyed SHA-256 hashes, but event {seq} is not the anchor Keyward writes once when it first starts on a log written before keyed links: the unkeyed events were written after the log was keyed, by someone without the master key"
    )]
    Unanchored { seq: i64 },
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
    #[error("the audit log has {last_seq} events but no chain head: the head was deleted")]
    NoHead { last_seq: i64 },
    #[error(
        "no audit event is keyed with the master key (events 1 to {last_seq} carry unkeyed SHA-256 hashes, which anyone who can write the database can recompute): the log was written by a Keyward before keyed audit chains and no server has started on it since (start `keyward serve` once), or it was rewritten"
    )]
    NotKeyed { last_seq: i64 },
}

impl ChainBreak {
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Altered { seq }
            | ChainBreak::OtherKey { seq, .. }
            | ChainBreak::Unkeyed { seq }
            | ChainBreak::Unanchored { seq }
            | ChainBreak::Gap { seq, .. }
            | ChainBreak::Unlinked { seq } => *seq,
            ChainBreak::Truncated { last_seq, .. } => *last_seq + 1,
            ChainBreak::NoHead { last_seq } => *last_seq,
            ChainBreak::NotKeyed { .. } => 1,
        }
    }
}

/// Incremental verifier: feed rows in `seq` order.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    key: &'k AuditKey,
    prev_seq: i64,
    prev_hash: String,
    pub checked: u64,
    /// How many events, from the first, carry unkeyed hashes (written before keyed links).
    pub unkeyed: u64,
    /// The first keyed event after unkeyed ones: `(seq, at_ms)`, the moment the log was keyed.
    pub keyed_at: Option<(i64, i64)>,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(key: &'k AuditKey) -> Self {
        Self {
            key,
            prev_seq: 0,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
            unkeyed: 0,
            keyed_at: None,
        }
    }

    /// A verifier for a chain that starts after event `prev_seq` with hash `prev_hash` (an
    /// export that begins mid-chain).
    pub fn resume(key: &'k AuditKey, prev_seq: i64, prev_hash: String) -> Self {
        Self {
            prev_seq,
            prev_hash,
            ..Self::new(key)
        }
    }

    fn keyed_seen(&self) -> bool {
        self.checked > self.unkeyed
    }

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
        if self.key.is_keyed(row) {
            if !self.keyed_seen() && self.unkeyed > 0 {
                let anchors = serde_json::from_str::<serde_json::Value>(&row.data)
                    .ok()
                    .and_then(|d| d["unkeyed_events"].as_i64());
                if row.kind != ANCHOR_KIND || anchors != Some(row.seq - 1) {
                    return Err(ChainBreak::Unanchored { seq: row.seq });
                }
                self.keyed_at = Some((row.seq, row.at_ms));
            }
        } else if is_unkeyed(row) {
            if self.keyed_seen() {
                return Err(ChainBreak::Unkeyed { seq: row.seq });
            }
            self.unkeyed += 1;
        } else if self.keyed_seen() {
            return Err(ChainBreak::Altered { seq: row.seq });
        } else {
            return Err(ChainBreak::OtherKey {
                seq: row.seq,
                master_id: self.key.master_id.clone(),
            });
        }
        self.prev_seq = row.seq;
        self.prev_hash = row.hash.clone();
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the chain with the recorded head (catches deletion of the newest
    /// rows), and refuses a log that no keyed event anchors.
    pub fn finish(&self, head: Option<(i64, String)>) -> Result<(), ChainBreak> {
        match head {
            Some((head_seq, head_hash))
                if head_seq != self.prev_seq || head_hash != self.prev_hash =>
            {
                if head_seq > self.prev_seq {
                    return Err(ChainBreak::Truncated {
                        last_seq: self.prev_seq,
                        head_seq,
                    });
                }
                return Err(ChainBreak::Altered { seq: head_seq });
            }
            None if self.checked > 0 => {
                return Err(ChainBreak::NoHead {
                    last_seq: self.prev_seq,
                });
            }
            _ => {}
        }
        if self.checked > 0 && !self.keyed_seen() {
            return Err(ChainBreak::NotKeyed {
                last_seq: self.prev_seq,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::derive(&[7u8; 32], "k1".into())
    }

    fn event(i: usize) -> NewAuditEvent {
        NewAuditEvent {
            at_ms: i as i64,
            kind: "token.minted".into(),
            org_id: None,
            actor: "automation:x".into(),
            data: serde_json::json!({"i": i}),
        }
    }

    fn events(key: &AuditKey, n: usize) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        for i in 0..n {
            let prev = rows.last().map(|r| (r.seq, r.hash.clone()));
            rows.push(chain(key, &event(i), prev));
        }
        rows
    }

    /// Rewrites the hash (and later links) of every row from `from` with `hash`.
    fn relink(rows: &mut [AuditRow], from: usize, hash: impl Fn(&AuditRow) -> String) {
        for i in from..rows.len() {
            if i > 0 {
                rows[i].prev_hash = rows[i - 1].hash.clone();
            }
            rows[i].hash = hash(&rows[i]);
        }
    }

    fn unkeyed(row: &AuditRow) -> String {
        let org = row.org_id.map(|o| o.to_string());
        unkeyed_event_hash(
            row.seq,
            row.at_ms,
            &row.kind,
            org.as_deref(),
            &row.actor,
            &row.data,
            &row.prev_hash,
        )
    }

    fn head(rows: &[AuditRow]) -> Option<(i64, String)> {
        rows.last().map(|r| (r.seq, r.hash.clone()))
    }

    fn verify(
        key: &AuditKey,
        rows: &[AuditRow],
        head: Option<(i64, String)>,
    ) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new(key);
        for r in rows {
            v.check(r)?;
        }
        v.finish(head)?;
        Ok(v.checked)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let rows = events(&key(), 5);
        assert_eq!(verify(&key(), &rows, head(&rows)), Ok(5));
    }

    #[test]
    fn an_edit_names_the_edited_event() {
        let mut rows = events(&key(), 5);
        let head = head(&rows);
        rows[2].actor = "someone else".into();
        assert_eq!(
            verify(&key(), &rows, head),
            Err(ChainBreak::Altered { seq: 3 })
        );
    }

    #[test]
    fn a_recomputed_chain_does_not_verify_without_the_key() {
        let mut rows = events(&key(), 5);
        rows[2].actor = "someone else".into();
        relink(&mut rows, 2, unkeyed);
        assert_eq!(
            verify(&key(), &rows, head(&rows)),
            Err(ChainBreak::Unkeyed { seq: 3 })
        );
        let other = AuditKey::derive(&[8u8; 32], "k2".into());
        relink(&mut rows, 2, |r| other.row_hash(r));
        assert_eq!(
            verify(&key(), &rows, head(&rows)),
            Err(ChainBreak::Altered { seq: 3 })
        );
        // The whole log recomputed without the key anchors nothing.
        relink(&mut rows, 0, unkeyed);
        assert_eq!(
            verify(&key(), &rows, head(&rows)),
            Err(ChainBreak::NotKeyed { last_seq: 5 })
        );
        // Checked with another master key, the first event says so.
        let rows = events(&key(), 2);
        assert!(matches!(
            verify(&other, &rows, head(&rows)),
            Err(ChainBreak::OtherKey { seq: 1, .. })
        ));
    }

    #[test]
    fn an_unkeyed_prefix_verifies_once_a_keyed_event_anchors_it() {
        let mut rows = events(&key(), 5);
        relink(&mut rows, 0, unkeyed);
        rows.truncate(3);
        let prev = head(&rows);
        // An ordinary keyed event does not anchor them; the upgrade's anchor does.
        let mut ordinary = rows.clone();
        ordinary.push(chain(&key(), &event(9), prev.clone()));
        assert_eq!(
            verify(&key(), &ordinary, head(&ordinary)),
            Err(ChainBreak::Unanchored { seq: 4 })
        );
        let mut anchor = event(9);
        anchor.kind = ANCHOR_KIND.into();
        anchor.data = serde_json::json!({"unkeyed_events": 2});
        let mut miscounted = rows.clone();
        miscounted.push(chain(&key(), &anchor, prev.clone()));
        assert_eq!(
            verify(&key(), &miscounted, head(&miscounted)),
            Err(ChainBreak::Unanchored { seq: 4 })
        );
        anchor.data = serde_json::json!({"unkeyed_events": 3});
        rows.push(chain(&key(), &anchor, prev));
        let k = key();
        let mut v = ChainVerifier::new(&k);
        for r in &rows {
            v.check(r).unwrap();
        }
        v.finish(head(&rows)).unwrap();
        assert_eq!((v.checked, v.unkeyed, v.keyed_at), (4, 3, Some((4, 9))));
        // Rewriting the unkeyed prefix (and its links) breaks the keyed event's link.
        let mut forged = rows.clone();
        forged[1].actor = "someone else".into();
        relink(&mut forged[..3], 1, unkeyed);
        assert_eq!(
            verify(&key(), &forged, head(&rows)),
            Err(ChainBreak::Unlinked { seq: 4 })
        );
        forged[3].prev_hash = forged[2].hash.clone();
        assert!(matches!(
            verify(&key(), &forged, head(&rows)),
            Err(ChainBreak::OtherKey { seq: 4, .. })
        ));
    }

    #[test]
    fn a_deletion_names_the_event_after_the_gap() {
        let mut rows = events(&key(), 5);
        let head = head(&rows);
        rows.remove(1);
        assert_eq!(
            verify(&key(), &rows, head.clone()),
            Err(ChainBreak::Gap {
                seq: 3,
                expected_prev: 1
            })
        );
        rows.truncate(1);
        let err = verify(&key(), &rows, head).unwrap_err();
        assert!(matches!(
            err,
            ChainBreak::Truncated {
                last_seq: 1,
                head_seq: 5
            }
        ));
        assert_eq!(
            verify(&key(), &rows, None),
            Err(ChainBreak::NoHead { last_seq: 1 })
        );
    }
}
