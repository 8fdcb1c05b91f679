//! The SQL shared by both backends. The statements are identical on SQLite and PostgreSQL (both
//! take `$n` placeholders, `ON CONFLICT` and `RETURNING`), so one macro implements [`Store`] for
//! each pool type; what really differs — how an audit append is serialised — is a parameter.
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

/// Maps a unique-index violation to `Conflict { field }`, anything else to `Database`.
pub(crate) fn conflict(field: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { field },
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
        backend = $backend:literal,
        // Starts the transaction of an audit append.
        begin_audit = $begin:literal,
        // Runs first inside it, to serialise appends across processes ("" for none).
        lock_audit = $lock:literal $(,)?
    ) => {
        use async_trait::async_trait;
        use keyward_core::{AutomationId, OrgId, TokenId, UserId};
        use sqlx::Row as _;

        use crate::model::*;
        use crate::sql::{conflict, expect_one, parse_id, parse_opt_id};
        use crate::{Result, Store, StoreError};

        type DbRow = <$db as sqlx::Database>::Row;

        const ORG_COLUMNS: &str = "o.id, o.name, o.created_at";
        const TOKEN_COLUMNS: &str = "id, kind, hash, prefix, name, user_id, org_id, automation_id, created_at, expires_at, revoked_at";
        const AUTOMATION_COLUMNS: &str = "id, org_id, name, description, created_at, updated_at";
        const KEY_COLUMNS: &str = "kid, alg, source, fingerprint, public_jwk, private_key, published_at, activates_at, activation_recorded, retires_at, retired_at";
        const AUDIT_COLUMNS: &str = "seq, at_ms, kind, org_id, actor, data, prev_hash, hash";

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

        fn key_row(r: &DbRow) -> Result<SigningKeyRow> {
            let source: String = r.try_get("source")?;
            Ok(SigningKeyRow {
                kid: r.try_get("kid")?,
                alg: r.try_get("alg")?,
                source: KeySource::parse(&source)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown key source {source:?}")))?,
                fingerprint: r.try_get("fingerprint")?,
                public_jwk: r.try_get("public_jwk")?,
                sealed_private_key: r.try_get("private_key")?,
                published_at: r.try_get("published_at")?,
                activates_at: r.try_get("activates_at")?,
                activation_recorded: r.try_get("activation_recorded")?,
                retires_at: r.try_get("retires_at")?,
                retired_at: r.try_get("retired_at")?,
            })
        }

        fn audit_row(r: &DbRow) -> Result<AuditRow> {
            Ok(AuditRow {
                seq: r.try_get("seq")?,
                at_ms: r.try_get("at_ms")?,
                kind: r.try_get("kind")?,
                org_id: parse_opt_id("audit_events.org_id", r.try_get("org_id")?)?,
                actor: r.try_get("actor")?,
                data: r.try_get("data")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
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
                let mut tx = self.pool.begin().await?;
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
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM setup_tokens").execute(&mut *tx).await?;
                sqlx::query("INSERT INTO setup_tokens (hash, expires_at) VALUES ($1, $2)")
                    .bind(hash)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn consume_setup_token(&self, hash: &str, now: i64) -> Result<bool> {
                let row = sqlx::query("DELETE FROM setup_tokens WHERE hash = $1 RETURNING expires_at")
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => now < r.try_get::<i64, _>("expires_at")?,
                    None => false,
                })
            }

            async fn insert_signing_key(&self, k: &SigningKeyRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, source, fingerprint, public_jwk, private_key, \
                     published_at, activates_at, activation_recorded, retires_at, retired_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&k.kid)
                .bind(&k.alg)
                .bind(k.source.as_str())
                .bind(&k.fingerprint)
                .bind(&k.public_jwk)
                .bind(k.sealed_private_key.as_deref())
                .bind(k.published_at)
                .bind(k.activates_at)
                .bind(k.activation_recorded)
                .bind(k.retires_at)
                .bind(k.retired_at)
                .execute(&self.pool)
                .await
                .map_err(conflict("key"))?;
                Ok(())
            }

            async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
                let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY activates_at, published_at, kid");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
                rows.iter().map(key_row).collect()
            }

            async fn record_key_activation(&self, kid: &str) -> Result<()> {
                let done = sqlx::query("UPDATE signing_keys SET activation_recorded = $1 WHERE kid = $2")
                    .bind(true)
                    .bind(kid)
                    .execute(&self.pool)
                    .await?;
                expect_one(done.rows_affected())
            }

            async fn schedule_key_retirement(&self, kid: &str, retires_at: i64) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET retires_at = $1 WHERE kid = $2 AND retires_at IS NULL",
                )
                .bind(retires_at)
                .bind(kid)
                .execute(&self.pool)
                .await?;
                expect_one(done.rows_affected())
            }

            async fn retire_key(&self, kid: &str, now: i64) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET retired_at = $1, private_key = NULL WHERE kid = $2 AND retired_at IS NULL",
                )
                .bind(now)
                .bind(kid)
                .execute(&self.pool)
                .await?;
                expect_one(done.rows_affected())
            }

            async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool> {
                let row = sqlx::query(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 \
                     RETURNING holder",
                )
                .bind(name)
                .bind(holder)
                .bind(now + ttl)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn append_audit(
                &self,
                key: &crate::audit::AuditKey,
                events: &[NewAuditEvent],
            ) -> Result<Vec<AuditRow>> {
                let _in_process = self.audit_lock.lock().await;
                let mut tx = self.pool.begin_with($begin).await?;
                if !$lock.is_empty() {
                    sqlx::query($lock).execute(&mut *tx).await?;
                }
                let mut head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| Ok::<_, StoreError>((r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?)))
                    .transpose()?;
                let mut rows = Vec::with_capacity(events.len());
                for event in events {
                    let row = crate::audit::chain(key, event, head.take());
                    sqlx::query(
                        "INSERT INTO audit_events (seq, at_ms, kind, org_id, actor, data, prev_hash, hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(row.seq)
                    .bind(row.at_ms)
                    .bind(&row.kind)
                    .bind(row.org_id.map(|o| o.to_string()))
                    .bind(&row.actor)
                    .bind(&row.data)
                    .bind(&row.prev_hash)
                    .bind(&row.hash)
                    .execute(&mut *tx)
                    .await?;
                    head = Some((row.seq, row.hash.clone()));
                    rows.push(row);
                }
                if let Some((seq, hash)) = &head {
                    sqlx::query(
                        "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
                         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    )
                    .bind(seq)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(rows)
            }

            async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
                // Optional filters are written as `($n IS NULL OR …)` so one statement serves all.
                // An organization sees its own events; of the org-less ones, the signing-key
                // lifecycle (the issuer every organization trusts) and what its members did
                // while members. Other tenants' sign-ins, tokens and devices, and server-global
                // events such as setup links and anonymous refusals, are not its business.
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events \
                     WHERE ($1 IS NULL OR org_id = $1 OR (org_id IS NULL AND ( \
                         kind LIKE 'signing_key.%' OR kind = 'audit.chain_keyed' \
                         OR EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = $1 \
                             AND 'user:' || m.user_id = audit_events.actor \
                             AND audit_events.at_ms >= m.created_at * 1000)))) \
                     AND ($2 IS NULL OR kind = $2) \
                     AND ($3 IS NULL OR at_ms >= $3) AND ($4 IS NULL OR at_ms < $4) \
                     AND seq > $5 ORDER BY seq LIMIT $6"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(f.visible_to_org.map(|o| o.to_string()))
                    .bind(f.kind.as_deref())
                    .bind(f.since_ms)
                    .bind(f.until_ms)
                    .bind(f.after_seq.unwrap_or(0))
                    .bind(f.limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(audit_row).collect()
            }

            async fn audit_head(&self) -> Result<Option<(i64, String)>> {
                sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?)))
                    .transpose()
            }
        }
    };
}

pub(crate) use impl_store;
