//! `/console/keys`: the issuer's signing keys as a rotation timeline — the next key (published,
//! not yet signing), the active one, and those retiring (still published so tokens they signed
//! verify) — from the keyring, like `keyward keys list`. Read-only: rotating is
//! `keyward keys rotate` on the server, which has no API.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_jose::schedule::KeyPhase;

use super::guard::Ctx;
use super::render::{Layout, render};
use crate::clock;
use crate::state::AppState;

pub struct KeyView {
    pub kid: String,
    pub alg: String,
    /// `next`, `active`, `retiring` or `retired`.
    pub state: &'static str,
    pub source: &'static str,
    pub published: String,
    pub activates: String,
    pub retires: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
pub struct KeysPage {
    pub layout: Layout,
    pub keys: Vec<KeyView>,
    pub automatic: bool,
    pub interval_days: i64,
}

fn state(phase: KeyPhase) -> &'static str {
    match phase {
        KeyPhase::Published => "next",
        KeyPhase::Active => "active",
        KeyPhase::Retiring => "retiring",
        KeyPhase::Retired => "retired",
    }
}

/// Newest activation first: next, then active, then the retiring ones.
fn timeline(app: &AppState, now: i64) -> Vec<KeyView> {
    let mut keys = app.keyring.list(now);
    keys.sort_by_key(|k| std::cmp::Reverse(k.0.activates_at));
    keys.into_iter()
        .filter(|(_, phase)| *phase != KeyPhase::Retired)
        .map(|(row, phase)| KeyView {
            state: state(phase),
            source: row.source.as_str(),
            published: clock::rfc3339(row.published_at),
            activates: clock::rfc3339(row.activates_at),
            retires: row
                .retires_at
                .map_or_else(|| "when a successor activates".to_owned(), clock::rfc3339),
            kid: row.kid,
            alg: row.alg,
        })
        .collect()
}

/// `GET /console/keys`
pub async fn page(State(app): State<AppState>, ctx: Ctx) -> Response {
    let policy = app.keyring.policy();
    render(
        StatusCode::OK,
        &KeysPage {
            layout: ctx.layout("Signing keys", "/console/keys"),
            keys: timeline(&app, app.clock.now()),
            automatic: policy.automatic,
            interval_days: policy.interval / 86_400,
        },
    )
}
