//! SQL for gateway sessions, shared by both backends like [`crate::sql`]; implements
//! [`SessionStore`](crate::SessionStore). Reading JSON differs between SQLite and PostgreSQL, so
//! the expressions are parameters; `session_id` must be exactly the expression of migration
//! 0013's index, or the planner cannot use it.

macro_rules! impl_session_store {
    (
        store = $store:ty,
        db = $db:ty,
        // `data.session.id` as text: the indexed expression.
        session_id = $sid:literal,
        // `data.session.error` as text.
        session_error = $err:literal,
        // `data.route` as text.
        route = $route:literal,
        // JSON text arrays of the distinct actors and routes of a group.
        callers = $callers:literal,
        routes = $routes:literal $(,)?
    ) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::OrgId;
            use sqlx::Row as _;

            use crate::sessions::{
                GATEWAY_REQUEST_KIND, MAX_SESSIONS_PAGE, SessionFilter, SessionHeadRow,
                SessionStore, SessionSummary, head_row, string_list,
            };
            use crate::Result;
            use crate::model::AuditRow;
            use crate::sql::parse_opt_id;

            #[async_trait]
            impl SessionStore for $store {
                async fn session_heads(
                    &self,
                    org: OrgId,
                    session_id: &str,
                ) -> Result<Vec<SessionHeadRow>> {
                    let sql = format!(
                        "SELECT seq, at_ms, kind, org_id, actor, data, prev_hash, hash FROM audit_events \
                         WHERE kind = '{GATEWAY_REQUEST_KIND}' AND org_id = $1 AND {} = $2 ORDER BY seq",
                        $sid
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(session_id)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut heads = rows
                        .iter()
                        .map(|r| {
                            head_row(AuditRow {
                                seq: r.try_get("seq")?,
                                at_ms: r.try_get("at_ms")?,
                                kind: r.try_get("kind")?,
                                org_id: parse_opt_id("audit_events.org_id", r.try_get("org_id")?)?,
                                actor: r.try_get("actor")?,
                                data: r.try_get("data")?,
                                prev_hash: r.try_get("prev_hash")?,
                                hash: r.try_get("hash")?,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    // Stable: events without a segment keep their audit order, after the heads.
                    heads.sort_by_key(|h| (h.segment.is_none(), h.segment));
                    Ok(heads)
                }

                async fn list_sessions(
                    &self,
                    org: OrgId,
                    f: &SessionFilter,
                ) -> Result<Vec<SessionSummary>> {
                    // A session matches a caller or route when any of its requests does, so those
                    // filters are on the group (HAVING), not on the rows: the counts stay whole.
                    let sql = format!(
                        "SELECT {sid} AS session_id, \
                             SUM(CASE WHEN {err} IS NULL THEN 1 ELSE 0 END) AS segments, \
                             SUM(CASE WHEN {err} IS NULL THEN 0 ELSE 1 END) AS errors, \
                             MIN(at_ms) AS first_ms, MAX(at_ms) AS last_ms, \
                             {callers} AS callers, {routes} AS routes \
                         FROM audit_events \
                         WHERE kind = '{GATEWAY_REQUEST_KIND}' AND org_id = $1 AND {sid} IS NOT NULL \
                         GROUP BY {sid} \
                         HAVING ($2 IS NULL OR SUM(CASE WHEN actor = $2 THEN 1 ELSE 0 END) > 0) \
                             AND ($3 IS NULL OR SUM(CASE WHEN {route} = $3 THEN 1 ELSE 0 END) > 0) \
                             AND ($4 IS NULL OR MAX(at_ms) >= $4) \
                             AND ($5 IS NULL OR MIN(at_ms) < $5) \
                         ORDER BY last_ms DESC, session_id LIMIT $6",
                        sid = $sid,
                        err = $err,
                        route = $route,
                        callers = $callers,
                        routes = $routes,
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(org.to_string())
                        .bind(f.caller.as_deref())
                        .bind(f.route.as_deref())
                        .bind(f.since_ms)
                        .bind(f.until_ms)
                        .bind(f.limit.clamp(1, MAX_SESSIONS_PAGE))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(SessionSummary {
                                session_id: r.try_get("session_id")?,
                                segments: r.try_get("segments")?,
                                errors: r.try_get("errors")?,
                                first_ms: r.try_get("first_ms")?,
                                last_ms: r.try_get("last_ms")?,
                                callers: string_list("callers", r.try_get("callers")?)?,
                                routes: string_list("routes", r.try_get("routes")?)?,
                            })
                        })
                        .collect()
                }
            }
        };
    };
}

pub(crate) use impl_session_store;
