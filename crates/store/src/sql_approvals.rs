//! SQL for approval requests, shared by both backends like [`crate::sql`]; implements
//! [`ApprovalStore`](crate::approvals::ApprovalStore). `notify` is the statement announcing a
//! transition inside its transaction (PostgreSQL `pg_notify`; none on SQLite, whose watcher
//! polls).

/// The columns of a row, in the order [`approval_row`] reads them by name.
pub(crate) const COLUMNS: &str = "id, org_id, route_id, route_name, requester_kind, requester_subject, requester_email, requester_automation, policy_id, reason, summary, mode, grant_kind, grant_seconds, state, created_at, expires_at, decided_by_user, decided_by_email, decision_comment, decided_at, grant_expires_at, executed_at, revoked_by_user, revoked_by_email, revoke_comment, revoked_at";

/// What an expired row matches: a pending request past its deadline, a grant past its end.
pub(crate) const DUE: &str = "((state = 'pending' AND expires_at <= $1) OR (state = 'approved' AND (grant_expires_at IS NULL OR grant_expires_at <= $1)))";

pub(crate) fn corrupt(column: &str) -> crate::StoreError {
    crate::StoreError::Corrupt(format!("approvals.{column} holds an unknown value"))
}

macro_rules! impl_approval_store {
    (store = $store:ty, db = $db:ty, notify = $notify:expr $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::api::approvals::{ApprovalMode, ApprovalState, GrantKind};
            use keyward_core::{ApprovalId, AutomationId, OrgId, UserId};
            use sqlx::Row as _;

            use crate::approvals::{
                ApprovalFilter, ApprovalRow, ApprovalStore, ApprovalWatcher, Decision, MAX_PAGE,
                Transition,
            };
            use crate::sql::{parse_id, parse_opt_id};
            use crate::sql_approvals::{COLUMNS, DUE, corrupt};
            use crate::{Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            const NOTIFY: Option<&str> = $notify;

            fn approval_row(r: &DbRow) -> Result<ApprovalRow> {
                let summary: String = r.try_get("summary")?;
                let mode: String = r.try_get("mode")?;
                let grant: String = r.try_get("grant_kind")?;
                let state: String = r.try_get("state")?;
                Ok(ApprovalRow {
                    id: parse_id("approvals.id", &r.try_get::<String, _>("id")?)?,
                    org_id: parse_id("approvals.org_id", &r.try_get::<String, _>("org_id")?)?,
                    route_id: r.try_get("route_id")?,
                    route_name: r.try_get("route_name")?,
                    requester_kind: r.try_get("requester_kind")?,
                    requester_subject: r.try_get("requester_subject")?,
                    requester_email: r.try_get("requester_email")?,
                    requester_automation: parse_opt_id(
                        "approvals.requester_automation",
                        r.try_get("requester_automation")?,
                    )?,
                    policy_id: r.try_get("policy_id")?,
                    reason: r.try_get("reason")?,
                    summary: serde_json::from_str(&summary)
                        .map_err(|_| StoreError::Corrupt("approvals.summary is not JSON".into()))?,
                    mode: ApprovalMode::parse(&mode).ok_or_else(|| corrupt("mode"))?,
                    grant_kind: GrantKind::parse(&grant).ok_or_else(|| corrupt("grant_kind"))?,
                    grant_seconds: r.try_get("grant_seconds")?,
                    state: ApprovalState::parse(&state).ok_or_else(|| corrupt("state"))?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    decided_by_user: parse_opt_id(
                        "approvals.decided_by_user",
                        r.try_get("decided_by_user")?,
                    )?,
                    decided_by_email: r.try_get("decided_by_email")?,
                    decision_comment: r.try_get("decision_comment")?,
                    decided_at: r.try_get("decided_at")?,
                    grant_expires_at: r.try_get("grant_expires_at")?,
                    executed_at: r.try_get("executed_at")?,
                    revoked_by_user: parse_opt_id(
                        "approvals.revoked_by_user",
                        r.try_get("revoked_by_user")?,
                    )?,
                    revoked_by_email: r.try_get("revoked_by_email")?,
                    revoke_comment: r.try_get("revoke_comment")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }

            impl $store {
                /// Runs a conditional UPDATE … RETURNING and, in the same transaction,
                /// announces every row it changed.
                async fn approval_transition<'q>(
                    &self,
                    query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                ) -> Result<Vec<ApprovalRow>> {
                    let mut tx = self.begin_write().await?;
                    let rows = query
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(approval_row)
                        .collect::<Result<Vec<_>>>()?;
                    if let Some(notify) = NOTIFY {
                        for row in &rows {
                            sqlx::query(notify)
                                .bind(row.id.to_string())
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(rows)
                }

                /// `Done` with the changed row, else `Refused` with the row as it reads now.
                async fn approval_outcome(
                    &self,
                    org: OrgId,
                    id: ApprovalId,
                    changed: Vec<ApprovalRow>,
                    now: i64,
                ) -> Result<Transition> {
                    match changed.into_iter().next() {
                        Some(row) => Ok(Transition::Done(row.at(now))),
                        None => Ok(Transition::Refused(
                            self.get_approval(org, id, now).await?,
                        )),
                    }
                }
            }

            #[async_trait]
            impl ApprovalStore for $store {
                async fn create_approval(&self, a: &ApprovalRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO approvals (id, org_id, route_id, route_name, requester_kind, requester_subject, requester_email, requester_automation, policy_id, reason, summary, mode, grant_kind, grant_seconds, state, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                    )
                    .bind(a.id.to_string())
                    .bind(a.org_id.to_string())
                    .bind(a.route_id.clone())
                    .bind(&a.route_name)
                    .bind(&a.requester_kind)
                    .bind(&a.requester_subject)
                    .bind(a.requester_email.clone())
                    .bind(a.requester_automation.map(|x| x.to_string()))
                    .bind(&a.policy_id)
                    .bind(&a.reason)
                    .bind(a.summary.to_string())
                    .bind(a.mode.as_str())
                    .bind(a.grant_kind.as_str())
                    .bind(a.grant_seconds)
                    .bind(a.state.as_str())
                    .bind(a.created_at)
                    .bind(a.expires_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn get_approval(
                    &self,
                    org: OrgId,
                    id: ApprovalId,
                    now: i64,
                ) -> Result<ApprovalRow> {
                    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE org_id = $1 AND id = $2");
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row
                        .as_ref()
                        .map(approval_row)
                        .transpose()?
                        .ok_or(StoreError::NotFound)?
                        .at(now))
                }

                async fn list_approvals(
                    &self,
                    org: OrgId,
                    f: &ApprovalFilter,
                    now: i64,
                ) -> Result<Vec<ApprovalRow>> {
                    // Expiry is a matter of time, so a state filter matches the state as it
                    // reads now, not as stored.
                    let state = match f.state {
                        None => "AND $6 IS NOT NULL ",
                        Some(ApprovalState::Pending) => "AND state = 'pending' AND expires_at > $6 ",
                        Some(ApprovalState::Approved) => {
                            "AND state = 'approved' AND grant_expires_at > $6 "
                        }
                        Some(ApprovalState::Expired) => {
                            "AND (state = 'expired' OR (state = 'pending' AND expires_at <= $6) OR (state = 'approved' AND grant_expires_at <= $6)) "
                        }
                        Some(ApprovalState::Denied) => "AND state = 'denied' AND $6 IS NOT NULL ",
                        Some(ApprovalState::Revoked) => "AND state = 'revoked' AND $6 IS NOT NULL ",
                        Some(ApprovalState::Executed) => "AND state = 'executed' AND $6 IS NOT NULL ",
                    };
                    let sql = format!(
                        "SELECT {COLUMNS} FROM approvals WHERE org_id = $1 \
                         AND ($2 IS NULL OR route_name = $2) \
                         AND ($3 IS NULL OR requester_subject = $3 OR requester_email = $3) \
                         AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
                         {state}ORDER BY created_at DESC, id DESC LIMIT $7"
                    );
                    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(f.route.clone())
                        .bind(f.requester.clone())
                        .bind(f.before.map(|b| b.0))
                        .bind(f.before.map(|b| b.1.to_string()));
                    query
                        .bind(now)
                        .bind(f.limit.clamp(1, MAX_PAGE))
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(|r| approval_row(r).map(|row| row.at(now)))
                        .collect()
                }

                async fn decide_approval(
                    &self,
                    org: OrgId,
                    id: ApprovalId,
                    d: &Decision,
                    now: i64,
                ) -> Result<Transition> {
                    let (state, grant_end) = if d.approve {
                        (ApprovalState::Approved, Some(d.grant_expires_at))
                    } else {
                        (ApprovalState::Denied, None)
                    };
                    let sql = format!(
                        "UPDATE approvals SET state = $2, decided_by_user = $3, decided_by_email = $4, \
                         decision_comment = $5, decided_at = $1, grant_kind = $6, grant_expires_at = $7 \
                         WHERE org_id = $8 AND id = $9 AND state = 'pending' AND expires_at > $1 \
                         RETURNING {COLUMNS}"
                    );
                    let changed = self
                        .approval_transition(
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .bind(now)
                                .bind(state.as_str())
                                .bind(d.user.to_string())
                                .bind(d.email.clone())
                                .bind(d.comment.clone())
                                .bind(d.grant_kind.as_str())
                                .bind(grant_end)
                                .bind(org.to_string())
                                .bind(id.to_string()),
                        )
                        .await?;
                    self.approval_outcome(org, id, changed, now).await
                }

                async fn revoke_approval(
                    &self,
                    org: OrgId,
                    id: ApprovalId,
                    user: UserId,
                    email: &str,
                    comment: &str,
                    now: i64,
                ) -> Result<Transition> {
                    let sql = format!(
                        "UPDATE approvals SET state = 'revoked', revoked_by_user = $2, revoked_by_email = $3, \
                         revoke_comment = $4, revoked_at = $1 \
                         WHERE org_id = $5 AND id = $6 AND state = 'approved' AND grant_expires_at > $1 \
                         RETURNING {COLUMNS}"
                    );
                    let changed = self
                        .approval_transition(
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .bind(now)
                                .bind(user.to_string())
                                .bind(email.to_owned())
                                .bind(comment.to_owned())
                                .bind(org.to_string())
                                .bind(id.to_string()),
                        )
                        .await?;
                    self.approval_outcome(org, id, changed, now).await
                }

                async fn expire_due(&self, org: Option<OrgId>, now: i64) -> Result<Vec<ApprovalRow>> {
                    let scope = if org.is_some() { "org_id = $2 AND " } else { "" };
                    let sql = format!(
                        "UPDATE approvals SET state = 'expired' WHERE {scope}{DUE} RETURNING {COLUMNS}"
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                    if let Some(org) = org {
                        query = query.bind(org.to_string());
                    }
                    self.approval_transition(query).await
                }

                async fn find_active_grant(
                    &self,
                    org: OrgId,
                    subject: &str,
                    automation: Option<AutomationId>,
                    route: &str,
                    policy_id: &str,
                    now: i64,
                ) -> Result<Option<ApprovalRow>> {
                    // A time-boxed grant first: using it spends nothing.
                    let sql = format!(
                        "SELECT {COLUMNS} FROM approvals WHERE org_id = $1 AND requester_subject = $2 \
                         AND route_name = $3 AND policy_id = $4 AND state = 'approved' AND grant_expires_at > $5 \
                         AND (requester_automation = $6 OR (requester_automation IS NULL AND $6 IS NULL)) \
                         ORDER BY CASE grant_kind WHEN 'timebox' THEN 0 ELSE 1 END, decided_at DESC, id \
                         LIMIT 1"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(subject.to_owned())
                        .bind(route.to_owned())
                        .bind(policy_id.to_owned())
                        .bind(now)
                        .bind(automation.map(|a| a.to_string()))
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(approval_row).transpose()
                }

                async fn consume_once(
                    &self,
                    org: OrgId,
                    id: ApprovalId,
                    now: i64,
                ) -> Result<Transition> {
                    let sql = format!(
                        "UPDATE approvals SET state = 'executed', executed_at = $1 \
                         WHERE org_id = $2 AND id = $3 AND state = 'approved' AND grant_kind = 'once' \
                         AND grant_expires_at > $1 RETURNING {COLUMNS}"
                    );
                    let changed = self
                        .approval_transition(
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .bind(now)
                                .bind(org.to_string())
                                .bind(id.to_string()),
                        )
                        .await?;
                    self.approval_outcome(org, id, changed, now).await
                }

                async fn count_pending(&self, org: OrgId, route: &str, now: i64) -> Result<i64> {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM approvals WHERE org_id = $1 AND route_name = $2 AND state = 'pending' AND expires_at > $3",
                    )
                    .bind(org.to_string())
                    .bind(route.to_owned())
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(n)
                }

                async fn count_pending_for(
                    &self,
                    org: OrgId,
                    subject: &str,
                    automation: Option<AutomationId>,
                    now: i64,
                ) -> Result<i64> {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM approvals WHERE org_id = $1 AND requester_subject = $2 AND state = 'pending' AND expires_at > $3 \
                         AND (requester_automation = $4 OR (requester_automation IS NULL AND $4 IS NULL))",
                    )
                    .bind(org.to_string())
                    .bind(subject.to_owned())
                    .bind(now)
                    .bind(automation.map(|a| a.to_string()))
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(n)
                }

                fn approval_watcher(&self) -> ApprovalWatcher {
                    self.approvals.clone()
                }
            }
        };
    };
}

pub(crate) use impl_approval_store;
