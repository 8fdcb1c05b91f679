//! The shared backend: PostgreSQL, for several replicas behind a load balancer.

use std::borrow::Cow;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

pub struct PostgresStore {
    pool: PgPool,
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
            include_str!("../migrations/postgres/0001_foundation.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("workload_identity"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0002_workload_identity.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("secrets"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0003_secrets.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("people"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0004_people.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("rbac"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0005_rbac.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("sso"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0006_sso.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("workload_subject"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0007_workload_subject.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            8,
            Cow::Borrowed("auth_backoff"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0008_auth_backoff.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            9,
            Cow::Borrowed("account_guards"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0009_account_guards.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            10,
            Cow::Borrowed("sso_links"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0010_sso_links.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            11,
            Cow::Borrowed("gateway_routes"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0011_gateway_routes.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            12,
            Cow::Borrowed("approvals"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0012_approvals.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            13,
            Cow::Borrowed("gateway_sessions"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0013_gateway_sessions.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            14,
            Cow::Borrowed("master_keys"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0014_master_keys.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            15,
            Cow::Borrowed("invitation_ids"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0015_invitation_ids.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            16,
            Cow::Borrowed("rate_counter_sweep"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0016_rate_counter_sweep.sql").into_sql_str(),
            false,
        ),
    ])
}

impl PostgresStore {
    /// A transaction for a read-then-write (the SQLite store takes its write lock at once).
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await
    }

    pub async fn connect(url: &str) -> crate::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            // The URL may carry a password: report the error, never the URL.
            .map_err(|e| {
                crate::StoreError::Open(format!("PostgreSQL at KEYWARD_DATABASE_URL: {e}"))
            })?;
        // The migrator takes a PostgreSQL advisory lock, so replicas starting together migrate once.
        migrator().run(&pool).await?;
        Ok(Self {
            approvals: crate::approvals::ApprovalWatcher::postgres(pool.clone()),
            pool,
            audit_lock: tokio::sync::Mutex::new(()),
        })
    }
}

crate::sql::impl_store!(
    store = PostgresStore,
    db = sqlx::Postgres,
    backend = "postgres"
);
crate::sql_tokens::impl_token_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_keys::impl_key_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_master::impl_master_key_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_audit::impl_audit_store!(
    store = PostgresStore,
    db = sqlx::Postgres,
    begin_audit = "BEGIN",
    // Serialises appends across replicas; released at commit.
    lock_audit = "SELECT pg_advisory_xact_lock(7305172)",
);

crate::sql_workload::impl_workload_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_secrets::impl_secret_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_people::impl_people_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_rbac::impl_rbac_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_sso::impl_sso_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_guards::impl_guard_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_links::impl_link_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_gateway::impl_gateway_store!(store = PostgresStore, db = sqlx::Postgres);
crate::sql_approvals::impl_approval_store!(
    store = PostgresStore,
    db = sqlx::Postgres,
    notify = Some("SELECT pg_notify('keyward_approvals', $1)"),
);
crate::sql_sessions::impl_session_store!(
    store = PostgresStore,
    db = sqlx::Postgres,
    session_id = "(data::jsonb -> 'session' ->> 'id')",
    session_error = "(data::jsonb -> 'session' ->> 'error')",
    route = "(data::jsonb ->> 'route')",
    callers = "json_agg(DISTINCT actor)::text",
    routes = "json_agg(DISTINCT data::jsonb ->> 'route')::text",
);
