//! Recording audit events. Every event goes through [`Auditor::record`], which appends it to the
//! store's hash chain; an event that cannot be recorded fails the action it describes.

use std::sync::Arc;

use keyward_core::OrgId;
use keyward_store::audit::{ChainBreak, ChainVerifier};
use keyward_store::{AuditFilter, NewAuditEvent, Store, StoreError};
use serde_json::Value;

use crate::clock;

/// Event types, as they appear in the `type` field and the `?type=` filter.
pub mod kind {
    pub const BOOTSTRAP_COMPLETED: &str = "bootstrap.completed";
    pub const SETUP_LINK_ISSUED: &str = "setup.link_issued";
    pub const LOGIN: &str = "auth.login";
    pub const ORG_CREATED: &str = "org.created";
    pub const AUTOMATION_CREATED: &str = "automation.created";
    pub const AUTOMATION_UPDATED: &str = "automation.updated";
    pub const AUTOMATION_DELETED: &str = "automation.deleted";
    pub const AUTOMATION_TOKEN_CREATED: &str = "automation_token.created";
    pub const AUTOMATION_TOKEN_REVOKED: &str = "automation_token.revoked";
    pub const PERSONAL_TOKEN_CREATED: &str = "personal_token.created";
    pub const PERSONAL_TOKEN_REVOKED: &str = "personal_token.revoked";
    pub const TOKEN_MINTED: &str = "workload_token.minted";
    pub const KEY_PUBLISHED: &str = "signing_key.published";
    pub const KEY_ACTIVATED: &str = "signing_key.activated";
    pub const KEY_SUPERSEDED: &str = "signing_key.superseded";
    pub const KEY_RETIRED: &str = "signing_key.retired";
}

#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn Store>,
}

impl Auditor {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn record(
        &self,
        kind: &str,
        org: Option<OrgId>,
        actor: &str,
        data: Value,
    ) -> Result<(), StoreError> {
        let event = NewAuditEvent {
            at_ms: clock::now_ms(),
            kind: kind.to_owned(),
            org_id: org,
            actor: actor.to_owned(),
            data,
        };
        self.store.append_audit(&event).await?;
        metrics::counter!("keyward_audit_events_total", "type" => kind.to_owned()).increment(1);
        Ok(())
    }
}

/// The outcome of walking the whole chain.
#[derive(Debug)]
pub struct Verification {
    pub checked: u64,
    pub broken: Option<ChainBreak>,
}

/// Walks every event in order, in pages, and checks each link and the chain head.
pub async fn verify_chain(store: &dyn Store) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1000;
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
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
                return Ok(Verification {
                    checked: verifier.checked,
                    broken: Some(broken),
                });
            }
            after = row.seq;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    let head = store.audit_head().await?;
    Ok(Verification {
        checked: verifier.checked,
        broken: verifier.finish(head).err(),
    })
}
