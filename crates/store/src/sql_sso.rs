//! SQL for browser sign-in through an external identity provider (OIDC and SAML): pending
//! sign-ins and the SAML replay cache, shared by both backends like [`crate::sql`]; implements
//! [`SsoStore`](crate::SsoStore).

macro_rules! impl_sso_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::OrgId;
            use sqlx::Row as _;

            use crate::model::SsoPendingRow;
            use crate::sql::{conflict, parse_id};
            use crate::{Result, SsoStore};

            type DbRow = <$db as sqlx::Database>::Row;

            fn pending_row(r: &DbRow) -> Result<SsoPendingRow> {
                Ok(SsoPendingRow {
                    state_hash: r.try_get("state_hash")?,
                    protocol: r.try_get("protocol")?,
                    nonce: r.try_get("nonce")?,
                    pkce_verifier: r.try_get("pkce_verifier")?,
                    next_path: r.try_get("next_path")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            }

            #[async_trait]
            impl SsoStore for $store {
                async fn create_sso_pending(&self, p: &SsoPendingRow) -> Result<()> {
                    // Abandoned sign-ins go with the next one that starts.
                    sqlx::query("DELETE FROM sso_pending WHERE expires_at <= $1")
                        .bind(p.created_at)
                        .execute(&self.pool)
                        .await?;
                    sqlx::query(
                        "INSERT INTO sso_pending (state_hash, protocol, nonce, pkce_verifier, next_path, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&p.state_hash)
                    .bind(&p.protocol)
                    .bind(&p.nonce)
                    .bind(&p.pkce_verifier)
                    .bind(&p.next_path)
                    .bind(p.created_at)
                    .bind(p.expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("state"))?;
                    Ok(())
                }

                async fn take_sso_pending(
                    &self,
                    state_hash: &str,
                    now: i64,
                ) -> Result<Option<SsoPendingRow>> {
                    // DELETE … RETURNING: of two callbacks with the same state, one gets the row.
                    let row = sqlx::query(
                        "DELETE FROM sso_pending WHERE state_hash = $1 \
                         RETURNING state_hash, protocol, nonce, pkce_verifier, next_path, created_at, expires_at",
                    )
                    .bind(state_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(r) = row else { return Ok(None) };
                    let pending = pending_row(&r)?;
                    Ok((pending.expires_at > now).then_some(pending))
                }

                async fn find_sso_pending(
                    &self,
                    state_hash: &str,
                    now: i64,
                ) -> Result<Option<SsoPendingRow>> {
                    let row = sqlx::query(
                        "SELECT state_hash, protocol, nonce, pkce_verifier, next_path, created_at, expires_at \
                         FROM sso_pending WHERE state_hash = $1 AND expires_at > $2",
                    )
                    .bind(state_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(pending_row).transpose()
                }

                async fn saml_seen(&self, id: &str, expires_at: i64, now: i64) -> Result<bool> {
                    sqlx::query("DELETE FROM saml_replay WHERE expires_at <= $1")
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    let done = sqlx::query(
                        "INSERT INTO saml_replay (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(id)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 0)
                }

                async fn first_org(&self) -> Result<Option<OrgId>> {
                    let row = sqlx::query("SELECT id FROM orgs ORDER BY created_at, id LIMIT 1")
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(|r| parse_id("orgs.id", &r.try_get::<String, _>("id")?))
                        .transpose()
                }
            }
        };
    };
}

pub(crate) use impl_sso_store;
