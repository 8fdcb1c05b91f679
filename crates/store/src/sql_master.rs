//! SQL for master-key rotation, shared by both backends like [`crate::sql`]; implements
//! [`MasterKeyStore`](crate::master_keys::MasterKeyStore).

macro_rules! impl_master_key_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use crate::master_keys::{
                CellKey, MasterKeyRow, MasterKeyStore, SealedCell, SealedColumn,
            };
            use crate::{Result, StoreError};

            #[async_trait]
            impl MasterKeyStore for $store {
                async fn master_keys(&self) -> Result<Vec<MasterKeyRow>> {
                    let rows = sqlx::query(
                        "SELECT key_id, state, created_at, retired_at, successor FROM master_keys \
                         ORDER BY created_at, key_id",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok::<_, StoreError>(MasterKeyRow {
                                key_id: r.try_get("key_id")?,
                                state: r.try_get("state")?,
                                created_at: r.try_get("created_at")?,
                                retired_at: r.try_get("retired_at")?,
                                successor: r.try_get("successor")?,
                            })
                        })
                        .collect()
                }

                async fn begin_master_rotation(&self, old: &str, new: &str, now: i64) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO master_keys (key_id, state, created_at) VALUES ($1, 'active', $2) \
                         ON CONFLICT (key_id) DO NOTHING",
                    )
                    .bind(old)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO master_keys (key_id, state, created_at) VALUES ($1, 'rotating', $2) \
                         ON CONFLICT (key_id) DO UPDATE SET state = 'rotating'",
                    )
                    .bind(new)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn finish_master_rotation(&self, old: &str, new: &str, now: i64) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    let retired = sqlx::query(
                        "UPDATE master_keys SET state = 'retired', retired_at = $1, successor = $2 \
                         WHERE key_id = $3",
                    )
                    .bind(now)
                    .bind(new)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                    let activated = sqlx::query(
                        "UPDATE master_keys SET state = 'active' WHERE key_id = $1 AND state = 'rotating'",
                    )
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
                    if retired.rows_affected() != 1 || activated.rows_affected() != 1 {
                        return Err(StoreError::Corrupt(format!(
                            "master key rotation from {old} to {new} is not recorded as in progress"
                        )));
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn sealed_cells(
                    &self,
                    column: SealedColumn,
                    after: Option<&CellKey>,
                    limit: i64,
                ) -> Result<Vec<SealedCell>> {
                    let (table, pk, pk2, col) = column.sql();
                    let (a, b) = after
                        .map(|k| (k.a.clone(), k.b.clone()))
                        .unwrap_or_default();
                    let rows = match pk2 {
                        None => {
                            let sql = format!(
                                "SELECT {pk} AS a, {col} AS sealed FROM {table} \
                                 WHERE {col} IS NOT NULL AND {pk} > $1 ORDER BY {pk} LIMIT $2"
                            );
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .bind(a)
                                .bind(limit)
                                .fetch_all(&self.pool)
                                .await?
                        }
                        Some(pk2) => {
                            let sql = format!(
                                "SELECT {pk} AS a, {pk2} AS b, {col} AS sealed FROM {table} \
                                 WHERE {col} IS NOT NULL AND ({pk} > $1 OR ({pk} = $1 AND {pk2} > $2)) \
                                 ORDER BY {pk}, {pk2} LIMIT $3"
                            );
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .bind(a)
                                .bind(b)
                                .bind(limit)
                                .fetch_all(&self.pool)
                                .await?
                        }
                    };
                    rows.iter()
                        .map(|r| {
                            Ok::<_, StoreError>(SealedCell {
                                column,
                                key: CellKey {
                                    a: r.try_get("a")?,
                                    b: if pk2.is_some() { r.try_get("b")? } else { String::new() },
                                },
                                sealed: r.try_get("sealed")?,
                            })
                        })
                        .collect()
                }

                async fn reseal_cells(
                    &self,
                    column: SealedColumn,
                    cells: &[(CellKey, Vec<u8>, Vec<u8>)],
                ) -> Result<u64> {
                    let (table, pk, pk2, col) = column.sql();
                    let sql = match pk2 {
                        None => format!(
                            "UPDATE {table} SET {col} = $1 WHERE {pk} = $2 AND {col} = $3"
                        ),
                        Some(pk2) => format!(
                            "UPDATE {table} SET {col} = $1 WHERE {pk} = $2 AND {col} = $3 AND {pk2} = $4"
                        ),
                    };
                    let mut tx = self.begin_write().await?;
                    let mut changed = 0;
                    for (key, old, new) in cells {
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                            .bind(new.as_slice())
                            .bind(key.a.as_str())
                            .bind(old.as_slice());
                        if pk2.is_some() {
                            query = query.bind(key.b.as_str());
                        }
                        changed += query.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(changed)
                }

                async fn put_sealed_key(&self, name: &str, sealed: &[u8]) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO sealed_keys (name, sealed) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(sealed)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }
        };
    };
}

pub(crate) use impl_master_key_store;
