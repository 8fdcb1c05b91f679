//! Keyward's persistence: one [`Store`] trait with SQLite and PostgreSQL backends, their
//! migrations, envelope encryption of secrets at rest, and the audit hash chain.
//!
//! Every call that touches an organization's data takes its [`OrgId`]: a row of another
//! organization is simply not found.

mod approval_watch;
pub mod approvals;
pub mod audit;
pub mod audit_export;
pub mod crypto;
pub mod gateway;
pub mod links;
pub mod master_keys;
pub mod model;
mod postgres;
pub mod rbac;
pub mod secret;
pub mod sessions;
mod sql;
mod sql_approvals;
mod sql_audit;
mod sql_gateway;
mod sql_guards;
mod sql_keys;
mod sql_links;
mod sql_master;
mod sql_people;
mod sql_rbac;
mod sql_secrets;
mod sql_sessions;
mod sql_sso;
mod sql_tokens;
mod sql_workload;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use keyward_core::{
    AutomationId, EnvVarId, LlmConnectionId, OrgId, SecretProviderId, TokenId, UserId,
    WorkloadIdentityConfigId,
};
use thiserror::Error;

pub use approvals::{
    ApprovalFilter, ApprovalRow, ApprovalStore, ApprovalWatcher, Decision, Transition,
};
pub use gateway::{GatewayRouteRow, GatewayStore};
pub use links::{SsoLinkRow, SsoLinkStore};
pub use model::*;
pub use postgres::PostgresStore;
pub use rbac::*;
pub use sessions::{SessionFilter, SessionHeadRow, SessionStore, SessionSummary};
pub use sqlite::SqliteStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// Deleting it would leave another record pointing at nothing.
    #[error("it is still in use")]
    InUse,
    /// The change would leave an organization without an owner.
    #[error("an organization keeps at least one owner")]
    LastOwner,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored value is malformed ({0}); the database was edited or is damaged")]
    Corrupt(String),
    #[error("cannot open the database: {0}")]
    Open(String),
    /// A database error already reported elsewhere (a batch shared by several callers) that
    /// [`StoreError::is_unavailable`] classified so.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The database could not be reached or is restarting (refused or dropped connections, no
    /// free connection within the pool's timeout, PostgreSQL shutting down or starting up): the
    /// same request can succeed once it is back, unlike a constraint or a damaged row.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            StoreError::Unavailable(_) => return true,
            StoreError::Database(e) => e,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin or crash shutdown,
            // cannot connect now) and 53300 (too many connections, while dropped ones linger).
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08") || code.starts_with("57P0") || code == "53300"
            }),
            _ => false,
        }
    }
}

/// Workload identity configs and LLM connections (SPEC §4).
#[async_trait]
pub trait WorkloadStore: Send + Sync {
    /// Inserts the config and its automation restriction; `Conflict { field: "name" }` for a
    /// taken name, `Conflict { field: "default_for_cloud" }` for a second default of its cloud.
    async fn create_wi_config(&self, row: &WiConfigRow) -> Result<()>;
    async fn get_wi_config(&self, org: OrgId, id: WorkloadIdentityConfigId) -> Result<WiConfigRow>;
    async fn find_wi_config_by_name(&self, org: OrgId, name: &str) -> Result<Option<WiConfigRow>>;
    async fn list_wi_configs(&self, org: OrgId) -> Result<Vec<WiConfigRow>>;
    /// Replaces name, settings, default flag and restriction.
    async fn update_wi_config(&self, row: &WiConfigRow) -> Result<()>;
    /// `InUse` while an LLM connection uses it.
    async fn delete_wi_config(&self, org: OrgId, id: WorkloadIdentityConfigId) -> Result<()>;

    async fn create_llm_connection(&self, row: &LlmConnectionRow) -> Result<()>;
    async fn get_llm_connection(&self, org: OrgId, id: LlmConnectionId)
    -> Result<LlmConnectionRow>;
    async fn find_llm_connection_by_name(
        &self,
        org: OrgId,
        name: &str,
    ) -> Result<Option<LlmConnectionRow>>;
    async fn list_llm_connections(&self, org: OrgId) -> Result<Vec<LlmConnectionRow>>;
    async fn update_llm_connection(&self, row: &LlmConnectionRow) -> Result<()>;
    async fn delete_llm_connection(&self, org: OrgId, id: LlmConnectionId) -> Result<()>;
}

