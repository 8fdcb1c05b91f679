//! SQL for the per-person guards of migration 0009 (TOTP replay, access-token cut-off, ending
//! other sessions) and the bounds on pending SSO sign-ins, shared by both backends like
//! [`crate::sql`]; implements [`GuardStore`](crate::GuardStore).

macro_rules! impl_guard_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::UserId;
            use sqlx::Row as _;

            use crate::{GuardStore, Result};

            #[async_trait]
            impl GuardStore for $store {
                async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool> {
                    // One statement, so two sign-ins racing with the same code cannot both win:
                    // the update happens only while the stored step is older.
                    let done = sqlx::query(
                        "INSERT INTO account_guards (user_id, totp_last_step) VALUES ($1, $2) \
                         ON CONFLICT (user_id) DO UPDATE SET totp_last_step = excluded.totp_last_step \
                         WHERE account_guards.totp_last_step IS NULL \
                         OR account_guards.totp_last_step < excluded.totp_last_step",
                    )
                    .bind(user.to_string())
                    .bind(step)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn tokens_valid_after(&self, user: UserId) -> Result<Option<i64>> {
                    let row = sqlx::query(
                        "SELECT tokens_valid_after FROM account_guards WHERE user_id = $1",
                    )
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(match row {
                        Some(r) => r.try_get("tokens_valid_after")?,
                        None => None,
                    })
                }

                async fn end_other_sessions(
                    &self,
                    user: UserId,
                    keep: Option<&str>,
                    now: i64,
                ) -> Result<u64> {
                    let mut tx = self.begin_write().await?;
                    let ended = sqlx::query(
                        "DELETE FROM web_sessions WHERE user_id = $1 AND ($2 IS NULL OR hash <> $2)",
                    )
                    .bind(user.to_string())
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    sqlx::query(
                        "INSERT INTO account_guards (user_id, tokens_valid_after) VALUES ($1, $2) \
                         ON CONFLICT (user_id) DO UPDATE SET tokens_valid_after = excluded.tokens_valid_after",
                    )
                    .bind(user.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(ended)
                }

                async fn drop_local_credential(&self, user: UserId) -> Result<bool> {
                    let dropped = sqlx::query("DELETE FROM local_credentials WHERE user_id = $1")
                        .bind(user.to_string())
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    Ok(dropped > 0)
                }

                async fn live_sso_pending(&self, now: i64) -> Result<i64> {
                    sqlx::query("DELETE FROM sso_pending WHERE expires_at <= $1")
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM sso_pending")
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(row.try_get("n")?)
                }
            }
        };
    };
}

pub(crate) use impl_guard_store;
