//! Reading and verifying the audit log.

use axum::Json;
use axum::extract::{Query, State};
use keyward_core::api::v1::{AuditEvent, AuditPage, AuditVerification};
use keyward_store::{AuditFilter, AuditRow};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::caller::Caller;
use crate::clock::ms_to_datetime;
use crate::error::ApiError;
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

pub(crate) fn time_ms(field: &'static str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::invalid(
                        field,
                        format!(
                            "{field} must be an RFC 3339 time like 2026-01-31T12:00:00Z (got {v:?})"
                        ),
                    )
                })
        })
        .transpose()
}

pub(crate) fn event_wire(row: AuditRow) -> AuditEvent {
    AuditEvent {
        seq: row.seq,
        at: ms_to_datetime(row.at_ms),
        kind: row.kind,
        org_id: row.org_id,
        actor: row.actor,
        data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::String(row.data)),
        prev_hash: row.prev_hash,
        hash: row.hash,
    }
}

/// The organization's events, the signing-key lifecycle and its members' own org-less events
/// (sign-ins, personal tokens, devices), oldest first.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Invalid {
        code: "invalid_query",
        message: format!(
            "{} (accepted: type, since, until, after, limit)",
            e.body_text()
        ),
        field: None,
    })?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let filter = AuditFilter {
        visible_to_org: Some(caller.org()?.id),
        kind: q.kind,
        actor: None,
        since_ms: time_ms("since", q.since.as_deref())?,
        until_ms: time_ms("until", q.until.as_deref())?,
        after_seq: q.after,
        limit,
    };
    let rows = app.store.audit_events(&filter).await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditPage {
        events: rows.into_iter().map(event_wire).collect(),
        next_after,
    }))
}

pub async fn verify(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<AuditVerification>, ApiError> {
    let result = crate::audit::verify_chain(app.store.as_ref(), &app.master.audit_key()).await?;
    Ok(Json(AuditVerification {
        ok: result.broken.is_none(),
        events_checked: result.checked,
        first_broken_seq: result.broken.as_ref().map(|b| b.seq()),
        message: result.summary(),
    }))
}
