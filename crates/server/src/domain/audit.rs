//! Reading and verifying the audit log for a caller: what its organization may see (SPEC §6).

use keyward_store::{AuditFilter, AuditRow};

use crate::audit::Verification;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// One page of the events the caller's organization may see, oldest first, after `after`.
pub(crate) async fn events_page(
    app: &AppState,
    caller: &Caller,
    filter: AuditFilter,
) -> Result<Vec<AuditRow>, ApiError> {
    let filter = AuditFilter {
        visible_to_org: Some(caller.org()?.id),
        ..filter
    };
    Ok(app.store.audit_events(&filter).await?)
}

/// Verifies the whole hash chain (every tenant's events: the chain is one).
pub(crate) async fn verify(app: &AppState) -> Result<Verification, ApiError> {
    Ok(crate::audit::verify_chain(app.store.as_ref(), &app.master.audit_key()).await?)
}
