//! OIDC browser sign-in (`entra_id`, `okta`, `auth0`, `keycloak`, `workos`):
//! `GET /auth/<provider>/login` starts an authorization code flow with PKCE (S256), state and
//! nonce; `GET /auth/<provider>/callback` finishes it. The state travels twice — in the URL and
//! in an HttpOnly cookie of the browser that started — and the nonce and PKCE verifier stay on
//! the server in a single-use row (migration 0006), so any replica can finish a sign-in another
//! began and no callback can be replayed.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_store::{SsoPendingRow, secret};
use serde::Deserialize;

use super::admission::{PENDING_TTL, admit, land, safe_next};
use super::cookies::{add_cookie, cookie, secure};
use super::html::{error_page, notice, redirect};
use super::pending_bounds;
use super::refusal::{Refusal, audit_refusal};
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie holding the OIDC `state` of the sign-in this browser started.
const STATE_COOKIE: &str = "keyward_sso_state";

fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn unknown_provider(app: &AppState, provider: &str) -> Option<Response> {
    let configured = app.config.auth.name();
    if provider == configured && app.sso.oidc.is_some() {
        return None;
    }
    let message = format!(
        "No sign-in through {provider:?} here: this server's identity provider is AUTH_PROVIDER={configured}."
    );
    Some(notice(StatusCode::NOT_FOUND, "Sign in", &message))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /auth/<provider>/login`: off to the identity provider.
pub async fn login(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    client: ClientAddr,
    Query(q): Query<LoginQuery>,
) -> Response {
    if let Some(response) = unknown_provider(&app, &provider) {
        return response;
    }
    let Some(oidc) = app.sso.oidc.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = app.clock.now();
    if let Err(refused) = pending_bounds::admit(&app, &client, q.next.as_deref(), now).await {
        return refused;
    }
    let begin = match oidc.begin(now).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "starting an OIDC sign-in failed");
            return notice(
                StatusCode::BAD_GATEWAY,
                "Sign in",
                &format!("The identity provider cannot be reached: {e}"),
            );
        }
    };
    let row = SsoPendingRow {
        state_hash: secret::hash_token(&begin.state),
        protocol: "oidc".into(),
        nonce: begin.nonce,
        pkce_verifier: begin.pkce_verifier,
        next_path: safe_next(q.next.as_deref()),
        created_at: now,
        expires_at: now + PENDING_TTL,
    };
    if let Err(e) = app.store.create_sso_pending(&row).await {
        return error_page(e.into());
    }
    let mut response = redirect(&begin.url);
    // SameSite=Lax: the callback is a top-level GET navigation from the provider, which Lax
    // cookies accompany; a cross-site POST or an embedded request does not get it.
    add_cookie(
        &mut response,
        &format!(
            "{STATE_COOKIE}={}; Path=/auth/{provider}/callback; HttpOnly; SameSite=Lax; Max-Age={PENDING_TTL}{}",
            begin.state,
            secure(&app)
        ),
    );
    response
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: which provider answered (sent by providers that advertise it).
    iss: Option<String>,
}

/// `GET /auth/<provider>/callback`: the provider's answer.
pub async fn callback(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    client: ClientAddr,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    if let Some(response) = unknown_provider(&app, &provider) {
        return response;
    }
    if let Err(refused) = pending_bounds::admit_finish(&app, &client, app.clock.now()).await {
        return refused;
    }
    let retry = format!("/auth/{provider}/login");
    let clear = format!(
        "{STATE_COOKIE}=; Path=/auth/{provider}/callback; HttpOnly; SameSite=Lax; Max-Age=0{}",
        secure(&app)
    );
    let mut response = match finish(&app, &headers, q).await {
        Ok(response) => response,
        Err(refusal) => {
            audit_refusal(&app, "oidc", &refusal).await;
            refusal.page(&retry)
        }
    };
    add_cookie(&mut response, &clear);
    response
}

async fn finish(
    app: &AppState,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<Response, Refusal> {
    let oidc = app
        .sso
        .oidc
        .as_ref()
        .ok_or_else(|| Refusal::Other(ApiError::internal("no OIDC relying party")))?;
    let now = app.clock.now();
    let Some(started) = cookie(headers, STATE_COOKIE) else {
        return Err(Refusal::State(
            "This sign-in was not started in this browser (or it took longer than 10 minutes): start again.",
        ));
    };
    // Taken once, whatever happens next: a second callback for this sign-in finds nothing.
    let pending = app
        .store
        .take_sso_pending(&secret::hash_token(&started), now)
        .await?;
    let given = q.state.as_deref().unwrap_or("");
    if !constant_time_eq(given, &started) {
        return Err(Refusal::State(
            "The sign-in answer does not belong to the sign-in this browser started (state mismatch): start again.",
        ));
    }
    let Some(pending) = pending.filter(|p| p.protocol == "oidc") else {
        return Err(Refusal::State(
            "This sign-in was already completed or has expired: start again.",
        ));
    };
    // A mix-up defense: an answer naming another issuer is not our provider's.
    if let Some(iss) = &q.iss
        && iss != &oidc.settings().issuer
    {
        return Err(Refusal::Verification(format!(
            "the answer comes from issuer {iss:?}, not {:?}",
            oidc.settings().issuer
        )));
    }
    if let Some(error) = q.error {
        let description = q.error_description.unwrap_or_default();
        return Err(Refusal::Provider(
            format!("{error} {description}").trim().to_owned(),
        ));
    }
    let code = q.code.filter(|c| !c.is_empty()).ok_or(Refusal::State(
        "The identity provider's answer has no code: start again.",
    ))?;
    let who = oidc
        .finish(&code, &pending.nonce, &pending.pkce_verifier, now)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "an OIDC sign-in was refused");
            Refusal::Verification(e.to_string())
        })?;
    let user = admit(app, &who, "oidc", now).await?;
    land(app, &user, &who, "oidc", &pending.next_path, now).await
}
