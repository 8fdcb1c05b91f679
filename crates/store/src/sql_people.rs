//! SQL for local credentials, device authorizations, web sessions and rate counters, shared by
//! both backends like [`crate::sql`]; implements [`PeopleStore`](crate::PeopleStore).

macro_rules! impl_people_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::{OrgId, UserId};
            use sqlx::Row as _;

            use crate::model::*;
            use crate::sql::{conflict, expect_one, parse_id, parse_opt_id};
            use crate::{PeopleStore, Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            const DEVICE_COLUMNS: &str = "device_hash, user_code_hash, client_id, scope, status, user_id, \
                 interval_secs, last_polled_ms, created_at, expires_at, decided_at";

            fn device_row(r: &DbRow) -> Result<DeviceCodeRow> {
                let status: String = r.try_get("status")?;
                Ok(DeviceCodeRow {
                    device_hash: r.try_get("device_hash")?,
                    user_code_hash: r.try_get("user_code_hash")?,
                    client_id: r.try_get("client_id")?,
                    scope: r.try_get("scope")?,
                    status: DeviceStatus::parse(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown device status {status:?}"))
                    })?,
                    user_id: parse_opt_id("device_codes.user_id", r.try_get("user_id")?)?,
                    interval_secs: r.try_get("interval_secs")?,
                    last_polled_ms: r.try_get("last_polled_ms")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    decided_at: r.try_get("decided_at")?,
                })
            }

            const INVITATION_COLUMNS: &str =
                "id, hash, org_id, email, role, invited_by, created_at, expires_at, accepted_at";

            fn invitation_row(r: &DbRow) -> Result<InvitationRow> {
                Ok(InvitationRow {
                    id: r.try_get("id")?,
                    hash: r.try_get("hash")?,
                    org_id: parse_id("invitations.org_id", &r.try_get::<String, _>("org_id")?)?,
                    email: r.try_get("email")?,
                    role: r.try_get("role")?,
                    invited_by: parse_opt_id("invitations.invited_by", r.try_get("invited_by")?)?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    accepted_at: r.try_get("accepted_at")?,
                })
            }

            fn window_start(now: i64, window: i64) -> i64 {
                let window = window.max(1);
                now - now.rem_euclid(window)
            }

            #[async_trait]
            impl PeopleStore for $store {
                async fn set_local_password(
                    &self,
                    user: UserId,
                    password_hash: &str,
                    now: i64,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO local_credentials (user_id, password_hash, sealed_totp, updated_at) \
                         VALUES ($1, $2, NULL, $3) ON CONFLICT (user_id) DO UPDATE SET \
                         password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                    )
                    .bind(user.to_string())
                    .bind(password_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn set_local_totp(
                    &self,
                    user: UserId,
                    sealed: Option<&[u8]>,
                    now: i64,
                ) -> Result<()> {
                    let done = sqlx::query(
                        "UPDATE local_credentials SET sealed_totp = $1, updated_at = $2 WHERE user_id = $3",
                    )
                    .bind(sealed)
                    .bind(now)
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await?;
                    expect_one(done.rows_affected())
                }

                async fn local_credential(&self, user: UserId) -> Result<Option<LocalCredentialRow>> {
                    let row = sqlx::query(
                        "SELECT user_id, password_hash, sealed_totp, updated_at FROM local_credentials \
                         WHERE user_id = $1",
                    )
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|r| {
                        Ok(LocalCredentialRow {
                            user_id: parse_id(
                                "local_credentials.user_id",
                                &r.try_get::<String, _>("user_id")?,
                            )?,
                            password_hash: r.try_get("password_hash")?,
                            sealed_totp: r.try_get("sealed_totp")?,
                            updated_at: r.try_get("updated_at")?,
                        })
                    })
                    .transpose()
                }

                async fn create_device_code(&self, d: &DeviceCodeRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO device_codes (device_hash, user_code_hash, client_id, scope, status, \
                         user_id, interval_secs, last_polled_ms, created_at, expires_at, decided_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(&d.device_hash)
                    .bind(&d.user_code_hash)
                    .bind(&d.client_id)
                    .bind(&d.scope)
                    .bind(d.status.as_str())
                    .bind(d.user_id.map(|u| u.to_string()))
                    .bind(d.interval_secs)
                    .bind(d.last_polled_ms)
                    .bind(d.created_at)
                    .bind(d.expires_at)
                    .bind(d.decided_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("user_code"))?;
                    Ok(())
                }

                async fn device_by_hash(&self, device_hash: &str) -> Result<Option<DeviceCodeRow>> {
                    let sql = format!("SELECT {DEVICE_COLUMNS} FROM device_codes WHERE device_hash = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(device_hash)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(device_row)
                        .transpose()
                }

                async fn device_by_user_code(
                    &self,
                    user_code_hash: &str,
                ) -> Result<Option<DeviceCodeRow>> {
                    let sql =
                        format!("SELECT {DEVICE_COLUMNS} FROM device_codes WHERE user_code_hash = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(user_code_hash)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(device_row)
                        .transpose()
                }

                async fn decide_device(
                    &self,
                    user_code_hash: &str,
                    user: UserId,
                    approve: bool,
                    now: i64,
                ) -> Result<DeviceCodeRow> {
                    let status = if approve {
                        DeviceStatus::Approved
                    } else {
                        DeviceStatus::Denied
                    };
                    let sql = format!(
                        "UPDATE device_codes SET status = $1, user_id = $2, decided_at = $3 \
                         WHERE user_code_hash = $4 AND status = 'pending' AND expires_at > $3 \
                         RETURNING {DEVICE_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(status.as_str())
                        .bind(user.to_string())
                        .bind(now)
                        .bind(user_code_hash)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    device_row(&row)
                }

                async fn record_device_poll(&self, device_hash: &str, now_ms: i64) -> Result<()> {
                    sqlx::query("UPDATE device_codes SET last_polled_ms = $1 WHERE device_hash = $2")
                        .bind(now_ms)
                        .bind(device_hash)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn consume_device(&self, device_hash: &str, now: i64) -> Result<Option<UserId>> {
                    let row = sqlx::query(
                        "UPDATE device_codes SET status = 'consumed' WHERE device_hash = $1 \
                         AND status = 'approved' AND expires_at > $2 RETURNING user_id",
                    )
                    .bind(device_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    match row {
                        Some(r) => parse_opt_id("device_codes.user_id", r.try_get("user_id")?),
                        None => Ok(None),
                    }
                }

                async fn purge_device_codes(&self, before: i64) -> Result<u64> {
                    let done = sqlx::query("DELETE FROM device_codes WHERE expires_at < $1")
                        .bind(before)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn create_web_session(&self, s: &WebSessionRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO web_sessions (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&s.hash)
                    .bind(s.user_id.to_string())
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("session"))?;
                    Ok(())
                }

                async fn web_session_user(&self, hash: &str, now: i64) -> Result<Option<UserRow>> {
                    let row = sqlx::query(
                        "SELECT u.id, u.email, u.created_at FROM web_sessions s JOIN users u ON u.id = s.user_id \
                         WHERE s.hash = $1 AND s.expires_at > $2",
                    )
                    .bind(hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|r| {
                        Ok(UserRow {
                            id: parse_id("users.id", &r.try_get::<String, _>("id")?)?,
                            email: r.try_get("email")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .transpose()
                }

                async fn touch_web_session(
                    &self,
                    hash: &str,
                    now: i64,
                    idle: i64,
                    max_age: i64,
                ) -> Result<Option<UserRow>> {
                    // One statement for both backends (no LEAST/MIN), and only a live session
                    // moves: an expired one stays expired.
                    sqlx::query(
                        "UPDATE web_sessions SET expires_at = CASE WHEN created_at + $4 < $2 + $3 \
                         THEN created_at + $4 ELSE $2 + $3 END WHERE hash = $1 AND expires_at > $2",
                    )
                    .bind(hash)
                    .bind(now)
                    .bind(idle)
                    .bind(max_age)
                    .execute(&self.pool)
                    .await?;
                    self.web_session_user(hash, now).await
                }

                async fn delete_web_session(&self, hash: &str) -> Result<()> {
                    sqlx::query("DELETE FROM web_sessions WHERE hash = $1")
                        .bind(hash)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn count_device_codes(&self) -> Result<i64> {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM device_codes")
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(row.try_get("n")?)
                }

                async fn bump_rate_counter(&self, key: &str, now: i64, window: i64) -> Result<i64> {
                    // Counters of addresses gone quiet would otherwise pile up for good (one per
                    // address and limiter); the window_start index keeps this cheap.
                    sqlx::query("DELETE FROM rate_counters WHERE window_start < $1")
                        .bind(now - crate::RATE_COUNTER_RETENTION)
                        .execute(&self.pool)
                        .await?;
                    // Both backends evaluate the SET expressions against the old row, so `count`
                    // restarts exactly when the window moved on.
                    let row = sqlx::query(
                        "INSERT INTO rate_counters (key, window_start, count) VALUES ($1, $2, 1) \
                         ON CONFLICT (key) DO UPDATE SET \
                         count = CASE WHEN rate_counters.window_start = excluded.window_start \
                         THEN rate_counters.count + 1 ELSE 1 END, \
                         window_start = excluded.window_start RETURNING count",
                    )
                    .bind(key)
                    .bind(window_start(now, window))
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(row.try_get("count")?)
                }

                async fn rate_counter(&self, key: &str, now: i64, window: i64) -> Result<i64> {
                    let row = sqlx::query(
                        "SELECT count FROM rate_counters WHERE key = $1 AND window_start = $2",
                    )
                    .bind(key)
                    .bind(window_start(now, window))
                    .fetch_optional(&self.pool)
                    .await?;
                    match row {
                        Some(r) => Ok(r.try_get("count")?),
                        None => Ok(0),
                    }
                }

                async fn record_failure(
                    &self,
                    key: &str,
                    now_ms: i64,
                    forget_after_ms: i64,
                ) -> Result<i64> {
                    let stale = now_ms - forget_after_ms;
                    sqlx::query("DELETE FROM auth_failures WHERE last_ms <= $1")
                        .bind(stale)
                        .execute(&self.pool)
                        .await?;
                    // The SET expressions see the old row, as in bump_rate_counter.
                    let row = sqlx::query(
                        "INSERT INTO auth_failures (key, failures, last_ms) VALUES ($1, 1, $2) \
                         ON CONFLICT (key) DO UPDATE SET \
                         failures = CASE WHEN auth_failures.last_ms <= $3 THEN 1 \
                         ELSE auth_failures.failures + 1 END, \
                         last_ms = excluded.last_ms RETURNING failures",
                    )
                    .bind(key)
                    .bind(now_ms)
                    .bind(stale)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(row.try_get("failures")?)
                }

                async fn failures(&self, key: &str) -> Result<Option<(i64, i64)>> {
                    let row = sqlx::query("SELECT failures, last_ms FROM auth_failures WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(|r| Ok((r.try_get("failures")?, r.try_get("last_ms")?)))
                        .transpose()
                }

                async fn clear_failures(&self, key: &str) -> Result<()> {
                    sqlx::query("DELETE FROM auth_failures WHERE key = $1")
                        .bind(key)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn create_invitation(&self, i: &InvitationRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO invitations (id, hash, org_id, email, role, invited_by, created_at, \
                         expires_at, accepted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&i.id)
                    .bind(&i.hash)
                    .bind(i.org_id.to_string())
                    .bind(&i.email)
                    .bind(&i.role)
                    .bind(i.invited_by.map(|u| u.to_string()))
                    .bind(i.created_at)
                    .bind(i.expires_at)
                    .bind(i.accepted_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("invitation"))?;
                    Ok(())
                }

                async fn invitation_by_hash(&self, hash: &str) -> Result<Option<InvitationRow>> {
                    let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE hash = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(invitation_row)
                        .transpose()
                }

                async fn accept_invitation(&self, hash: &str, now: i64) -> Result<Option<InvitationRow>> {
                    let sql = format!(
                        "UPDATE invitations SET accepted_at = $2 WHERE hash = $1 AND accepted_at IS NULL \
                         AND expires_at > $2 RETURNING {INVITATION_COLUMNS}"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(hash)
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(invitation_row)
                        .transpose()
                }

                async fn pending_invitations(&self, org: OrgId, now: i64) -> Result<Vec<InvitationRow>> {
                    let sql = format!(
                        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = $1 \
                         AND accepted_at IS NULL AND expires_at > $2 ORDER BY created_at, id"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(now)
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(invitation_row)
                        .collect()
                }

                async fn revoke_invitation(&self, org: OrgId, id: &str) -> Result<Option<InvitationRow>> {
                    let sql = format!(
                        "DELETE FROM invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL \
                         RETURNING {INVITATION_COLUMNS}"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(invitation_row)
                        .transpose()
                }

                async fn add_membership(
                    &self,
                    org: OrgId,
                    user: UserId,
                    role: &str,
                    now: i64,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(org.to_string())
                    .bind(user.to_string())
                    .bind(role)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("member"))?;
                    Ok(())
                }
            }
        };
    };
}

pub(crate) use impl_people_store;
