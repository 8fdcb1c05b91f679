//! Recording audit events. Every event goes through [`Auditor::record`], which appends it to the
//! store's hash chain; an event that cannot be recorded fails the action it describes.

use std::sync::Arc;

use keyward_core::OrgId;
use keyward_store::audit::{AuditKey, ChainBreak, ChainVerifier};
use keyward_store::{AuditFilter, NewAuditEvent, Store, StoreError};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;

/// Event types, as they appear in the `type` field and the `?type=` filter.
pub mod kind {
    pub const BOOTSTRAP_COMPLETED: &str = "bootstrap.completed";
    pub const SETUP_LINK_ISSUED: &str = "setup.link_issued";
    pub const SETUP_FAILED: &str = "setup.failed";
    pub const LOGIN: &str = "auth.login";
    pub const LOGIN_FAILED: &str = "auth.login_failed";
    pub const LOGOUT: &str = "auth.logout";
    pub const PASSWORD_SET: &str = "auth.password_set";
    pub const TOTP_ENABLED: &str = "auth.totp_enabled";
    pub const TOTP_DISABLED: &str = "auth.totp_disabled";
    pub const USER_PROVISIONED: &str = "auth.user_provisioned";
    pub const DEVICE_APPROVED: &str = "device.approved";
    pub const DEVICE_DENIED: &str = "device.denied";
    pub const DEVICE_TOKEN_ISSUED: &str = "device.token_issued";
    pub const INVITATION_CREATED: &str = "invitation.created";
    pub const INVITATION_ACCEPTED: &str = "invitation.accepted";
    pub const INVITATION_REVOKED: &str = "invitation.revoked";
    pub const ORG_CREATED: &str = "org.created";
    pub const AUTOMATION_CREATED: &str = "automation.created";
    pub const AUTOMATION_UPDATED: &str = "automation.updated";
    pub const AUTOMATION_DELETED: &str = "automation.deleted";
    pub const AUTOMATION_REDEPLOYED: &str = "automation.redeployed";
    pub const AUTOMATION_TOKEN_CREATED: &str = "automation_token.created";
    pub const AUTOMATION_TOKEN_REVOKED: &str = "automation_token.revoked";
    pub const PERSONAL_TOKEN_CREATED: &str = "personal_token.created";
    pub const PERSONAL_TOKEN_REVOKED: &str = "personal_token.revoked";
    pub const TOKEN_MINTED: &str = "workload_token.minted";
    pub const KICKOFF_PLANNED: &str = "kickoff.planned";
    pub const WI_CONFIG_CREATED: &str = "workload_identity_config.created";
    pub const WI_CONFIG_UPDATED: &str = "workload_identity_config.updated";
    pub const WI_CONFIG_DELETED: &str = "workload_identity_config.deleted";
    pub const LLM_CONNECTION_CREATED: &str = "llm_connection.created";
    pub const LLM_CONNECTION_UPDATED: &str = "llm_connection.updated";
    pub const LLM_CONNECTION_DELETED: &str = "llm_connection.deleted";
    pub const GATEWAY_ROUTE_CREATED: &str = "gateway_route.created";
    pub const GATEWAY_ROUTE_UPDATED: &str = "gateway_route.updated";
    pub const GATEWAY_ROUTE_DELETED: &str = "gateway_route.deleted";
    // Just-in-time approval (SPEC §9): every transition of a request.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    pub const APPROVAL_DENIED: &str = "approval.denied";
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    pub const APPROVAL_REVOKED: &str = "approval.revoked";
    pub const APPROVAL_EXECUTED: &str = "approval.executed";
    pub const SECRET_PROVIDER_CREATED: &str = "secret_provider.created";
    pub const SECRET_PROVIDER_UPDATED: &str = "secret_provider.updated";
    pub const SECRET_PROVIDER_DELETED: &str = "secret_provider.deleted";
    pub const ENV_VAR_CREATED: &str = "environment_variable.created";
    pub const ENV_VAR_UPDATED: &str = "environment_variable.updated";
    pub const ENV_VAR_DELETED: &str = "environment_variable.deleted";
    pub const ENV_VARS_ASSIGNED: &str = "environment_variables.assigned";
    pub const KEY_PUBLISHED: &str = "signing_key.published";
    pub const KEY_ACTIVATED: &str = "signing_key.activated";
    pub const KEY_SUPERSEDED: &str = "signing_key.superseded";
    pub const KEY_RETIRED: &str = "signing_key.retired";
    // RBAC (SPEC §8).
    pub const ROLE_CREATED: &str = "role.created";
    pub const ROLE_UPDATED: &str = "role.updated";
    pub const ROLE_DELETED: &str = "role.deleted";
    pub const MEMBER_ADDED: &str = "member.added";
    pub const MEMBER_ROLE_CHANGED: &str = "member.role_changed";
    pub const MEMBER_REMOVED: &str = "member.removed";
    pub const AUTOMATION_PERMISSIONS_SET: &str = "automation.permissions_set";
    pub const ENV_VAR_ACCESS_SET: &str = "environment_variable.access_set";
    pub const LLM_CONNECTION_ACCESS_SET: &str = "llm_connection.access_set";
    /// The first keyed event after events written before keyed links (see [`super::seal_unkeyed`]).
    pub const CHAIN_KEYED: &str = keyward_store::audit::ANCHOR_KIND;
}