/// Secret provider credentials, environment variables and what resolves at kickoff (SPEC §6).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// `Conflict { field: "name" }` or `Conflict { field: "default_for_provider" }`.
    async fn create_secret_provider(&self, row: &SecretProviderRow) -> Result<()>;
    async fn get_secret_provider(
        &self,
        org: OrgId,
        id: SecretProviderId,
    ) -> Result<SecretProviderRow>;
    async fn find_secret_provider_by_name(
        &self,
        org: OrgId,
        name: &str,
    ) -> Result<Option<SecretProviderRow>>;
    async fn list_secret_providers(&self, org: OrgId) -> Result<Vec<SecretProviderRow>>;
    async fn update_secret_provider(&self, row: &SecretProviderRow) -> Result<()>;
    /// `InUse` while an environment variable names it.
    async fn delete_secret_provider(&self, org: OrgId, id: SecretProviderId) -> Result<()>;

    /// `Conflict { field: "key" }` for a key the organization already has.
    async fn create_env_var(&self, row: &EnvVarRow) -> Result<()>;
    async fn get_env_var(&self, org: OrgId, id: EnvVarId) -> Result<EnvVarRow>;
    async fn find_env_var_by_key(&self, org: OrgId, key: &str) -> Result<Option<EnvVarRow>>;
    async fn list_env_vars(&self, org: OrgId) -> Result<Vec<EnvVarRow>>;
    /// Every organization, oldest first: for the startup check of stored variables (H4).
    async fn list_orgs(&self) -> Result<Vec<OrgRow>>;
    async fn update_env_var(&self, row: &EnvVarRow) -> Result<()>;
    async fn delete_env_var(&self, org: OrgId, id: EnvVarId) -> Result<()>;

    /// Replaces the automation's assigned variables; `NotFound` if the automation or any
    /// variable is not the organization's (nothing changes then).
    async fn assign_env_vars(
        &self,
        org: OrgId,
        automation: AutomationId,
        vars: &[EnvVarId],
    ) -> Result<()>;
    async fn automation_env_vars(
        &self,
        org: OrgId,
        automation: AutomationId,
    ) -> Result<Vec<EnvVarRow>>;
    /// [`assign_env_vars`](SecretStore::assign_env_vars) and
    /// [`replace_resolved_values`](SecretStore::replace_resolved_values) in one transaction:
    /// both land or neither. `NotFound` also for a value of a variable not in `vars`.
    async fn assign_env_vars_resolved(
        &self,
        org: OrgId,
        automation: AutomationId,
        vars: &[EnvVarId],
        values: &[ResolvedValue],
    ) -> Result<()>;

    /// Replaces the static-backed values resolved for the automation (registration, redeploy).
    async fn replace_resolved_values(
        &self,
        automation: AutomationId,
        values: &[ResolvedValue],
    ) -> Result<()>;
    async fn resolved_values(&self, automation: AutomationId) -> Result<Vec<ResolvedValue>>;
}

/// How long a rate counter outlives the start of its window (seconds); no limiter's window may
/// be longer.
pub const RATE_COUNTER_RETENTION: i64 = 3600;

