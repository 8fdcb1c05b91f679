//! SQL for roles, members and entity permissions, shared by both backends like [`crate::sql`];
//! implements [`RbacStore`](crate::RbacStore).

use crate::rbac::{AccessListed, PrincipalRef};
use crate::sql::parse_id;
use crate::{Result, StoreError};

/// The table, key column and owning table of an access list.
pub(crate) fn access_table(kind: AccessListed) -> (&'static str, &'static str, &'static str) {
    match kind {
        AccessListed::EnvironmentVariable => (
            "environment_variable_access",
            "env_var_id",
            "environment_variables",
        ),
        AccessListed::LlmConnection => {
            ("llm_connection_access", "connection_id", "llm_connections")
        }
    }
}

/// A principal from its `user_id` / `role_id` columns (exactly one is set, by a CHECK).
pub(crate) fn principal(user: Option<String>, role: Option<String>) -> Result<PrincipalRef> {
    match (user, role) {
        (Some(u), None) => Ok(PrincipalRef::User(parse_id("user_id", &u)?)),
        (None, Some(r)) => Ok(PrincipalRef::Role(parse_id("role_id", &r)?)),
        _ => Err(StoreError::Corrupt(
            "an entity permission names both or neither of a user and a role".into(),
        )),
    }
}

/// The two id columns of a principal.
pub(crate) fn principal_columns(p: &PrincipalRef) -> (Option<String>, Option<String>) {
    match p {
        PrincipalRef::User(u) => (Some(u.to_string()), None),
        PrincipalRef::Role(r) => (None, Some(r.to_string())),
    }
}

