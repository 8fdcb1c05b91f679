//! `/console`: the organization and the pages the person may open; `/` sends signed-in people
//! here; the organization switcher.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::guard::{Ctx, ORG_COOKIE};
use super::render::{Layout, render, see_other};
use crate::error::ApiError;
use crate::people::cookies::{add_cookie, secure};
use crate::people::local;
use crate::state::AppState;

/// One page the person may open, with what it is for.
pub struct Card {
    pub href: &'static str,
    pub label: &'static str,
    pub about: &'static str,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
pub struct Dashboard {
    pub layout: Layout,
    pub org: Option<String>,
    pub role: Option<String>,
    pub cards: Vec<Card>,
}

fn about(href: &str) -> &'static str {
    match href {
        "/console/members" => "Who belongs to the organization, invitations and roles.",
        "/console/tokens" => "Your personal access tokens for the API and the CLI.",
        "/console/audit" => "Every change and sign-in, and the hash chain's verification.",
        _ => "",
    }
}

/// `GET /console`
pub async fn page(ctx: Ctx) -> Response {
    let layout = ctx.layout("Overview", "/console");
    let cards: Vec<Card> = layout
        .who
        .as_ref()
        .map(|w| {
            w.nav
                .iter()
                .filter(|n| n.href != "/console")
                .map(|n| Card {
                    href: n.href,
                    label: n.label,
                    about: about(n.href),
                })
                .collect()
        })
        .unwrap_or_default();
    let org = ctx.caller.org.as_ref();
    render(
        StatusCode::OK,
        &Dashboard {
            org: org.map(|o| o.name.clone()),
            role: org.map(|o| o.role.name.clone()),
            layout,
            cards,
        },
    )
}

/// `GET /`: the console for signed-in people; otherwise what it always was (no such route).
pub async fn root(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match local::session_user(&app, &headers, app.clock.now()).await {
        Ok(Some(_)) => see_other("/console"),
        _ => ApiError::not_found("route").into_response(),
    }
}

/// `POST /console/org`: remembers the chosen organization (one of the person's own).
pub async fn switch_org(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let chosen = fields.get("org").map(String::as_str).unwrap_or("");
    let Some((id, _)) = ctx.session.orgs.iter().find(|(id, _)| id == chosen) else {
        return super::render::error_page(
            Some(ctx.layout("", "")),
            ApiError::not_found("organization"),
        );
    };
    let mut response = see_other("/console");
    add_cookie(
        &mut response,
        &format!(
            "{ORG_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax{}",
            secure(&app)
        ),
    );
    response
}
