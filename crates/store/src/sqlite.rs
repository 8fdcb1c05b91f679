//! The embedded backend: one SQLite file in WAL mode, for single-node installs.

use std::borrow::Cow;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer; this keeps audit appends of this process in order without
    /// spinning on `SQLITE_BUSY`.
    audit_lock: tokio::sync::Mutex<()>,
    /// Releases requests held for approval (one per process).
    approvals: crate::approvals::ApprovalWatcher,
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            Cow::Borrowed("foundation"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_foundation.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("workload_identity"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_workload_identity.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("secrets"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0003_secrets.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("people"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0004_people.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("rbac"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0005_rbac.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("sso"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0006_sso.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("workload_subject"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0007_workload_subject.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            8,
            Cow::Borrowed("auth_backoff"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0008_auth_backoff.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            9,
            Cow::Borrowed("account_guards"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0009_account_guards.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            10,
            Cow::Borrowed("sso_links"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0010_sso_links.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            11,
            Cow::Borrowed("gateway_routes"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0011_gateway_routes.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            12,
            Cow::Borrowed("approvals"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0012_approvals.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            13,
            Cow::Borrowed("gateway_sessions"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0013_gateway_sessions.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            14,
            Cow::Borrowed("master_keys"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0014_master_keys.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            15,
            Cow::Borrowed("invitation_ids"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0015_invitation_ids.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            16,
            Cow::Borrowed("rate_counter_sweep"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0016_rate_counter_sweep.sql").into_sql_str(),
            false,
        ),
    ])
}

impl SqliteStore {
    /// A transaction that takes the write lock at once. SQLite's default (deferred) transaction
    /// reads first and asks for the lock at its first write; when another connection wrote in
    /// between, that upgrade fails at once with "database is locked" (no busy wait can help),
    /// which schemathesis turned into a 500 with two concurrent writers.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Opens (creating if needed) the database file and brings its schema up to date. The file
    /// holds sealed secrets and token hashes, so it is kept private to this user (0600).
    pub async fn open(path: &Path) -> crate::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| crate::StoreError::Open(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| crate::StoreError::Open(format!("{}: {e}", path.display())))?;
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| crate::StoreError::Open(format!("chmod 600 {file}: {e}")))?;
            }
        }
        migrator().run(&pool).await?;
        Ok(Self {
            approvals: crate::approvals::ApprovalWatcher::sqlite(pool.clone()),
            pool,
            audit_lock: tokio::sync::Mutex::new(()),
        })
    }
}

crate::sql::impl_store!(store = SqliteStore, db = sqlx::Sqlite, backend = "sqlite");
crate::sql_tokens::impl_token_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_keys::impl_key_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_master::impl_master_key_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_audit::impl_audit_store!(
    store = SqliteStore,
    db = sqlx::Sqlite,
    begin_audit = "BEGIN IMMEDIATE",
    lock_audit = "",
);

crate::sql_workload::impl_workload_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_secrets::impl_secret_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_people::impl_people_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_rbac::impl_rbac_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_sso::impl_sso_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_guards::impl_guard_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_links::impl_link_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_gateway::impl_gateway_store!(store = SqliteStore, db = sqlx::Sqlite);
crate::sql_approvals::impl_approval_store!(store = SqliteStore, db = sqlx::Sqlite, notify = None,);
crate::sql_sessions::impl_session_store!(
    store = SqliteStore,
    db = sqlx::Sqlite,
    session_id = "json_extract(data, '$.session.id')",
    session_error = "json_extract(data, '$.session.error')",
    route = "json_extract(data, '$.route')",
    callers = "json_group_array(DISTINCT actor)",
    routes = "json_group_array(DISTINCT json_extract(data, '$.route'))",
);
