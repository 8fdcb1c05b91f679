//! SQL for the issuer's signing keys and the rotation lease, shared by both backends like
//! [`crate::sql`]; implements [`KeyStore`](crate::KeyStore).

macro_rules! impl_key_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use crate::model::*;
            use crate::sql::{conflict, expect_one};
            use crate::{KeyStore, Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            const KEY_COLUMNS: &str = "kid, alg, source, fingerprint, public_jwk, private_key, published_at, activates_at, activation_recorded, retires_at, retired_at";

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

            #[async_trait]
            impl KeyStore for $store {
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
            }
        };
    };
}

pub(crate) use impl_key_store;
