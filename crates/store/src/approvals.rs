//! Just-in-time approval requests of the gateway (SPEC §9): the rows, the store API every
//! gateway replica and the platform share, and how a row's state reads at a given time.
//!
//! Every transition is a conditional update (`… WHERE state = 'pending'`), so of two approvers,
//! or two replicas, exactly one wins. Expiry is a matter of time: a row read after its deadline
//! reads as `expired` whether or not [`ApprovalStore::expire_due`] has persisted it yet.

use async_trait::async_trait;
use keyward_core::api::approvals::{ApprovalMode, ApprovalState, GrantKind};
use keyward_core::{ApprovalId, AutomationId, OrgId, UserId};

use crate::Result;
pub use crate::approval_watch::{ApprovalWatcher, NOTIFY_CHANNEL};

/// The most rows one list returns.
pub const MAX_PAGE: i64 = 500;

#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRow {
    pub id: ApprovalId,
    pub org_id: OrgId,
    /// The stored route's id, when the route came from the database.
    pub route_id: Option<String>,
    pub route_name: String,
    /// `person`, `automation` or `workload`.
    pub requester_kind: String,
    pub requester_subject: String,
    pub requester_email: Option<String>,
    pub requester_automation: Option<AutomationId>,
    pub policy_id: String,
    pub reason: String,
    /// Method, path, host, model/tool: never bodies or secrets.
    pub summary: serde_json::Value,
    pub mode: ApprovalMode,
    pub grant_kind: GrantKind,
    pub grant_seconds: i64,
    pub state: ApprovalState,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_by_user: Option<UserId>,
    pub decided_by_email: Option<String>,
    pub decision_comment: Option<String>,
    pub decided_at: Option<i64>,
    pub grant_expires_at: Option<i64>,
    pub executed_at: Option<i64>,
    pub revoked_by_user: Option<UserId>,
    pub revoked_by_email: Option<String>,
    pub revoke_comment: Option<String>,
    pub revoked_at: Option<i64>,
}

impl ApprovalRow {
    /// The state at `now`: a pending request past its deadline, or an approved grant past its
    /// end, reads as expired.
    pub fn state_at(&self, now: i64) -> ApprovalState {
        match self.state {
            ApprovalState::Pending if now >= self.expires_at => ApprovalState::Expired,
            ApprovalState::Approved if self.grant_expires_at.is_none_or(|end| now >= end) => {
                ApprovalState::Expired
            }
            other => other,
        }
    }

    /// The row as it reads at `now` (see [`ApprovalRow::state_at`]).
    pub fn at(mut self, now: i64) -> Self {
        self.state = self.state_at(now);
        self
    }
}

/// A decision on a pending request.
#[derive(Clone, Debug)]
pub struct Decision {
    pub approve: bool,
    pub user: UserId,
    pub email: String,
    pub comment: Option<String>,
    /// For an approval: the grant and when it ends.
    pub grant_kind: GrantKind,
    pub grant_expires_at: i64,
}

/// The outcome of a conditional transition.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// It happened; the row as it is now.
    Done(ApprovalRow),
    /// The row was not in a state that allows it; the row as it reads now.
    Refused(ApprovalRow),
}

/// Filters of [`ApprovalStore::list_approvals`]; newest first.
#[derive(Clone, Debug, Default)]
pub struct ApprovalFilter {
    pub state: Option<ApprovalState>,
    pub route: Option<String>,
    pub requester: Option<String>,
    /// Only rows created before this id's row (paging), newest first.
    pub before: Option<(i64, ApprovalId)>,
    /// At most [`MAX_PAGE`].
    pub limit: i64,
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    async fn create_approval(&self, row: &ApprovalRow) -> Result<()>;
    /// The row as it reads at `now`; `NotFound` for another organization's.
    async fn get_approval(&self, org: OrgId, id: ApprovalId, now: i64) -> Result<ApprovalRow>;
    async fn list_approvals(
        &self,
        org: OrgId,
        filter: &ApprovalFilter,
        now: i64,
    ) -> Result<Vec<ApprovalRow>>;
    /// Approves or denies a request still pending (and not past its deadline) at `now`.
    async fn decide_approval(
        &self,
        org: OrgId,
        id: ApprovalId,
        decision: &Decision,
        now: i64,
    ) -> Result<Transition>;
    /// Ends an approved, unexpired grant at once.
    async fn revoke_approval(
        &self,
        org: OrgId,
        id: ApprovalId,
        user: UserId,
        email: &str,
        comment: &str,
        now: i64,
    ) -> Result<Transition>;
    /// Persists the expiry of every request (of `org`, or all) whose deadline or grant has
    /// passed, and returns them, now `expired`.
    async fn expire_due(&self, org: Option<OrgId>, now: i64) -> Result<Vec<ApprovalRow>>;
    /// The newest approved, unexpired grant for this requester, route and policy. The requester
    /// is its subject and its automation: workload tokens of an organization-wide subject share
    /// the subject, and a grant given for one automation must not let another through.
    async fn find_active_grant(
        &self,
        org: OrgId,
        requester_subject: &str,
        requester_automation: Option<AutomationId>,
        route: &str,
        policy_id: &str,
        now: i64,
    ) -> Result<Option<ApprovalRow>>;
    /// Spends an approved, unexpired one-shot grant (approved → executed). Atomic: one request
    /// spends it.
    async fn consume_once(&self, org: OrgId, id: ApprovalId, now: i64) -> Result<Transition>;
    /// Requests of the route still pending at `now` (the per-route bound).
    async fn count_pending(&self, org: OrgId, route: &str, now: i64) -> Result<i64>;
    /// Requests of the requester (subject and automation, as for grants) still pending at `now`
    /// (the per-caller bound).
    async fn count_pending_for(
        &self,
        org: OrgId,
        requester_subject: &str,
        requester_automation: Option<AutomationId>,
        now: i64,
    ) -> Result<i64>;
    /// The process-wide watcher that releases waiters when their request is decided.
    fn approval_watcher(&self) -> ApprovalWatcher;
}
