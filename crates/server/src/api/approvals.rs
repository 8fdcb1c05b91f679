//! `/api/v1/approvals`: list, show and decide just-in-time approval requests.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use keyward_core::api::approvals::{Approval, ApproveRequest, CommentRequest, Decider, Requester};
use keyward_store::ApprovalRow;
use serde::Deserialize;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::approvals::{self as domain, ListQuery};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub(crate) fn wire(row: ApprovalRow) -> Approval {
    let decided_by = match (row.decided_by_user, row.decided_by_email) {
        (Some(user_id), Some(email)) => Some(Decider { user_id, email }),
        _ => None,
    };
    let revoked_by = match (row.revoked_by_user, row.revoked_by_email) {
        (Some(user_id), Some(email)) => Some(Decider { user_id, email }),
        _ => None,
    };
    Approval {
        id: row.id,
        org_id: row.org_id,
        route_id: row.route_id,
        route: row.route_name,
        requester: Requester {
            kind: row.requester_kind,
            subject: row.requester_subject,
            email: row.requester_email,
            automation_id: row.requester_automation,
        },
        policy_id: row.policy_id,
        reason: row.reason,
        summary: row.summary,
        mode: row.mode,
        grant: row.grant_kind,
        grant_seconds: row.grant_seconds,
        state: row.state,
        created_at: to_datetime(row.created_at),
        expires_at: to_datetime(row.expires_at),
        decided_by,
        decision_comment: row.decision_comment,
        decided_at: row.decided_at.map(to_datetime),
        grant_expires_at: row.grant_expires_at.map(to_datetime),
        executed_at: row.executed_at.map(to_datetime),
        revoked_by,
        revoke_comment: row.revoke_comment,
        revoked_at: row.revoked_at.map(to_datetime),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub state: Option<String>,
    pub route: Option<String>,
    pub requester: Option<String>,
    pub limit: Option<i64>,
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    let q = super::query(q, "state, route, requester, limit")?;
    let query = ListQuery {
        state: q.state,
        route: q.route,
        requester: q.requester,
        limit: q.limit,
    };
    let rows = domain::list_approvals(&app, &caller, query).await?;
    Ok(Json(rows.into_iter().map(wire).collect()))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(wire(domain::find_approval(&app, &caller, &id).await?)))
}

/// What a person decides about one request; the three decision routes differ only in this.
enum Decision {
    Approve(ApproveRequest),
    Deny(Option<String>),
    Revoke(Option<String>),
}

/// Finds the request (404 across organizations), applies the decision through the domain
/// (which checks who may decide), and answers the row as it now stands.
async fn decide(
    app: &AppState,
    caller: &Caller,
    id: &str,
    decision: Decision,
) -> Result<Json<Approval>, ApiError> {
    let row = domain::find_approval(app, caller, id).await?;
    let row = match decision {
        Decision::Approve(body) => domain::approve(app, caller, row, body).await?,
        Decision::Deny(comment) => domain::deny(app, caller, row, comment).await?,
        Decision::Revoke(comment) => domain::revoke(app, caller, row, comment).await?,
    };
    Ok(Json(wire(row)))
}

pub async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<Json<Approval>, ApiError> {
    decide(&app, &caller, &id, Decision::Approve(body)).await
}

pub async fn deny(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentRequest>,
) -> Result<Json<Approval>, ApiError> {
    decide(&app, &caller, &id, Decision::Deny(body.comment)).await
}

pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentRequest>,
) -> Result<Json<Approval>, ApiError> {
    decide(&app, &caller, &id, Decision::Revoke(body.comment)).await
}