/// Events waiting for the writer, each with the caller to tell once it is stored.
/// A failed batch, told to each of its callers: what went wrong, and whether the database was
/// unavailable (so each caller answers 503, not 500).
type BatchFailure = (String, bool);

type Pending = (NewAuditEvent, oneshot::Sender<Result<(), BatchFailure>>);

/// The most events one transaction takes.
const MAX_BATCH: usize = 256;

/// Appends audit events. Concurrent callers are committed together (group commit): one
/// transaction per burst instead of one per event, and each caller still waits until its own
/// event is stored.
#[derive(Clone)]
pub struct Auditor {
    queue: mpsc::Sender<Pending>,
    /// Stamps each event; the server's clock, so a shifted test clock shifts the log too.
    clock: Clock,
}

impl Auditor {
    /// Starts the writer task with the wall clock; needs a Tokio runtime. `key` keys the
    /// chain's links.
    pub fn new(store: Arc<dyn Store>, key: AuditKey) -> Self {
        Self::with_clock(store, key, Clock::system())
    }

    /// [`Auditor::new`] stamping events with `clock` (the server's).
    pub fn with_clock(store: Arc<dyn Store>, key: AuditKey, clock: Clock) -> Self {
        let (queue, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(store, key, receiver));
        Self { queue, clock }
    }

