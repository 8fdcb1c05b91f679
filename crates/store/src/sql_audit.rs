//! SQL for the audit hash chain, shared by both backends like [`crate::sql`]; implements
//! [`AuditStore`](crate::AuditStore). How an append is serialised differs: it is a parameter.

macro_rules! impl_audit_store {
    (
        store = $store:ty,
        db = $db:ty,
        // Starts the transaction of an audit append.
        begin_audit = $begin:literal,
        // Runs first inside it, to serialise appends across processes ("" for none).
        lock_audit = $lock:literal $(,)?
    ) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use crate::model::*;
            use crate::sql::parse_opt_id;
            use crate::{AuditStore, Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            /// Rows per INSERT: 8 parameters each stays far below both backends' limits.
            const INSERT_CHUNK: usize = 100;

            const AUDIT_COLUMNS: &str = "seq, at_ms, kind, org_id, actor, data, prev_hash, hash";

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
            impl AuditStore for $store {
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
                        head = Some((row.seq, row.hash.clone()));
                        rows.push(row);
                    }
                    // Many rows per statement: each statement is a round trip (to SQLite's
                    // worker thread or to PostgreSQL), and a gateway appends hundreds at once.
                    for chunk in rows.chunks(INSERT_CHUNK) {
                        let mut insert = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO audit_events (seq, at_ms, kind, org_id, actor, data, prev_hash, hash) ",
                        );
                        insert.push_values(chunk, |mut values, row| {
                            values
                                .push_bind(row.seq)
                                .push_bind(row.at_ms)
                                .push_bind(&row.kind)
                                .push_bind(row.org_id.map(|o| o.to_string()))
                                .push_bind(&row.actor)
                                .push_bind(&row.data)
                                .push_bind(&row.prev_hash)
                                .push_bind(&row.hash);
                        });
                        insert.build().execute(&mut *tx).await?;
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
                         AND seq > $5 AND ($7 IS NULL OR actor = $7) ORDER BY seq LIMIT $6"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(f.visible_to_org.map(|o| o.to_string()))
                        .bind(f.kind.as_deref())
                        .bind(f.since_ms)
                        .bind(f.until_ms)
                        .bind(f.after_seq.unwrap_or(0))
                        .bind(f.limit)
                        .bind(f.actor.as_deref())
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
    };
}

pub(crate) use impl_audit_store;
