//! What every `sql_*` module shares — id parsing, the one constraint-violation mapper,
//! `expect_one` — and the SQL of [`Store`] itself (people, organizations, automations). The
//! statements are identical on SQLite and PostgreSQL (both take `$n` placeholders, `ON CONFLICT`
//! and `RETURNING`), so one macro per area implements its trait for each pool type.
//!
//! [`Store`]: crate::Store

use std::str::FromStr;

use crate::{Result, StoreError};

pub(crate) fn parse_id<T: FromStr>(column: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a UUID")))
}

pub(crate) fn parse_opt_id<T: FromStr>(column: &str, value: Option<String>) -> Result<Option<T>> {
    value.map(|v| parse_id(column, &v)).transpose()
}

/// Maps a unique-index violation to `Conflict { field }`, anything else to `Database` (see
/// [`conflict_among`]).
pub(crate) fn conflict(field: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    conflict_among(&[], field)
}

/// The one mapper of constraint violations. A unique index is named by its key column:
/// `(column, field)` pairs are tried in order against what the database said (PostgreSQL names
/// the index, SQLite lists `table.column`s) for `Conflict { field }`, else `Conflict { fallback }`.
/// A foreign key is `InUse`; anything else stays `Database`.
pub(crate) fn conflict_among(
    fields: &'static [(&'static str, &'static str)],
    fallback: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let said = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
            let field = fields
                .iter()
                .find(|(key, _)| said.contains(key))
                .map_or(fallback, |(_, field)| field);
            StoreError::Conflict { field }
        }
        // SQLite reports an ON DELETE RESTRICT as a constraint-trigger error (1811), not 787.
        sqlx::Error::Database(db)
            if db.is_foreign_key_violation()
                || db.message().contains("FOREIGN KEY constraint failed") =>
        {
            StoreError::InUse
        }
        _ => StoreError::Database(e),
    }
}

pub(crate) fn expect_one(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

macro_rules! impl_store {
    (
        store = $store:ty,
        db = $db:ty,
        backend = $backend:literal $(,)?
    ) => {
        use async_trait::async_trait;
        use keyward_core::{AutomationId, OrgId, UserId};
        use sqlx::Row as _;

        use crate::model::*;
        use crate::sql::{conflict, expect_one, parse_id};
        use crate::{Result, Store, StoreError};

        type DbRow = <$db as sqlx::Database>::Row;

        const ORG_COLUMNS: &str = "o.id, o.name, o.created_at";
        const AUTOMATION_COLUMNS: &str = "id, org_id, name, description, created_at, updated_at";

        fn org_row(r: &DbRow) -> Result<OrgRow> {
            Ok(OrgRow {
                id: parse_id("orgs.id", &r.try_get::<String, _>("id")?)?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn user_row(r: &DbRow) -> Result<UserRow> {
            Ok(UserRow {
                id: parse_id("users.id", &r.try_get::<String, _>("id")?)?,
                email: r.try_get("email")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn automation_row(r: &DbRow) -> Result<AutomationRow> {
            Ok(AutomationRow {
                id: parse_id("automations.id", &r.try_get::<String, _>("id")?)?,
                org_id: parse_id("automations.org_id", &r.try_get::<String, _>("org_id")?)?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn pool_stats(&self) -> crate::PoolStats {
                crate::PoolStats {
                    size: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn user_count(&self) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?;
                Ok(row.try_get("n")?)
            }

            async fn create_user(&self, user: &UserRow) -> Result<()> {
                sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
                    .bind(user.id.to_string())
                    .bind(&user.email)
                    .bind(user.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("email"))?;
                Ok(())
            }

            async fn get_user(&self, id: UserId) -> Result<UserRow> {
                let row = sqlx::query("SELECT id, email, created_at FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                user_row(&row)
            }

            async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
                sqlx::query("SELECT id, email, created_at FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_row)
                    .transpose()
            }

            async fn create_org(&self, org: &OrgRow, owner: UserId, role: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id.to_string())
                    .bind(&org.name)
                    .bind(org.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict("id"))?;
                // Owner and Member exist in every organization (RBAC, migration 0005).
                for (name, description) in crate::rbac::PREDEFINED_ROLES {
                    sqlx::query(
                        "INSERT INTO roles (id, org_id, name, description, grants, predefined, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, '{}', $5, $6, $6)",
                    )
                    .bind(keyward_core::RoleId::new_random().to_string())
                    .bind(org.id.to_string())
                    .bind(name)
                    .bind(description)
                    .bind(true)
                    .bind(org.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(org.id.to_string())
                .bind(owner.to_string())
                .bind(role)
                .bind(org.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn memberships(&self, user: UserId) -> Result<Vec<Membership>> {
                let sql = format!(
                    "SELECT {ORG_COLUMNS}, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id \
                     WHERE m.user_id = $1 ORDER BY o.created_at, o.id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(Membership { org: org_row(r)?, role: r.try_get("role")? }))
                    .collect()
            }

            async fn membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>> {
                let sql = format!(
                    "SELECT {ORG_COLUMNS}, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id \
                     WHERE m.user_id = $1 AND m.org_id = $2"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.to_string())
                    .bind(org.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Ok(Membership { org: org_row(&r)?, role: r.try_get("role")? }))
                    .transpose()
            }

            async fn create_automation(&self, a: &AutomationRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO automations (id, org_id, name, description, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(a.id.to_string())
                .bind(a.org_id.to_string())
                .bind(&a.name)
                .bind(&a.description)
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&self.pool)
                .await
                .map_err(conflict("name"))?;
                Ok(())
            }

            async fn get_automation(&self, org: OrgId, id: AutomationId) -> Result<AutomationRow> {
                let sql = format!("SELECT {AUTOMATION_COLUMNS} FROM automations WHERE org_id = $1 AND id = $2");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                automation_row(&row)
            }

            async fn find_automation_by_name(&self, org: OrgId, name: &str) -> Result<Option<AutomationRow>> {
                let sql = format!("SELECT {AUTOMATION_COLUMNS} FROM automations WHERE org_id = $1 AND name = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.to_string())
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(automation_row)
                    .transpose()
            }

            async fn list_automations(&self, org: OrgId) -> Result<Vec<AutomationRow>> {
                let sql = format!("SELECT {AUTOMATION_COLUMNS} FROM automations WHERE org_id = $1 ORDER BY name");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(automation_row).collect()
            }

            async fn update_automation(&self, a: &AutomationRow) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE automations SET name = $1, description = $2, updated_at = $3 \
                     WHERE org_id = $4 AND id = $5",
                )
                .bind(&a.name)
                .bind(&a.description)
                .bind(a.updated_at)
                .bind(a.org_id.to_string())
                .bind(a.id.to_string())
                .execute(&self.pool)
                .await
                .map_err(conflict("name"))?;
                expect_one(done.rows_affected())
            }

            async fn delete_automation(&self, org: OrgId, id: AutomationId) -> Result<()> {
                let done = sqlx::query("DELETE FROM automations WHERE org_id = $1 AND id = $2")
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                expect_one(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_store;