    pub async fn record(
        &self,
        kind: &str,
        org: Option<OrgId>,
        actor: &str,
        data: Value,
    ) -> Result<(), StoreError> {
        let event = NewAuditEvent {
            at_ms: self.clock.now_ms(),
            kind: kind.to_owned(),
            org_id: org,
            actor: actor.to_owned(),
            data,
        };
        let (done, stored) = oneshot::channel();
        let gone = || StoreError::Open("the audit writer has stopped".into());
        self.queue.send((event, done)).await.map_err(|_| gone())?;
        stored
            .await
            .map_err(|_| gone())?
            .map_err(|(message, unavailable)| {
                if unavailable {
                    StoreError::Unavailable(message)
                } else {
                    StoreError::Open(message)
                }
            })?;
        metrics::counter!("keyward_audit_events_total", "type" => kind.to_owned()).increment(1);
        Ok(())
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    key: AuditKey,
    mut receiver: mpsc::Receiver<Pending>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events: Vec<NewAuditEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
        let outcome = store.append_audit(&key, &events).await.map_err(|e| {
            tracing::error!(error = %e, events = events.len(), "audit append failed");
            (format!("audit log write failed: {e}"), e.is_unavailable())
        });
        for (_, done) in batch.drain(..) {
            let _ = done.send(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
        }
    }
}

/// The outcome of walking the whole chain.
#[derive(Debug)]
pub struct Verification {
    pub checked: u64,
    /// Events, from the first, written before keyed links.
    pub unkeyed: u64,
    /// When the log was keyed (`(seq, at_ms)` of the first keyed event), if it had unkeyed ones.
    pub keyed_at: Option<(i64, i64)>,
    pub broken: Option<ChainBreak>,
}

impl Verification {
    /// One line for people: what verified, and how.
    pub fn summary(&self) -> String {
        if let Some(broken) = &self.broken {
            return broken.to_string();
        }
        let mut text = format!(
            "all {} audit events verify under the master key",
            self.checked
        );
        if let Some((seq, at_ms)) = self.keyed_at {
            text.push_str(&format!(
                "; events 1 to {} were written before keyed links and are anchored by keyed event {seq} ({}) — that time should be the first start after upgrading",
                self.unkeyed,
                crate::clock::ms_to_datetime(at_ms)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            ));
        }
        text
    }
}

/// Walks every event in order, in pages, and checks each link and the chain head.
pub async fn verify_chain(store: &dyn Store, key: &AuditKey) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1000;
    let mut verifier = ChainVerifier::new(key);
    let mut after = 0;
    let done = |verifier: &ChainVerifier, broken| Verification {
        checked: verifier.checked,
        unkeyed: verifier.unkeyed,
        keyed_at: verifier.keyed_at,
        broken,
    };
    loop {
        let rows = store
            .audit_events(&AuditFilter {
                after_seq: Some(after),
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        for row in &rows {
            if let Err(broken) = verifier.check(row) {
                return Ok(done(&verifier, Some(broken)));
            }
            after = row.seq;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    let head = store.audit_head().await?;
    Ok(done(&verifier, verifier.finish(head).err()))
}

/// The file in the data directory that says this installation has kept a keyed audit log.
pub const KEYED_MARKER: &str = "audit-chain-keyed";

/// Anchors a log written before keyed links: when its newest event carries an unkeyed hash,
/// records the one keyed event ([`kind::CHAIN_KEYED`]) whose HMAC covers that hash and so every
/// event before. This happens once, at the first start after upgrading; afterwards the data
/// directory holds [`KEYED_MARKER`], and an unkeyed log met again is not anchored (someone
/// without the master key rewrote it, hoping to have it vouched for) but reported. A data
/// directory that is not kept (a fresh container) cannot tell, and anchors it: the anchor's
/// time, which `keyward audit verify` shows, is then later than the upgrade.
pub async fn seal_unkeyed(
    store: &dyn Store,
    key: &AuditKey,
    audit: &Auditor,
    data_dir: &std::path::Path,
) -> Result<(), StoreError> {
    let marker = data_dir.join(KEYED_MARKER);
    let mark = || {
        if let Err(e) = std::fs::write(&marker, b"this installation keeps a keyed audit log\n") {
            tracing::warn!(error = %e, path = %marker.display(), "cannot record that the audit log is keyed");
        }
    };
    let newest = match store.audit_head().await? {
        None => None,
        Some((head_seq, _)) => store
            .audit_events(&AuditFilter {
                after_seq: Some(head_seq - 1),
                limit: 1,
                ..Default::default()
            })
            .await?
            .into_iter()
            .next(),
    };
    let Some(newest) = newest else {
        mark();
        return Ok(());
    };
    if key.is_keyed(&newest) {
        mark();
        return Ok(());
    }
    if !keyward_store::audit::is_unkeyed(&newest) {
        // Altered or under another key: `keyward audit verify` says which.
        return Ok(());
    }
    if marker.exists() {
        tracing::error!(
            path = %marker.display(),
            "the audit log ends in events with unkeyed hashes although this installation has kept a keyed log: it was rewritten by someone without the master key, and is not anchored. Run `keyward audit verify`. (If you restored a backup taken before the upgrade to keyed audit links, delete the file and restart.)"
        );
        return Ok(());
    }
    tracing::warn!(
        events = newest.seq,
        "the audit log holds events written before keyed audit links; anchoring them under the master key now. This happens once, at the first start after upgrading"
    );
    audit
        .record(
            kind::CHAIN_KEYED,
            None,
            "system:audit",
            serde_json::json!({"unkeyed_events": newest.seq, "master_key_id": key.master_id()}),
        )
        .await?;
    mark();
    Ok(())
}
