//! `/console/audit`: the audit log as a table with filters (action, actor, since) and paging,
//! and a button that verifies the hash chain.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_store::AuditFilter;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render};
use crate::clock::ms_to_datetime;
use crate::domain::audit::{events_page, verify as verify_chain};
use crate::domain::members::list_members;
use crate::error::ApiError;
use crate::state::AppState;

/// Events per page.
const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    since: String,
    after: Option<i64>,
}

pub struct EventView {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub data: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub action: String,
    pub actor: String,
    pub since: String,
    pub events: Vec<EventView>,
    /// The query string of the next page, when there is one.
    pub next: Option<String>,
    pub csrf: String,
}

/// `since` as a day (`2026-01-31`) or an RFC 3339 time, in Unix milliseconds.
pub(crate) fn since_ms(text: &str) -> Result<Option<i64>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let day = text
        .split_once('-')
        .and_then(|(y, rest)| rest.split_once('-').map(|(m, d)| (y, m, d)))
        .filter(|(y, m, d)| y.len() == 4 && m.len() == 2 && d.len() == 2)
        .and_then(|(y, m, d)| {
            let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
            Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
        })
        .map(|d| d.midnight().assume_utc());
    let at = day
        .or_else(|| OffsetDateTime::parse(text, &Rfc3339).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "since",
                format!("'since' must be a day like 2026-01-31 or a time like 2026-01-31T12:00:00Z (got {text:?})"),
            )
        })?;
    Ok(Some((at.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// The actor as recorded: `user:<id>` as is, or a member's email turned into theirs.
async fn actor_key(app: &AppState, ctx: &Ctx, actor: &str) -> Result<Option<String>, ApiError> {
    let actor = actor.trim();
    if actor.is_empty() {
        return Ok(None);
    }
    if actor.contains('@') && !actor.contains(':') {
        let members = list_members(app, &ctx.caller).await?;
        return Ok(Some(
            members
                .iter()
                .find(|m| m.user.email.eq_ignore_ascii_case(actor))
                .map_or_else(
                    || format!("email:{actor}"),
                    |m| format!("user:{}", m.user.id),
                ),
        ));
    }
    Ok(Some(actor.to_owned()))
}

fn query_string(f: &Filters, after: i64) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("action", &f.action)
        .append_pair("actor", &f.actor)
        .append_pair("since", &f.since)
        .append_pair("after", &after.to_string())
        .finish()
}

async fn audit_page(app: &AppState, ctx: &Ctx, f: Filters, flash: Option<Flash>) -> Response {
    let layout = ctx.layout("Audit log", "/console/audit").with_flash(flash);
    let filter = async {
        Ok::<_, ApiError>(AuditFilter {
            kind: Some(f.action.trim().to_owned()).filter(|k| !k.is_empty()),
            actor: actor_key(app, ctx, &f.actor).await?,
            since_ms: since_ms(&f.since)?,
            after_seq: f.after,
            limit: PAGE,
            ..Default::default()
        })
    };
    let rows = match filter.await {
        Ok(filter) => events_page(app, &ctx.caller, filter).await,
        Err(e) => Err(e),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| query_string(&f, r.seq)))
        .flatten();
    let events = rows
        .into_iter()
        .map(|r| EventView {
            seq: r.seq,
            at: ms_to_datetime(r.at_ms).format(&Rfc3339).unwrap_or_default(),
            kind: r.kind,
            actor: r.actor,
            data: r.data,
        })
        .collect();
    render(
        StatusCode::OK,
        &AuditPage {
            action: f.action,
            actor: f.actor,
            since: f.since,
            events,
            next,
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/audit`
pub async fn page(
    State(app): State<AppState>,
    ctx: Ctx,
    query: Result<Query<Filters>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(f)) => audit_page(&app, &ctx, f, None).await,
        Err(e) => error_page(
            Some(ctx.layout("Audit log", "/console/audit")),
            ApiError::Invalid {
                code: "invalid_query",
                message: format!("{} (accepted: action, actor, since, after)", e.body_text()),
                field: None,
            },
        ),
    }
}

/// `POST /console/audit/verify`: walks the chain and shows the result above the first page.
pub async fn verify(State(app): State<AppState>, ctx: Ctx) -> Response {
    let flash = match verify_chain(&app).await {
        Ok(v) if v.broken.is_none() => Flash::ok(format!("Chain verified: {}.", v.summary())),
        Ok(v) => Flash::error(format!("Chain broken: {}.", v.summary())),
        Err(e) => Flash::error(e.status_and_message().1),
    };
    audit_page(&app, &ctx, Filters::default(), flash).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_day_or_a_time() {
        assert_eq!(since_ms("").unwrap(), None);
        assert_eq!(since_ms("1970-01-02").unwrap(), Some(86_400_000));
        assert_eq!(since_ms("1970-01-01T00:00:01Z").unwrap(), Some(1000));
        assert!(since_ms("yesterday").is_err());
    }
}