macro_rules! impl_rbac_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::{AutomationId, OrgId, RoleId, UserId};
            use sqlx::Row as _;
            use uuid::Uuid;

            use crate::model::UserRow;
            use crate::rbac::*;
            use crate::sql::{conflict, expect_one, parse_id};
            use crate::sql_rbac::{access_table, principal, principal_columns};
            use crate::{Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            const ROLE_COLUMNS: &str =
                "id, org_id, name, description, grants, predefined, created_at, updated_at";

            fn role_row(r: &DbRow) -> Result<RoleRow> {
                Ok(RoleRow {
                    id: parse_id("roles.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id("roles.org_id", &r.try_get::<String, _>("org_id")?)?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    grants: r.try_get("grants")?,
                    predefined: r.try_get("predefined")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn grant_row(r: &DbRow) -> Result<AutomationGrantRow> {
                let permissions: String = r.try_get("permissions")?;
                Ok(AutomationGrantRow {
                    principal: principal(r.try_get("user_id")?, r.try_get("role_id")?)?,
                    whitelisted: r.try_get("whitelisted")?,
                    permissions: permissions.split_whitespace().map(str::to_owned).collect(),
                })
            }

            /// Serialises membership changes of one organization: a no-op write takes the org
            /// row's lock on PostgreSQL (SQLite has one writer anyway), so two requests demoting
            /// two owners at once cannot both see the other still in place.
            async fn lock_org(
                tx: &mut sqlx::Transaction<'_, $db>,
                org: OrgId,
            ) -> Result<()> {
                let done = sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
                    .bind(org.to_string())
                    .execute(&mut **tx)
                    .await?;
                expect_one(done.rows_affected())
            }

            /// An organization keeps at least one owner; otherwise the change is `LastOwner`
            /// (and the transaction rolls back when dropped).
            async fn keep_an_owner(
                tx: &mut sqlx::Transaction<'_, $db>,
                org: OrgId,
            ) -> Result<()> {
                let owners: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = 'owner'",
                )
                .bind(org.to_string())
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
                if owners == 0 {
                    return Err(StoreError::LastOwner);
                }
                Ok(())
            }

            #[async_trait]
            impl crate::RbacStore for $store {
                async fn list_roles(&self, org: OrgId) -> Result<Vec<RoleRow>> {
                    // Predefined first (owner, member), then custom roles by name.
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ROLE_COLUMNS} FROM roles WHERE org_id = $1 \
                         ORDER BY predefined DESC, CASE name WHEN 'owner' THEN 0 ELSE 1 END, name"
                    )))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(role_row).collect()
                }

                async fn get_role(&self, org: OrgId, id: RoleId) -> Result<RoleRow> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ROLE_COLUMNS} FROM roles WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    role_row(&row)
                }

                async fn find_role_by_name(&self, org: OrgId, name: &str) -> Result<Option<RoleRow>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ROLE_COLUMNS} FROM roles WHERE org_id = $1 AND name = $2"
                    )))
                    .bind(org.to_string())
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(role_row)
                    .transpose()
                }

                async fn create_role(&self, row: &RoleRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO roles (id, org_id, name, description, grants, predefined, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(row.id.to_string())
                    .bind(row.org_id.to_string())
                    .bind(&row.name)
                    .bind(&row.description)
                    .bind(&row.grants)
                    .bind(row.predefined)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("name"))?;
                    Ok(())
                }

                async fn update_role(&self, row: &RoleRow, previous_name: &str) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE roles SET name = $1, description = $2, grants = $3, updated_at = $4 \
                         WHERE org_id = $5 AND id = $6",
                    )
                    .bind(&row.name)
                    .bind(&row.description)
                    .bind(&row.grants)
                    .bind(row.updated_at)
                    .bind(row.org_id.to_string())
                    .bind(row.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict("name"))?;
                    expect_one(done.rows_affected())?;
                    if previous_name != row.name {
                        sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND role = $3")
                            .bind(&row.name)
                            .bind(row.org_id.to_string())
                            .bind(previous_name)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn delete_role(&self, org: OrgId, id: RoleId, reassign_to: Option<&str>) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    let name: String = sqlx::query("SELECT name FROM roles WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?
                        .try_get("name")?;
                    match reassign_to {
                        Some(target) => {
                            sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND role = $3")
                                .bind(target)
                                .bind(org.to_string())
                                .bind(&name)
                                .execute(&mut *tx)
                                .await?;
                        }
                        None => {
                            let held: i64 = sqlx::query(
                                "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = $2",
                            )
                            .bind(org.to_string())
                            .bind(&name)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("n")?;
                            if held > 0 {
                                return Err(StoreError::InUse);
                            }
                        }
                    }
                    sqlx::query("DELETE FROM roles WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn list_members(&self, org: OrgId) -> Result<Vec<MemberRow>> {
                    let rows = sqlx::query(
                        "SELECT u.id, u.email, u.created_at, m.role, m.created_at AS joined_at \
                         FROM memberships m JOIN users u ON u.id = m.user_id \
                         WHERE m.org_id = $1 ORDER BY u.email",
                    )
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(MemberRow {
                                user: UserRow {
                                    id: parse_id("users.id", &r.try_get::<String, _>("id")?)?,
                                    email: r.try_get("email")?,
                                    created_at: r.try_get("created_at")?,
                                },
                                role: r.try_get("role")?,
                                joined_at: r.try_get("joined_at")?,
                            })
                        })
                        .collect()
                }

                async fn add_member(&self, org: OrgId, user: UserId, role: &str, now: i64) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(org.to_string())
                    .bind(user.to_string())
                    .bind(role)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(db) if db.is_unique_violation() => {
                            StoreError::Conflict { field: "email" }
                        }
                        _ => StoreError::Database(e),
                    })?;
                    Ok(())
                }

                async fn set_member_role(&self, org: OrgId, user: UserId, role: &str) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    lock_org(&mut tx, org).await?;
                    let done = sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
                        .bind(role)
                        .bind(org.to_string())
                        .bind(user.to_string())
                        .execute(&mut *tx)
                        .await?;
                    expect_one(done.rows_affected())?;
                    keep_an_owner(&mut tx, org).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn remove_member(&self, org: OrgId, user: UserId) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    lock_org(&mut tx, org).await?;
                    let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org.to_string())
                        .bind(user.to_string())
                        .execute(&mut *tx)
                        .await?;
                    expect_one(done.rows_affected())?;
                    keep_an_owner(&mut tx, org).await?;
                    // Entity permissions are the organization's; a person who leaves loses them,
                    // so rejoining later does not silently restore old access.
                    for (table, key, owner) in [
                        ("automation_grants", "automation_id", "automations"),
                        ("environment_variable_access", "env_var_id", "environment_variables"),
                        ("llm_connection_access", "connection_id", "llm_connections"),
                    ] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE user_id = $1 AND {key} IN (SELECT id FROM {owner} WHERE org_id = $2)"
                        )))
                        .bind(user.to_string())
                        .bind(org.to_string())
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn automation_access(&self, org: OrgId, automation: AutomationId) -> Result<AutomationAccessRow> {
                    let private = sqlx::query(
                        "SELECT v.visibility FROM automation_visibility v JOIN automations a ON a.id = v.automation_id \
                         WHERE a.org_id = $1 AND a.id = $2",
                    )
                    .bind(org.to_string())
                    .bind(automation.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.try_get::<String, _>("visibility"))
                    .transpose()?
                    .is_some_and(|v| v == "private");
                    let rows = sqlx::query(
                        "SELECT g.user_id, g.role_id, g.whitelisted, g.permissions FROM automation_grants g \
                         JOIN automations a ON a.id = g.automation_id WHERE a.org_id = $1 AND a.id = $2 \
                         ORDER BY g.principal",
                    )
                    .bind(org.to_string())
                    .bind(automation.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(AutomationAccessRow {
                        private,
                        grants: rows.iter().map(grant_row).collect::<Result<_>>()?,
                    })
                }

                async fn set_automation_access(
                    &self,
                    org: OrgId,
                    automation: AutomationId,
                    access: &AutomationAccessRow,
                ) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("SELECT id FROM automations WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(automation.to_string())
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    sqlx::query(
                        "INSERT INTO automation_visibility (automation_id, visibility) VALUES ($1, $2) \
                         ON CONFLICT (automation_id) DO UPDATE SET visibility = excluded.visibility",
                    )
                    .bind(automation.to_string())
                    .bind(if access.private { "private" } else { "public" })
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM automation_grants WHERE automation_id = $1")
                        .bind(automation.to_string())
                        .execute(&mut *tx)
                        .await?;
                    for g in &access.grants {
                        let (user, role) = principal_columns(&g.principal);
                        sqlx::query(
                            "INSERT INTO automation_grants (automation_id, principal, user_id, role_id, whitelisted, permissions) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(automation.to_string())
                        .bind(g.principal.key())
                        .bind(user)
                        .bind(role)
                        .bind(g.whitelisted)
                        .bind(g.permissions.join(" "))
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict("principal"))?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn org_automation_access(&self, org: OrgId) -> Result<Vec<(AutomationId, AutomationAccessRow)>> {
                    let mut all: std::collections::BTreeMap<AutomationId, AutomationAccessRow> = Default::default();
                    let rows = sqlx::query(
                        "SELECT v.automation_id, v.visibility FROM automation_visibility v \
                         JOIN automations a ON a.id = v.automation_id WHERE a.org_id = $1",
                    )
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    for r in &rows {
                        let id = parse_id("automation_visibility.automation_id", &r.try_get::<String, _>("automation_id")?)?;
                        all.entry(id).or_default().private = r.try_get::<String, _>("visibility")? == "private";
                    }
                    let rows = sqlx::query(
                        "SELECT g.automation_id, g.user_id, g.role_id, g.whitelisted, g.permissions FROM automation_grants g \
                         JOIN automations a ON a.id = g.automation_id WHERE a.org_id = $1 ORDER BY g.principal",
                    )
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    for r in &rows {
                        let id = parse_id("automation_grants.automation_id", &r.try_get::<String, _>("automation_id")?)?;
                        all.entry(id).or_default().grants.push(grant_row(r)?);
                    }
                    Ok(all.into_iter().collect())
                }

                async fn access_list(&self, org: OrgId, kind: AccessListed, id: Uuid) -> Result<Vec<PrincipalRef>> {
                    let (table, key, owner) = access_table(kind);
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT l.user_id, l.role_id FROM {table} l JOIN {owner} o ON o.id = l.{key} \
                         WHERE o.org_id = $1 AND o.id = $2 ORDER BY l.principal"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| principal(r.try_get("user_id")?, r.try_get("role_id")?))
                        .collect()
                }

                async fn set_access_list(
                    &self,
                    org: OrgId,
                    kind: AccessListed,
                    id: Uuid,
                    principals: &[PrincipalRef],
                ) -> Result<()> {
                    let (table, key, owner) = access_table(kind);
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT id FROM {owner} WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE {key} = $1")))
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    for p in principals {
                        let (user, role) = principal_columns(p);
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "INSERT INTO {table} ({key}, principal, user_id, role_id) VALUES ($1, $2, $3, $4)"
                        )))
                        .bind(id.to_string())
                        .bind(p.key())
                        .bind(user)
                        .bind(role)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict("principal"))?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn org_access_lists(&self, org: OrgId, kind: AccessListed) -> Result<Vec<(Uuid, PrincipalRef)>> {
                    let (table, key, owner) = access_table(kind);
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT l.{key} AS entity, l.user_id, l.role_id FROM {table} l JOIN {owner} o ON o.id = l.{key} \
                         WHERE o.org_id = $1 ORDER BY l.{key}, l.principal"
                    )))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok((
                                parse_id(key, &r.try_get::<String, _>("entity")?)?,
                                principal(r.try_get("user_id")?, r.try_get("role_id")?)?,
                            ))
                        })
                        .collect()
                }
            }
        };
    };
}

pub(crate) use impl_rbac_store;