/// People signing in to Keyward itself, and the CLI device flow (SPEC §7).
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Sets (or replaces) the person's password hash, keeping any TOTP secret.
    async fn set_local_password(&self, user: UserId, password_hash: &str, now: i64) -> Result<()>;
    /// Turns TOTP on (`Some`) or off; `NotFound` when the person has no password yet.
    async fn set_local_totp(&self, user: UserId, sealed: Option<&[u8]>, now: i64) -> Result<()>;
    async fn local_credential(&self, user: UserId) -> Result<Option<LocalCredentialRow>>;

    /// `Conflict { field: "user_code" }` when the user code is taken (the caller draws again).
    async fn create_device_code(&self, row: &DeviceCodeRow) -> Result<()>;
    async fn device_by_hash(&self, device_hash: &str) -> Result<Option<DeviceCodeRow>>;
    async fn device_by_user_code(&self, user_code_hash: &str) -> Result<Option<DeviceCodeRow>>;
    /// Approves or denies a pending, unexpired authorization for `user`; `NotFound` otherwise.
    async fn decide_device(
        &self,
        user_code_hash: &str,
        user: UserId,
        approve: bool,
        now: i64,
    ) -> Result<DeviceCodeRow>;
    async fn record_device_poll(&self, device_hash: &str, now_ms: i64) -> Result<()>;
    /// Spends an approved, unexpired authorization and returns whom it was approved for; `None`
    /// when it is not (or no longer) approved. Atomic: of two concurrent polls one wins.
    async fn consume_device(&self, device_hash: &str, now: i64) -> Result<Option<UserId>>;
    /// Deletes authorizations that expired before `before`.
    async fn purge_device_codes(&self, before: i64) -> Result<u64>;
    /// Every authorization row held, expired or not (the bound on the table's size).
    async fn count_device_codes(&self) -> Result<i64>;

    async fn create_web_session(&self, row: &WebSessionRow) -> Result<()>;
    /// The person of a live session.
    async fn web_session_user(&self, hash: &str, now: i64) -> Result<Option<UserRow>>;
    async fn delete_web_session(&self, hash: &str) -> Result<()>;
    /// The person of a live session, whose deadline then slides to `now + idle` (never past
    /// `created_at + max_age`): an unused session ends after `idle` seconds.
    async fn touch_web_session(
        &self,
        hash: &str,
        now: i64,
        idle: i64,
        max_age: i64,
    ) -> Result<Option<UserRow>>;

    /// Counts one event under `key` in the fixed window of `window` seconds holding `now`, and
    /// returns the count so far in that window. Shared by every replica. Windows are at most
    /// [`RATE_COUNTER_RETENTION`] long: counters whose window started that long ago are deleted
    /// on the way, so the table holds only the keys (client addresses) seen recently.
    async fn bump_rate_counter(&self, key: &str, now: i64, window: i64) -> Result<i64>;
    /// The count in the current window, without counting.
    async fn rate_counter(&self, key: &str, now: i64, window: i64) -> Result<i64>;
    /// Counts one failure under `key` at `now_ms` and returns the failures so far. A key whose
    /// last failure is `forget_after_ms` old or older starts again at 1; such stale keys are
    /// deleted on the way. Milliseconds: a one-second backoff needs finer time than seconds.
    async fn record_failure(&self, key: &str, now_ms: i64, forget_after_ms: i64) -> Result<i64>;
    /// The failures under `key` and when (ms) the last one happened; `None` when there are none.
    async fn failures(&self, key: &str) -> Result<Option<(i64, i64)>>;
    async fn clear_failures(&self, key: &str) -> Result<()>;

    /// Adds `user` to `org` with `role`; `Conflict { field: "member" }` if already a member.
    async fn add_membership(&self, org: OrgId, user: UserId, role: &str, now: i64) -> Result<()>;

    async fn create_invitation(&self, row: &InvitationRow) -> Result<()>;
    async fn invitation_by_hash(&self, hash: &str) -> Result<Option<InvitationRow>>;
    /// Marks an unexpired, unaccepted invitation accepted and returns it; `None` otherwise.
    /// Atomic: an invitation is accepted once.
    async fn accept_invitation(&self, hash: &str, now: i64) -> Result<Option<InvitationRow>>;
    /// The organization's invitations neither accepted nor expired at `now`, oldest first.
    async fn pending_invitations(&self, org: OrgId, now: i64) -> Result<Vec<InvitationRow>>;
    /// Deletes the organization's unaccepted invitation `id` (its link then opens nothing) and
    /// returns it; `None` when the organization has no such unaccepted invitation.
    async fn revoke_invitation(&self, org: OrgId, id: &str) -> Result<Option<InvitationRow>>;
}

/// Browser sign-in through an external identity provider: OIDC and SAML (SPEC §7).
#[async_trait]
pub trait SsoStore: Send + Sync {
    /// Records a sign-in that is leaving for the identity provider (and drops expired ones).
    async fn create_sso_pending(&self, row: &SsoPendingRow) -> Result<()>;
    /// Removes and returns the pending sign-in with this state hash if it has not expired;
    /// `None` when there is none (tampered, replayed or expired). Atomic: taken once.
    async fn take_sso_pending(&self, state_hash: &str, now: i64) -> Result<Option<SsoPendingRow>>;
    /// The pending sign-in with this state hash if it has not expired, left in place.
    async fn find_sso_pending(&self, state_hash: &str, now: i64) -> Result<Option<SsoPendingRow>>;
    /// The SAML replay cache: records `id` until `expires_at` and answers `false`, or answers
    /// `true` when it was already recorded (a replay). Insert-if-absent, shared by replicas.
    async fn saml_seen(&self, id: &str, expires_at: i64, now: i64) -> Result<bool>;
    /// The oldest organization: the one people signing in through SSO join by default.
    async fn first_org(&self) -> Result<Option<OrgId>>;
}

/// Per-person guards beyond the credentials (TOTP replay, access-token cut-off, other sessions),
/// and the bound on pending SSO sign-ins.
#[async_trait]
pub trait GuardStore: Send + Sync {
    /// Records `step` as the person's newest accepted TOTP time step and answers `true`, or
    /// answers `false` when a step as new or newer was already accepted (a replay). Atomic.
    async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool>;
    /// People's access tokens issued at or before this time are no longer valid.
    async fn tokens_valid_after(&self, user: UserId) -> Result<Option<i64>>;
    /// Ends every console session of `user` but `keep` (a session hash), and cuts off the
    /// person's access tokens issued up to `now`. Returns how many sessions ended.
    async fn end_other_sessions(&self, user: UserId, keep: Option<&str>, now: i64) -> Result<u64>;
    /// Removes the person's local password (and TOTP); `true` when there was one.
    async fn drop_local_credential(&self, user: UserId) -> Result<bool>;
    /// Drops expired pending SSO sign-ins and counts the rest.
    async fn live_sso_pending(&self, now: i64) -> Result<i64>;
}

