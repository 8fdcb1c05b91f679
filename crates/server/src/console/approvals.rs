//! `/console/approvals`: just-in-time approval requests (SPEC §9) — the pending list with each
//! request's reason and the seconds left, one request's detail, and approving (once or
//! time-boxed), denying with a comment, or revoking a grant. The same domain calls as
//! `/api/v1/approvals`: who sees and who decides is decided there (a requester never approves
//! their own request; deciding needs `gateway` manage or `human_in_the_loop`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::approvals::{ApprovalState, ApproveRequest, GrantKind};
use keyward_store::ApprovalRow;
use serde::Deserialize;
use serde_json::Value;

use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::clock;
use crate::domain::approvals::{self as domain, ListQuery};
use crate::state::AppState;

/// The states the list filters on; `all` lists every state.
const STATES: [&str; 7] = [
    "pending", "approved", "denied", "expired", "revoked", "executed", "all",
];

pub struct ApprovalView {
    pub id: String,
    pub route: String,
    pub requester: String,
    pub reason: String,
    /// `POST /tools/run` and the model or tool when the gateway saw one.
    pub summary: String,
    pub policy: String,
    pub mode: String,
    pub grant: String,
    pub grant_seconds: i64,
    pub state: String,
    pub created: String,
    pub expires: String,
    /// Seconds until a pending request expires, or an approved grant ends.
    pub remaining: Option<i64>,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub grant_expires: Option<String>,
    pub revoked_by: Option<String>,
    pub revoke_comment: Option<String>,
    pub pending: bool,
    pub revocable: bool,
}

fn summary(v: &Value) -> String {
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let mut s = format!("{} {}", field("method"), field("path"))
        .trim()
        .to_owned();
    for (k, label) in [("host", "host"), ("model", "model"), ("tool", "tool")] {
        if !field(k).is_empty() {
            s.push_str(&format!(" · {label} {}", field(k)));
        }
    }
    s
}

fn view(row: ApprovalRow, now: i64) -> ApprovalView {
    let pending = row.state == ApprovalState::Pending;
    let revocable = row.state == ApprovalState::Approved;
    let remaining = if pending {
        Some((row.expires_at - now).max(0))
    } else if revocable {
        row.grant_expires_at.map(|at| (at - now).max(0))
    } else {
        None
    };
    ApprovalView {
        id: row.id.to_string(),
        route: row.route_name,
        requester: row
            .requester_email
            .clone()
            .unwrap_or_else(|| format!("{}:{}", row.requester_kind, row.requester_subject)),
        reason: row.reason,
        summary: summary(&row.summary),
        policy: row.policy_id,
        mode: row.mode.as_str().to_owned(),
        grant: row.grant_kind.as_str().to_owned(),
        grant_seconds: row.grant_seconds,
        state: row.state.to_string(),
        created: clock::rfc3339(row.created_at),
        expires: clock::rfc3339(row.expires_at),
        remaining,
        decided_by: row.decided_by_email,
        comment: row.decision_comment,
        grant_expires: row.grant_expires_at.map(clock::rfc3339),
        revoked_by: row.revoked_by_email,
        revoke_comment: row.revoke_comment,
        pending,
        revocable,
    }
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
pub struct ApprovalsPage {
    pub layout: Layout,
    pub state: String,
    pub states: Vec<&'static str>,
    pub approvals: Vec<ApprovalView>,
}

#[derive(Template)]
#[template(path = "console/approval.html")]
pub struct ApprovalPage {
    pub layout: Layout,
    pub a: ApprovalView,
    pub csrf: String,
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    state: Option<String>,
}

/// `GET /console/approvals`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<ListParams>) -> Response {
    let layout = ctx.layout("Approvals", "/console/approvals");
    // Only the listed states reach the page (anything else lists pending ones).
    let state = q
        .state
        .filter(|s| STATES.contains(&s.as_str()))
        .unwrap_or_else(|| "pending".to_owned());
    let query = ListQuery {
        state: (state != "all").then(|| state.clone()),
        route: None,
        requester: None,
        limit: Some(200),
    };
    let rows = match domain::list_approvals(&app, &ctx.caller, query).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    let now = ctx.caller.now;
    render(
        StatusCode::OK,
        &ApprovalsPage {
            state,
            states: STATES.to_vec(),
            approvals: rows.into_iter().map(|r| view(r, now)).collect(),
            layout,
        },
    )
}

async fn detail(
    app: &AppState,
    ctx: &Ctx,
    id: &str,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx
        .layout("Approval request", "/console/approvals")
        .with_flash(flash);
    match domain::find_approval(app, &ctx.caller, id).await {
        Ok(row) => render(
            status,
            &ApprovalPage {
                a: view(row, ctx.caller.now),
                csrf: ctx.session.csrf.clone(),
                layout,
            },
        ),
        Err(e) => error_page(Some(layout), e),
    }
}

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

/// `GET /console/approvals/{id}`
pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let flash = match q.done.as_deref() {
        Some("approved") => Flash::ok("Approved: the request goes through."),
        Some("denied") => Flash::ok("Denied: the requester gets a refusal with your comment."),
        Some("revoked") => Flash::ok("The grant was revoked; the next request asks again."),
        _ => None,
    };
    detail(&app, &ctx, &id, flash, StatusCode::OK).await
}

fn non_empty(fields: &std::collections::HashMap<String, String>, key: &str) -> Option<String> {
    fields
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

enum Decision {
    Approve,
    Deny,
    Revoke,
}

async fn decide(app: &AppState, ctx: &Ctx, id: &str, body: &[u8], decision: Decision) -> Response {
    let fields = super::form_fields(body);
    let comment = non_empty(&fields, "comment");
    let result = async {
        let row = domain::find_approval(app, &ctx.caller, id).await?;
        match &decision {
            Decision::Approve => {
                let grant = match non_empty(&fields, "grant") {
                    None => None,
                    Some(g) => Some(GrantKind::parse(&g).ok_or_else(|| {
                        crate::error::ApiError::invalid(
                            "grant",
                            format!("unknown grant '{g}'; choose once or timebox"),
                        )
                    })?),
                };
                let body = ApproveRequest {
                    comment,
                    grant,
                    duration: non_empty(&fields, "duration"),
                };
                domain::approve(app, &ctx.caller, row, body).await
            }
            Decision::Deny => domain::deny(app, &ctx.caller, row, comment).await,
            Decision::Revoke => domain::revoke(app, &ctx.caller, row, comment).await,
        }
    }
    .await;
    match result {
        Ok(row) => {
            let done = match decision {
                Decision::Approve => "approved",
                Decision::Deny => "denied",
                Decision::Revoke => "revoked",
            };
            see_other(&format!("/console/approvals/{}?done={done}", row.id))
        }
        Err(e) => {
            let (status, text) = e.status_and_message();
            if status == StatusCode::NOT_FOUND {
                return error_page(
                    Some(ctx.layout("Approval request", "/console/approvals")),
                    crate::error::ApiError::not_found("approval"),
                );
            }
            detail(app, ctx, id, Flash::error(text), status).await
        }
    }
}

/// `POST /console/approvals/{id}/approve`
pub async fn approve(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(&app, &ctx, &id, &body, Decision::Approve).await
}

/// `POST /console/approvals/{id}/deny`
pub async fn deny(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(&app, &ctx, &id, &body, Decision::Deny).await
}

/// `POST /console/approvals/{id}/revoke`
pub async fn revoke(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(&app, &ctx, &id, &body, Decision::Revoke).await
}
