//! One audit event per request (`gateway.request`) into the platform's hash-chained log, written
//! off the hot path: requests hand their event to a bounded channel once their response is done,
//! and one background task appends batches (up to [`MAX_BATCH`] events or [`MAX_WAIT`]).
//!
//! Choice when the channel is full (the store is slower than the traffic): the event is never
//! dropped — an audit log that silently loses requests is worse than memory held for a while.
//! The request is already answered, so a task awaits the send (backpressure on the writer, not on
//! callers), and `keyward_gateway_audit_queue_full_total` counts it.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::OrgId;
use keyward_store::audit::AuditKey;
use keyward_store::{NewAuditEvent, Store};
use serde_json::Value;
use tokio::sync::mpsc;

/// The event type of a gateway request.
pub const KIND: &str = "gateway.request";
/// The most events one append takes.
pub const MAX_BATCH: usize = 1000;
/// The longest an event waits for companions before its batch is written.
pub const MAX_WAIT: Duration = Duration::from_millis(20);
/// Events the channel holds before senders wait.
pub const QUEUE: usize = 16 * MAX_BATCH;

/// One request's event (see `pipeline::Gateway::finish` for `data`).
#[derive(Clone, Debug)]
pub struct GatewayEvent {
    pub at_ms: i64,
    pub org: Option<OrgId>,
    pub actor: String,
    pub data: Value,
}

impl GatewayEvent {
    fn into_new(self) -> NewAuditEvent {
        NewAuditEvent {
            at_ms: self.at_ms,
            kind: KIND.to_owned(),
            org_id: self.org,
            actor: self.actor,
            data: self.data,
        }
    }
}

/// Where requests hand their events.
#[derive(Clone)]
pub struct AuditSender {
    tx: mpsc::Sender<GatewayEvent>,
}

pub type AuditReceiver = mpsc::Receiver<GatewayEvent>;

pub fn channel(capacity: usize) -> (AuditSender, AuditReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (AuditSender { tx }, rx)
}

impl AuditSender {
    /// Hands over an event without waiting; a full channel defers the send to a task.
    pub fn send(&self, event: GatewayEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                metrics::counter!("keyward_gateway_audit_queue_full_total").increment(1);
                let tx = self.tx.clone();
                // Off a runtime (a body dropped at exit) there is nobody left to write it.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if tx.send(event).await.is_err() {
                            tracing::error!(
                                "a gateway audit event was lost: the audit writer has stopped"
                            );
                        }
                    });
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("a gateway audit event was lost: the audit writer has stopped");
            }
        }
    }
}

/// Writes batches until every sender is gone and the channel is drained. A failed append is
/// retried (logged each time) so that no event is skipped and the chain keeps its order.
pub async fn write_batches(store: Arc<dyn Store>, key: AuditKey, mut rx: AuditReceiver) {
    let mut batch: Vec<GatewayEvent> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Wait for the first event of a batch, then let MAX_WAIT pass before taking what has
        // arrived: one wake-up per batch, not one per request (each is a thread hand-off).
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        if batch.len() < MAX_BATCH {
            tokio::time::sleep(MAX_WAIT).await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    // Empty, or closed: the next `recv_many` returns 0 once all is drained.
                    Err(_) => break,
                }
            }
        }
        let events: Vec<NewAuditEvent> = batch.drain(..).map(GatewayEvent::into_new).collect();
        let mut delay = Duration::from_millis(100);
        loop {
            match store.append_audit(&key, &events).await {
                Ok(_) => {
                    metrics::counter!("keyward_audit_events_total", "type" => KIND)
                        .increment(events.len() as u64);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "writing gateway audit events failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use keyward_store::AuditFilter;
    use keyward_store::crypto::MasterKey;

    use super::*;

    #[tokio::test]
    async fn every_event_is_written_in_batches_and_the_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = keyward_store::open(None, dir.path()).await.unwrap();
        let master = MasterKey::load_or_create(None, dir.path()).unwrap();
        // A queue smaller than the burst: senders overflow into deferred sends, none is lost.
        let (sender, rx) = channel(16);
        let writer = tokio::spawn(write_batches(store.clone(), master.audit_key(), rx));
        for i in 0..1200 {
            sender.send(GatewayEvent {
                at_ms: 1_700_000_000_000 + i,
                org: None,
                actor: "anonymous".into(),
                data: serde_json::json!({"route": "r", "n": i}),
            });
        }
        // Deferred sends hold clones of the sender; the writer ends once they are all through.
        drop(sender);
        tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .unwrap()
            .unwrap();
        let events = store
            .audit_events(&AuditFilter {
                kind: Some(KIND.into()),
                limit: 5000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1200);
        let verification = keyward_server::audit::verify_chain(store.as_ref(), &master.audit_key())
            .await
            .unwrap();
        assert!(verification.broken.is_none(), "{}", verification.summary());
        assert_eq!(verification.checked, 1200);
    }
}