/// Bearer tokens (personal and automation) and the one-time owner setup link.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &TokenRow) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;
    /// The token with its automation or person, in one round trip (the hot path of every request).
    async fn resolve_token(&self, hash: &str) -> Result<Option<ResolvedToken>>;
    async fn list_personal_tokens(&self, user: UserId) -> Result<Vec<TokenRow>>;
    async fn list_automation_tokens(
        &self,
        org: OrgId,
        automation: AutomationId,
    ) -> Result<Vec<TokenRow>>;
    /// Revokes a personal token of `user`; returns the record as revoked.
    async fn revoke_personal_token(&self, user: UserId, id: TokenId, now: i64) -> Result<TokenRow>;
    async fn revoke_automation_token(
        &self,
        org: OrgId,
        automation: AutomationId,
        id: TokenId,
        now: i64,
    ) -> Result<TokenRow>;

    /// Replaces any earlier setup token: only the newest printed link works.
    async fn replace_setup_token(&self, hash: &str, expires_at: i64) -> Result<()>;
    /// Deletes the setup token; its expiry when it existed and was unexpired (so a setup that
    /// fails afterwards can put the link back with [`TokenStore::replace_setup_token`]).
    async fn consume_setup_token(&self, hash: &str, now: i64) -> Result<Option<i64>>;
}

/// The issuer's signing keys (sealed private halves) and the lease that lets one replica rotate.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<()>;
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>>;
    async fn record_key_activation(&self, kid: &str) -> Result<()>;
    async fn schedule_key_retirement(&self, kid: &str, retires_at: i64) -> Result<()>;
    /// Marks the key retired and destroys its sealed private half.
    async fn retire_key(&self, kid: &str, now: i64) -> Result<()>;

    /// Takes or renews the named lease for `holder` until `now + ttl`; `false` when another
    /// holder's lease is still running.
    async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool>;
}

/// The audit hash chain.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `events`, in order, to the hash chain in one transaction, serialised against every
    /// other writer. All are stored or none. Links are keyed with `key` (see [`audit`]).
    async fn append_audit(
        &self,
        key: &audit::AuditKey,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRow>>;
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>>;
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;
}

/// Everything Keyward persists. Implemented by [`SqliteStore`] and [`PostgresStore`].
/// Connections of the database pool: open (`size`, of which `idle` are unused) and the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

#[async_trait]
pub trait Store:
    WorkloadStore
    + TokenStore
    + KeyStore
    + AuditStore
    + SecretStore
    + PeopleStore
    + RbacStore
    + SsoStore
    + GuardStore
    + SsoLinkStore
    + GatewayStore
    + ApprovalStore
    + SessionStore
    + master_keys::MasterKeyStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// The connection pool's use at this moment, for `/metrics`.
    fn pool_stats(&self) -> PoolStats;

    // People and organizations.
    async fn user_count(&self) -> Result<i64>;
    async fn create_user(&self, user: &UserRow) -> Result<()>;
    async fn get_user(&self, id: UserId) -> Result<UserRow>;
    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>>;
    /// Creates the organization with its predefined roles (Owner, Member) and `owner` as a
    /// member holding `role`, in one transaction.
    async fn create_org(&self, org: &OrgRow, owner: UserId, role: &str) -> Result<()>;
    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>>;
    async fn membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>>;

    // Automations.
    async fn create_automation(&self, automation: &AutomationRow) -> Result<()>;
    async fn get_automation(&self, org: OrgId, id: AutomationId) -> Result<AutomationRow>;
    async fn find_automation_by_name(
        &self,
        org: OrgId,
        name: &str,
    ) -> Result<Option<AutomationRow>>;
    async fn list_automations(&self, org: OrgId) -> Result<Vec<AutomationRow>>;
    async fn update_automation(&self, automation: &AutomationRow) -> Result<()>;
    async fn delete_automation(&self, org: OrgId, id: AutomationId) -> Result<()>;
}

/// Opens the store named by `database_url`, or the SQLite file in `data_dir`, and migrates it.
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PostgresStore::connect(url).await?))
        }
        Some(url) if url.starts_with("sqlite:") => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
        }
        Some(other) => Err(StoreError::Open(format!(
            "KEYWARD_DATABASE_URL must start with postgres:// or sqlite: (got a URL starting {:?})",
            other.split(':').next().unwrap_or("")
        ))),
        None => Ok(Arc::new(
            SqliteStore::open(&data_dir.join("keyward.db")).await?,
        )),
    }
}
