//! SQL for external identity links, shared by both backends like [`crate::sql`]; implements
//! [`SsoLinkStore`](crate::SsoLinkStore).

macro_rules! impl_link_store {
    (store = $store:ty, db = $db:ty $(,)?) => {
        const _: () = {
            use async_trait::async_trait;
            use keyward_core::UserId;
            use sqlx::Row as _;

            use crate::links::{SsoLinkRow, SsoLinkStore};
            use crate::sql::{conflict, expect_one, parse_id};
            use crate::Result;

            type DbRow = <$db as sqlx::Database>::Row;

            fn link_row(r: &DbRow) -> Result<SsoLinkRow> {
                Ok(SsoLinkRow {
                    issuer: r.try_get("issuer")?,
                    subject: r.try_get("subject")?,
                    user_id: parse_id("sso_links.user_id", &r.try_get::<String, _>("user_id")?)?,
                    email: r.try_get("email")?,
                    admitted: r.try_get::<i64, _>("admitted")? != 0,
                    created_at: r.try_get("created_at")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                })
            }

            #[async_trait]
            impl SsoLinkStore for $store {
                async fn sso_link(&self, issuer: &str, subject: &str) -> Result<Option<SsoLinkRow>> {
                    sqlx::query(
                        "SELECT issuer, subject, user_id, email, admitted, created_at, last_seen_at \
                         FROM sso_links WHERE issuer = $1 AND subject = $2",
                    )
                    .bind(issuer)
                    .bind(subject)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(link_row)
                    .transpose()
                }

                async fn create_sso_link(&self, l: &SsoLinkRow) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO sso_links (issuer, subject, user_id, email, admitted, created_at, last_seen_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&l.issuer)
                    .bind(&l.subject)
                    .bind(l.user_id.to_string())
                    .bind(l.email.as_deref())
                    .bind(i64::from(l.admitted))
                    .bind(l.created_at)
                    .bind(l.last_seen_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("subject"))?;
                    Ok(())
                }

                async fn record_sso_sign_in(
                    &self,
                    issuer: &str,
                    subject: &str,
                    email: Option<&str>,
                    admitted: bool,
                    now: i64,
                ) -> Result<()> {
                    let done = sqlx::query(
                        "UPDATE sso_links SET email = COALESCE($3, email), admitted = $4, last_seen_at = $5 \
                         WHERE issuer = $1 AND subject = $2",
                    )
                    .bind(issuer)
                    .bind(subject)
                    .bind(email)
                    .bind(i64::from(admitted))
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    expect_one(done.rows_affected())
                }

                async fn sso_admitted(&self, user: UserId) -> Result<Option<bool>> {
                    Ok(sqlx::query(
                        "SELECT admitted FROM sso_links WHERE user_id = $1 \
                         ORDER BY last_seen_at DESC LIMIT 1",
                    )
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.try_get::<i64, _>("admitted"))
                    .transpose()?
                    .map(|a| a != 0))
                }
            }
        };
    };
}

pub(crate) use impl_link_store;
