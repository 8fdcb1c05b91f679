//! `/console/tokens`: the person's personal access tokens — listed by name and prefix (never the
//! secret), created (the secret shown once, on the answer to the form), and revoked.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::v1::CreateToken;
use serde::Deserialize;

use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::clock;
use crate::domain::tokens::{create_personal_token, list_personal_tokens, revoke_personal_token};
use crate::state::AppState;

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub expires: String,
    pub revoked: Option<String>,
}

/// The lifetimes offered, in days; the server's own limit (`KEYWARD_MAX_PAT_TTL`) still applies.
const LIFETIMES: [u64; 4] = [7, 30, 90, 365];

#[derive(Template)]
#[template(path = "console/tokens.html")]
pub struct TokensPage {
    pub layout: Layout,
    pub tokens: Vec<TokenView>,
    pub lifetimes: Vec<u64>,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/token_created.html")]
pub struct TokenCreatedPage {
    pub layout: Layout,
    pub name: String,
    pub expires: String,
    pub token: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

async fn tokens_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx
        .layout("Access tokens", "/console/tokens")
        .with_flash(flash);
    let rows = match list_personal_tokens(app, &ctx.caller).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    render(
        status,
        &TokensPage {
            tokens: rows
                .into_iter()
                .map(|t| TokenView {
                    id: t.id.to_string(),
                    name: t.name,
                    prefix: t.prefix,
                    created: clock::rfc3339(t.created_at),
                    expires: t
                        .expires_at
                        .map_or_else(|| "never".to_owned(), clock::rfc3339),
                    revoked: t.revoked_at.map(clock::rfc3339),
                })
                .collect(),
            lifetimes: LIFETIMES.to_vec(),
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/tokens`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("revoked") => Flash::ok("The token was revoked; it no longer works."),
        _ => None,
    };
    tokens_page(&app, &ctx, flash, StatusCode::OK).await
}

/// `POST /console/tokens`: the answer is the only place the secret ever appears.
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let name = fields.get("name").cloned().unwrap_or_default();
    let days: u64 = fields
        .get("expires_days")
        .and_then(|d| d.parse().ok())
        .unwrap_or(30);
    let request = CreateToken {
        name,
        expires_in: Some(days.saturating_mul(86_400)),
    };
    match create_personal_token(&app, &ctx.caller, &request).await {
        Ok((row, token)) => {
            let mut response = render(
                StatusCode::CREATED,
                &TokenCreatedPage {
                    layout: ctx.layout("Token created", "/console/tokens"),
                    name: row.name,
                    expires: row
                        .expires_at
                        .map_or_else(|| "never".to_owned(), clock::rfc3339),
                    token,
                },
            );
            // Never kept by the browser's back/forward cache either.
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store, private"),
            );
            response
        }
        Err(e) => {
            let (status, text) = e.status_and_message();
            tokens_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}

/// `POST /console/tokens/{id}/revoke`
pub async fn revoke(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match revoke_personal_token(&app, &ctx.caller, &id).await {
        Ok(_) => see_other("/console/tokens?done=revoked"),
        Err(e) => {
            let (status, text) = e.status_and_message();
            tokens_page(&app, &ctx, Flash::error(text), status).await
        }
    }
}
