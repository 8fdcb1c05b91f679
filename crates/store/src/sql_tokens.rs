//! SQL for bearer tokens (personal and automation) and the one-time setup link, shared by both
//! backends like [`crate::sql`]; implements [`TokenStore`](crate::TokenStore).

macro_rules! impl_token_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::{AutomationId, OrgId, TokenId, UserId};
            use sqlx::Row as _;

            use crate::model::*;
            use crate::sql::{conflict, parse_id, parse_opt_id};
            use crate::{Result, StoreError, TokenStore};

            type DbRow = <$db as sqlx::Database>::Row;

            const TOKEN_COLUMNS: &str = "id, kind, hash, prefix, name, user_id, org_id, automation_id, created_at, expires_at, revoked_at";

            fn token_row(r: &DbRow) -> Result<TokenRow> {
                let kind: String = r.try_get("kind")?;
                Ok(TokenRow {
                    id: parse_id("api_tokens.id", &r.try_get::<String, _>("id")?)?,
                    kind: TokenKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown token kind {kind:?}")))?,
                    hash: r.try_get("hash")?,
                    prefix: r.try_get("prefix")?,
                    name: r.try_get("name")?,
                    user_id: parse_opt_id("api_tokens.user_id", r.try_get("user_id")?)?,
                    org_id: parse_opt_id("api_tokens.org_id", r.try_get("org_id")?)?,
                    automation_id: parse_opt_id("api_tokens.automation_id", r.try_get("automation_id")?)?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }

            #[async_trait]
            impl TokenStore for $store {
                async fn insert_token(&self, t: &TokenRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO api_tokens (id, kind, hash, prefix, name, user_id, org_id, automation_id, \
                         created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(t.id.to_string())
                    .bind(t.kind.as_str())
                    .bind(&t.hash)
                    .bind(&t.prefix)
                    .bind(&t.name)
                    .bind(t.user_id.map(|u| u.to_string()))
                    .bind(t.org_id.map(|o| o.to_string()))
                    .bind(t.automation_id.map(|a| a.to_string()))
                    .bind(t.created_at)
                    .bind(t.expires_at)
                    .bind(t.revoked_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("token"))?;
                    Ok(())
                }

                async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
                    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(token_row)
                        .transpose()
                }

                async fn resolve_token(&self, hash: &str) -> Result<Option<ResolvedToken>> {
                    let sql = format!(
                        "SELECT t.{}, a.name AS a_name, a.description AS a_description, \
                         a.created_at AS a_created_at, a.updated_at AS a_updated_at, \
                         u.email AS u_email, u.created_at AS u_created_at \
                         FROM api_tokens t \
                         LEFT JOIN automations a ON a.id = t.automation_id AND a.org_id = t.org_id \
                         LEFT JOIN users u ON u.id = t.user_id \
                         WHERE t.hash = $1",
                        TOKEN_COLUMNS.replace(", ", ", t.")
                    );
                    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(&self.pool).await? else {
                        return Ok(None);
                    };
                    let token = token_row(&r)?;
                    let automation = match (token.automation_id, token.org_id, r.try_get::<Option<String>, _>("a_name")?) {
                        (Some(id), Some(org_id), Some(name)) => Some(AutomationRow {
                            id,
                            org_id,
                            name,
                            description: r.try_get("a_description")?,
                            created_at: r.try_get("a_created_at")?,
                            updated_at: r.try_get("a_updated_at")?,
                        }),
                        _ => None,
                    };
                    let user = match (token.user_id, r.try_get::<Option<String>, _>("u_email")?) {
                        (Some(id), Some(email)) => Some(UserRow { id, email, created_at: r.try_get("u_created_at")? }),
                        _ => None,
                    };
                    Ok(Some(ResolvedToken { token, automation, user }))
                }

                async fn list_personal_tokens(&self, user: UserId) -> Result<Vec<TokenRow>> {
                    let sql = format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE kind = 'personal' AND user_id = $1 ORDER BY created_at, id"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(user.to_string())
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(token_row).collect()
                }

                async fn list_automation_tokens(&self, org: OrgId, automation: AutomationId) -> Result<Vec<TokenRow>> {
                    let sql = format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE kind = 'automation' AND org_id = $1 \
                         AND automation_id = $2 ORDER BY created_at, id"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(automation.to_string())
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(token_row).collect()
                }

                async fn revoke_personal_token(&self, user: UserId, id: TokenId, now: i64) -> Result<TokenRow> {
                    let sql = format!(
                        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) \
                         WHERE kind = 'personal' AND user_id = $2 AND id = $3 RETURNING {TOKEN_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(user.to_string())
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    token_row(&row)
                }

                async fn revoke_automation_token(
                    &self,
                    org: OrgId,
                    automation: AutomationId,
                    id: TokenId,
                    now: i64,
                ) -> Result<TokenRow> {
                    let sql = format!(
                        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE kind = 'automation' \
                         AND org_id = $2 AND automation_id = $3 AND id = $4 RETURNING {TOKEN_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(org.to_string())
                        .bind(automation.to_string())
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    token_row(&row)
                }

                async fn replace_setup_token(&self, hash: &str, expires_at: i64) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM setup_tokens").execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO setup_tokens (hash, expires_at) VALUES ($1, $2)")
                        .bind(hash)
                        .bind(expires_at)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn consume_setup_token(&self, hash: &str, now: i64) -> Result<Option<i64>> {
                    let row = sqlx::query("DELETE FROM setup_tokens WHERE hash = $1 RETURNING expires_at")
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(match row {
                        Some(r) => Some(r.try_get::<i64, _>("expires_at")?).filter(|&at| now < at),
                        None => None,
                    })
                }
            }
        };
    };
}

pub(crate) use impl_token_store;
