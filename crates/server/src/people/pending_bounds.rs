//! Bounds on the rows an anonymous `GET /auth/<provider>/login` or `GET /auth/saml/login`
//! writes: each starts a pending sign-in (one `sso_pending` row, kept for ten minutes), so
//! without bounds anyone could fill the table. Three limits apply before the row is written: the
//! `next` path is short, one client address starts a few sign-ins a minute, and the table holds
//! at most [`MAX_PENDING`] live rows.
//!
//! The other end, `GET /auth/<provider>/callback` and `POST /auth/saml/acs`, writes an audit
//! event for every refused answer; [`admit_finish`] holds one address to
//! [`FINISHES_PER_WINDOW`] answers a minute, so junk posts cannot fill the audit log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::html::{error_page, notice};
use super::next_path;
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// Sign-ins one client address may start per window; a person clicking "sign in" a few times,
/// or a handful of people behind one NAT, stay well below it.
pub const STARTS_PER_WINDOW: i64 = 30;
pub const WINDOW: i64 = 60;
/// Sign-in answers (callbacks, SAML posts) one client address may send per window: one per
/// sign-in started, so the same as [`STARTS_PER_WINDOW`].
pub const FINISHES_PER_WINDOW: i64 = STARTS_PER_WINDOW;
/// Live pending sign-ins across the server; at ~2.5 KiB a row at most, a few tens of MiB.
pub const MAX_PENDING: i64 = 10_000;

fn refusal(status: StatusCode, retry_after: Option<i64>, text: &str) -> Response {
    let mut response = notice(status, "Sign in", text);
    if let Some(secs) = retry_after
        && let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Counts one request under `scope` for the client's address; the 429 page once more than
/// `limit` came in this window.
async fn count(
    app: &AppState,
    client: &ClientAddr,
    scope: &str,
    limit: i64,
    what: &str,
    now: i64,
) -> Result<(), Response> {
    if client.0.is_none() {
        return Ok(());
    }
    // Behind a trusted proxy, the forwarded client; IPv6 counted per /64.
    let key = format!("{scope}:{}", client.limit_key());
    let count = app
        .store
        .bump_rate_counter(&key, now, WINDOW)
        .await
        .map_err(|e| error_page(ApiError::from(e)))?;
    if count > limit {
        let retry = WINDOW - now.rem_euclid(WINDOW);
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry),
            &format!(
                "More than {limit} {what} from your address in the last minute; wait {retry} seconds and try again."
            ),
        ));
    }
    Ok(())
}

/// Whether an identity provider's answer (callback or SAML post) from this client is looked at
/// (and, when refused, audited); the 429 page otherwise.
pub async fn admit_finish(app: &AppState, client: &ClientAddr, now: i64) -> Result<(), Response> {
    count(
        app,
        client,
        "sso_finish",
        FINISHES_PER_WINDOW,
        "sign-in answers came",
        now,
    )
    .await
}

/// Whether a new pending sign-in may be written; the refusal page otherwise.
pub async fn admit(
    app: &AppState,
    client: &ClientAddr,
    next: Option<&str>,
    now: i64,
) -> Result<(), Response> {
    if next.is_some_and(|n| n.len() > next_path::MAX_LEN) {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            None,
            &format!(
                "The return path (next) is longer than {} bytes: start signing in from this server's own pages.",
                next_path::MAX_LEN
            ),
        ));
    }
    count(
        app,
        client,
        "sso_start",
        STARTS_PER_WINDOW,
        "sign-ins were started",
        now,
    )
    .await?;
    let store_error = |e: keyward_store::StoreError| error_page(ApiError::from(e));
    let live = app.store.live_sso_pending(now).await.map_err(store_error)?;
    if live >= MAX_PENDING {
        tracing::warn!(
            live,
            "refusing new SSO sign-ins: too many pending sign-ins (someone may be filling the table)"
        );
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(WINDOW),
            "Too many sign-ins are in progress on this server right now; try again in a minute.",
        ));
    }
    Ok(())
}
