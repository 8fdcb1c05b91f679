//! SQL for secret provider credentials, environment variables, their assignment to automations
//! and the resolved static values; shared by both backends, implements
//! [`SecretStore`](crate::SecretStore).

macro_rules! impl_secret_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::{AutomationId, EnvVarId, OrgId, SecretProviderId};
            use sqlx::Row as _;

            use crate::model::*;
            use crate::sql::{conflict, conflict_among, expect_one, parse_id, parse_opt_id};
            use crate::{Result, SecretStore, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            const PROVIDER_COLUMNS: &str = "id, org_id, name, provider, auth, wi_config_id, settings, sealed_static, default_for_provider, created_at, updated_at";
            const ENV_COLUMNS: &str = "id, org_id, key, source, provider, credential_id, secret_name, secret, value, sealed_value, created_at, updated_at";
            const PROVIDER_CONFLICTS: &[(&str, &str)] =
                &[("default", "default_for_provider"), (".provider", "default_for_provider")];

            fn provider_row(r: &DbRow) -> Result<SecretProviderRow> {
                Ok(SecretProviderRow {
                    id: parse_id("secret_providers.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id("secret_providers.org_id", &r.try_get::<String, _>("org_id")?)?,
                    name: r.try_get("name")?,
                    provider: r.try_get("provider")?,
                    auth: r.try_get("auth")?,
                    wi_config_id: parse_opt_id("secret_providers.wi_config_id", r.try_get("wi_config_id")?)?,
                    settings: r.try_get("settings")?,
                    sealed_static: r.try_get("sealed_static")?,
                    default_for_provider: r.try_get("default_for_provider")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn env_row(r: &DbRow) -> Result<EnvVarRow> {
                Ok(EnvVarRow {
                    id: parse_id("environment_variables.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id("environment_variables.org_id", &r.try_get::<String, _>("org_id")?)?,
                    key: r.try_get("key")?,
                    source: r.try_get("source")?,
                    provider: r.try_get("provider")?,
                    credential_id: parse_opt_id("environment_variables.credential_id", r.try_get("credential_id")?)?,
                    secret_name: r.try_get("secret_name")?,
                    secret: r.try_get("secret")?,
                    value: r.try_get("value")?,
                    sealed_value: r.try_get("sealed_value")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            type Tx<'t> = sqlx::Transaction<'t, $db>;

            /// The assignment inside `tx`: the automation and every variable must be `org`'s.
            async fn assign_in(
                tx: &mut Tx<'_>,
                org: OrgId,
                automation: AutomationId,
                vars: &[EnvVarId],
            ) -> Result<()> {
                // The automation must be the organization's; every variable too (checked below).
                let owned = sqlx::query("SELECT 1 FROM automations WHERE org_id = $1 AND id = $2")
                    .bind(org.to_string())
                    .bind(automation.to_string())
                    .fetch_optional(&mut **tx)
                    .await?;
                if owned.is_none() {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM automation_environment_variables WHERE automation_id = $1")
                    .bind(automation.to_string())
                    .execute(&mut **tx)
                    .await?;
                for var in vars {
                    let done = sqlx::query(
                        "INSERT INTO automation_environment_variables (automation_id, env_var_id) SELECT $1, id FROM environment_variables WHERE org_id = $2 AND id = $3 ON CONFLICT DO NOTHING",
                    )
                    .bind(automation.to_string())
                    .bind(org.to_string())
                    .bind(var.to_string())
                    .execute(&mut **tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                }
                Ok(())
            }

            /// The automation's resolved static values, replaced inside `tx`.
            async fn replace_values_in(
                tx: &mut Tx<'_>,
                automation: AutomationId,
                values: &[ResolvedValue],
            ) -> Result<()> {
                sqlx::query("DELETE FROM resolved_static_values WHERE automation_id = $1")
                    .bind(automation.to_string())
                    .execute(&mut **tx)
                    .await?;
                for v in values {
                    sqlx::query(
                        "INSERT INTO resolved_static_values (automation_id, env_var_id, sealed_value, resolved_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(automation.to_string())
                    .bind(v.env_var_id.to_string())
                    .bind(&v.sealed_value)
                    .bind(v.resolved_at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            #[async_trait]
            impl SecretStore for $store {
                async fn create_secret_provider(&self, row: &SecretProviderRow) -> Result<()> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO secret_providers ({PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    )))
                    .bind(row.id.to_string())
                    .bind(row.org_id.to_string())
                    .bind(&row.name)
                    .bind(&row.provider)
                    .bind(&row.auth)
                    .bind(row.wi_config_id.map(|c| c.to_string()))
                    .bind(&row.settings)
                    .bind(&row.sealed_static)
                    .bind(row.default_for_provider)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_among(PROVIDER_CONFLICTS, "name"))?;
                    Ok(())
                }

                async fn get_secret_provider(
                    &self,
                    org: OrgId,
                    id: SecretProviderId,
                ) -> Result<SecretProviderRow> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {PROVIDER_COLUMNS} FROM secret_providers WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    provider_row(&row)
                }

                async fn find_secret_provider_by_name(
                    &self,
                    org: OrgId,
                    name: &str,
                ) -> Result<Option<SecretProviderRow>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {PROVIDER_COLUMNS} FROM secret_providers WHERE org_id = $1 AND name = $2"
                    )))
                    .bind(org.to_string())
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(provider_row)
                    .transpose()
                }

                async fn list_secret_providers(&self, org: OrgId) -> Result<Vec<SecretProviderRow>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {PROVIDER_COLUMNS} FROM secret_providers WHERE org_id = $1 ORDER BY name"
                    )))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(provider_row).collect()
                }

                async fn update_secret_provider(&self, row: &SecretProviderRow) -> Result<()> {
                    let done = sqlx::query(
                        "UPDATE secret_providers SET name = $1, auth = $2, wi_config_id = $3, settings = $4, sealed_static = $5, default_for_provider = $6, updated_at = $7 WHERE org_id = $8 AND id = $9",
                    )
                    .bind(&row.name)
                    .bind(&row.auth)
                    .bind(row.wi_config_id.map(|c| c.to_string()))
                    .bind(&row.settings)
                    .bind(&row.sealed_static)
                    .bind(row.default_for_provider)
                    .bind(row.updated_at)
                    .bind(row.org_id.to_string())
                    .bind(row.id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_among(PROVIDER_CONFLICTS, "name"))?;
                    expect_one(done.rows_affected())
                }

                async fn delete_secret_provider(&self, org: OrgId, id: SecretProviderId) -> Result<()> {
                    let done = sqlx::query("DELETE FROM secret_providers WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await
                        .map_err(conflict("id"))?;
                    expect_one(done.rows_affected())
                }

                async fn create_env_var(&self, row: &EnvVarRow) -> Result<()> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO environment_variables ({ENV_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    )))
                    .bind(row.id.to_string())
                    .bind(row.org_id.to_string())
                    .bind(&row.key)
                    .bind(&row.source)
                    .bind(&row.provider)
                    .bind(row.credential_id.map(|c| c.to_string()))
                    .bind(&row.secret_name)
                    .bind(row.secret)
                    .bind(&row.value)
                    .bind(&row.sealed_value)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("key"))?;
                    Ok(())
                }

                async fn get_env_var(&self, org: OrgId, id: EnvVarId) -> Result<EnvVarRow> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ENV_COLUMNS} FROM environment_variables WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    env_row(&row)
                }

                async fn find_env_var_by_key(&self, org: OrgId, key: &str) -> Result<Option<EnvVarRow>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ENV_COLUMNS} FROM environment_variables WHERE org_id = $1 AND key = $2"
                    )))
                    .bind(org.to_string())
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(env_row)
                    .transpose()
                }

                async fn list_env_vars(&self, org: OrgId) -> Result<Vec<EnvVarRow>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {ENV_COLUMNS} FROM environment_variables WHERE org_id = $1 ORDER BY key"
                    )))
                    .bind(org.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(env_row).collect()
                }

                async fn list_orgs(&self) -> Result<Vec<OrgRow>> {
                    let rows = sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY created_at, id")
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(OrgRow {
                                id: parse_id("orgs.id", &r.try_get::<String, _>("id")?)?,
                                name: r.try_get("name")?,
                                created_at: r.try_get("created_at")?,
                            })
                        })
                        .collect()
                }

                async fn update_env_var(&self, row: &EnvVarRow) -> Result<()> {
                    let done = sqlx::query(
                        "UPDATE environment_variables SET key = $1, source = $2, provider = $3, credential_id = $4, secret_name = $5, secret = $6, value = $7, sealed_value = $8, updated_at = $9 WHERE org_id = $10 AND id = $11",
                    )
                    .bind(&row.key)
                    .bind(&row.source)
                    .bind(&row.provider)
                    .bind(row.credential_id.map(|c| c.to_string()))
                    .bind(&row.secret_name)
                    .bind(row.secret)
                    .bind(&row.value)
                    .bind(&row.sealed_value)
                    .bind(row.updated_at)
                    .bind(row.org_id.to_string())
                    .bind(row.id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("key"))?;
                    expect_one(done.rows_affected())
                }

                async fn delete_env_var(&self, org: OrgId, id: EnvVarId) -> Result<()> {
                    let done = sqlx::query("DELETE FROM environment_variables WHERE org_id = $1 AND id = $2")
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await?;
                    expect_one(done.rows_affected())
                }

                async fn assign_env_vars(
                    &self,
                    org: OrgId,
                    automation: AutomationId,
                    vars: &[EnvVarId],
                ) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    assign_in(&mut tx, org, automation, vars).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn assign_env_vars_resolved(
                    &self,
                    org: OrgId,
                    automation: AutomationId,
                    vars: &[EnvVarId],
                    values: &[ResolvedValue],
                ) -> Result<()> {
                    if values.iter().any(|v| !vars.contains(&v.env_var_id)) {
                        return Err(StoreError::NotFound);
                    }
                    let mut tx = self.begin_write().await?;
                    assign_in(&mut tx, org, automation, vars).await?;
                    replace_values_in(&mut tx, automation, values).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn automation_env_vars(
                    &self,
                    org: OrgId,
                    automation: AutomationId,
                ) -> Result<Vec<EnvVarRow>> {
                    let columns = ENV_COLUMNS
                        .split(", ")
                        .map(|c| format!("v.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {columns} FROM environment_variables v JOIN automation_environment_variables a ON a.env_var_id = v.id WHERE v.org_id = $1 AND a.automation_id = $2 ORDER BY v.key"
                    )))
                    .bind(org.to_string())
                    .bind(automation.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(env_row).collect()
                }

                async fn replace_resolved_values(
                    &self,
                    automation: AutomationId,
                    values: &[ResolvedValue],
                ) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    replace_values_in(&mut tx, automation, values).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn resolved_values(&self, automation: AutomationId) -> Result<Vec<ResolvedValue>> {
                    let rows = sqlx::query(
                        "SELECT env_var_id, sealed_value, resolved_at FROM resolved_static_values WHERE automation_id = $1",
                    )
                    .bind(automation.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(ResolvedValue {
                                env_var_id: parse_id("resolved_static_values.env_var_id", &r.try_get::<String, _>("env_var_id")?)?,
                                sealed_value: r.try_get("sealed_value")?,
                                resolved_at: r.try_get("resolved_at")?,
                            })
                        })
                        .collect()
                }
            }
        };
    };
}

pub(crate) use impl_secret_store;
