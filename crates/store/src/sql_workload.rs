//! SQL for workload identity configs and LLM connections, shared by both backends like
//! [`crate::sql`]; implements [`WorkloadStore`](crate::WorkloadStore).

macro_rules! impl_workload_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::{AutomationId, LlmConnectionId, OrgId, WorkloadIdentityConfigId};
            use sqlx::Row as _;

            use crate::model::*;
            use crate::sql::{conflict, conflict_among, expect_one, parse_id, parse_opt_id};
            use crate::{Result, StoreError, WorkloadStore};

            type DbRow = <$db as sqlx::Database>::Row;

            const WI_COLUMNS: &str =
                "id, org_id, name, cloud, settings, default_for_cloud, created_at, updated_at, subject";
            const LLM_COLUMNS: &str = "id, org_id, name, provider, wi_config_id, service_account_email, model, env, created_at, updated_at";
            const WI_CONFLICTS: &[(&str, &str)] =
                &[("default", "default_for_cloud"), (".cloud", "default_for_cloud")];

            fn wi_row(r: &DbRow, automations: Vec<AutomationId>) -> Result<WiConfigRow> {
                Ok(WiConfigRow {
                    id: parse_id("workload_identity_configs.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id(
                        "workload_identity_configs.org_id",
                        &r.try_get::<String, _>("org_id")?,
                    )?,
                    name: r.try_get("name")?,
                    cloud: r.try_get("cloud")?,
                    settings: r.try_get("settings")?,
                    default_for_cloud: r.try_get("default_for_cloud")?,
                    automations,
                    subject: r.try_get("subject")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn llm_row(r: &DbRow, automations: Vec<AutomationId>) -> Result<LlmConnectionRow> {
                Ok(LlmConnectionRow {
                    id: parse_id("llm_connections.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id("llm_connections.org_id", &r.try_get::<String, _>("org_id")?)?,
                    name: r.try_get("name")?,
                    provider: r.try_get("provider")?,
                    wi_config_id: parse_opt_id("llm_connections.wi_config_id", r.try_get("wi_config_id")?)?,
                    service_account_email: r.try_get("service_account_email")?,
                    model: r.try_get("model")?,
                    env: r.try_get("env")?,
                    automations,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            impl $store {
                /// The automation links of every row of `owners` in the organization of `rows`,
                /// by owner id: one query however many rows (a kickoff lists them all).
                async fn links(
                    &self,
                    table: &'static str,
                    owner_column: &'static str,
                    owners: &'static str,
                    rows: &[DbRow],
                ) -> Result<std::collections::HashMap<String, Vec<AutomationId>>> {
                    let mut by_owner: std::collections::HashMap<String, Vec<AutomationId>> =
                        std::collections::HashMap::new();
                    let Some(first) = rows.first() else {
                        return Ok(by_owner);
                    };
                    let org: String = first.try_get("org_id")?;
                    let sql = format!(
                        "SELECT l.{owner_column} AS owner, l.automation_id FROM {table} l JOIN {owners} o ON o.id = l.{owner_column} WHERE o.org_id = $1 ORDER BY l.automation_id"
                    );
                    let links = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org)
                        .fetch_all(&self.pool)
                        .await?;
                    for link in &links {
                        by_owner
                            .entry(link.try_get("owner")?)
                            .or_default()
                            .push(parse_id(table, &link.try_get::<String, _>("automation_id")?)?);
                    }
                    Ok(by_owner)
                }

                async fn wi_rows(&self, rows: Vec<DbRow>) -> Result<Vec<WiConfigRow>> {
                    let mut links = self
                        .links("workload_identity_config_automations", "config_id", "workload_identity_configs", &rows)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            let id: String = r.try_get("id")?;
                            wi_row(r, links.remove(&id).unwrap_or_default())
                        })
                        .collect()
                }

                async fn llm_rows(&self, rows: Vec<DbRow>) -> Result<Vec<LlmConnectionRow>> {
                    let mut links = self
                        .links("llm_connection_automations", "connection_id", "llm_connections", &rows)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            let id: String = r.try_get("id")?;
                            llm_row(r, links.remove(&id).unwrap_or_default())
                        })
                        .collect()
                }
            }

            /// Replaces the automation links of `owner` inside `tx`.
            async fn relink(
                tx: &mut sqlx::Transaction<'_, $db>,
                table: &'static str,
                owner_column: &'static str,
                owner: &str,
                automations: &[AutomationId],
            ) -> Result<()> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE {owner_column} = $1"
                )))
                .bind(owner)
                .execute(&mut **tx)
                .await?;
                for automation in automations {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO {table} ({owner_column}, automation_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                    )))
                    .bind(owner)
                    .bind(automation.to_string())
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            #[async_trait]
            impl WorkloadStore for $store {
                async fn create_wi_config(&self, row: &WiConfigRow) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO workload_identity_configs ({WI_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    )))
                    .bind(row.id.to_string())
                    .bind(row.org_id.to_string())
                    .bind(&row.name)
                    .bind(&row.cloud)
                    .bind(&row.settings)
                    .bind(row.default_for_cloud)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .bind(&row.subject)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict_among(WI_CONFLICTS, "name"))?;
                    let id = row.id.to_string();
                    relink(&mut tx, "workload_identity_config_automations", "config_id", &id, &row.automations).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn get_wi_config(
                    &self,
                    org: OrgId,
                    id: WorkloadIdentityConfigId,
                ) -> Result<WiConfigRow> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {WI_COLUMNS} FROM workload_identity_configs WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    self.wi_rows(vec![row]).await?.pop().ok_or(StoreError::NotFound)
                }

                async fn find_wi_config_by_name(
                    &self,
                    org: OrgId,
                    name: &str,
                ) -> Result<Option<WiConfigRow>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {WI_COLUMNS} FROM workload_identity_configs WHERE org_id = $1 AND name = $2"
                    )))
                    .bind(org.to_string())
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(self.wi_rows(rows).await?.pop())
                }

                async fn list_wi_configs(&self, org: OrgId) -> Result<Vec<WiConfigRow>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {WI_COLUMNS} FROM workload_identity_configs WHERE org_id = $1 ORDER BY name"
                    )))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    self.wi_rows(rows).await
                }

                async fn update_wi_config(&self, row: &WiConfigRow) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE workload_identity_configs SET name = $1, settings = $2, default_for_cloud = $3, updated_at = $4, subject = $5 WHERE org_id = $6 AND id = $7",
                    )
                    .bind(&row.name)
                    .bind(&row.settings)
                    .bind(row.default_for_cloud)
                    .bind(row.updated_at)
                    .bind(&row.subject)
                    .bind(row.org_id.to_string())
                    .bind(row.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict_among(WI_CONFLICTS, "name"))?;
                    expect_one(done.rows_affected())?;
                    let id = row.id.to_string();
                    relink(&mut tx, "workload_identity_config_automations", "config_id", &id, &row.automations).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn delete_wi_config(
                    &self,
                    org: OrgId,
                    id: WorkloadIdentityConfigId,
                ) -> Result<()> {
                    let done = sqlx::query(
                        "DELETE FROM workload_identity_configs WHERE org_id = $1 AND id = $2",
                    )
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("id"))?;
                    expect_one(done.rows_affected())
                }

                async fn create_llm_connection(&self, row: &LlmConnectionRow) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO llm_connections ({LLM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    )))
                    .bind(row.id.to_string())
                    .bind(row.org_id.to_string())
                    .bind(&row.name)
                    .bind(&row.provider)
                    .bind(row.wi_config_id.map(|c| c.to_string()))
                    .bind(&row.service_account_email)
                    .bind(&row.model)
                    .bind(&row.env)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict("name"))?;
                    let id = row.id.to_string();
                    relink(&mut tx, "llm_connection_automations", "connection_id", &id, &row.automations).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn get_llm_connection(
                    &self,
                    org: OrgId,
                    id: LlmConnectionId,
                ) -> Result<LlmConnectionRow> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {LLM_COLUMNS} FROM llm_connections WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    self.llm_rows(vec![row]).await?.pop().ok_or(StoreError::NotFound)
                }

                async fn find_llm_connection_by_name(
                    &self,
                    org: OrgId,
                    name: &str,
                ) -> Result<Option<LlmConnectionRow>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {LLM_COLUMNS} FROM llm_connections WHERE org_id = $1 AND name = $2"
                    )))
                    .bind(org.to_string())
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(self.llm_rows(rows).await?.pop())
                }

                async fn list_llm_connections(&self, org: OrgId) -> Result<Vec<LlmConnectionRow>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {LLM_COLUMNS} FROM llm_connections WHERE org_id = $1 ORDER BY name"
                    )))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    self.llm_rows(rows).await
                }

                async fn update_llm_connection(&self, row: &LlmConnectionRow) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE llm_connections SET name = $1, provider = $2, wi_config_id = $3, service_account_email = $4, model = $5, env = $6, updated_at = $7 WHERE org_id = $8 AND id = $9",
                    )
                    .bind(&row.name)
                    .bind(&row.provider)
                    .bind(row.wi_config_id.map(|c| c.to_string()))
                    .bind(&row.service_account_email)
                    .bind(&row.model)
                    .bind(&row.env)
                    .bind(row.updated_at)
                    .bind(row.org_id.to_string())
                    .bind(row.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict("name"))?;
                    expect_one(done.rows_affected())?;
                    let id = row.id.to_string();
                    relink(&mut tx, "llm_connection_automations", "connection_id", &id, &row.automations).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn delete_llm_connection(&self, org: OrgId, id: LlmConnectionId) -> Result<()> {
                    let done = sqlx::query("DELETE FROM llm_connections WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await?;
                    expect_one(done.rows_affected())
                }
            }
        };
    };
}

pub(crate) use impl_workload_store;
