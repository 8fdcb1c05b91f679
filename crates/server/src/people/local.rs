//! The `local` provider's sign-in — password, then TOTP when enabled, under the database-backed
//! rate limits that guard them — and the console sessions it starts.

use keyward_core::UserId;
use keyward_store::{Store, UserRow, WebSessionRow, secret};

use super::cookies::{SESSION_IDLE, SESSION_TTL, session_cookie};
use super::passwords::{DUMMY_HASH, verify_password};
use super::throttle;
use super::totp;
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// Why a sign-in was refused. Each says what to do, never which part was wrong beyond that.
pub enum SignInError {
    Invalid,
    TotpRequired,
    /// Too many failures for the account or the address, or too many attempts from the address:
    /// retry after this many seconds.
    Throttled(u64),
    Other(ApiError),
}

impl From<ApiError> for SignInError {
    fn from(e: ApiError) -> Self {
        SignInError::Other(e)
    }
}

impl From<keyward_store::StoreError> for SignInError {
    fn from(e: keyward_store::StoreError) -> Self {
        SignInError::Other(e.into())
    }
}

impl SignInError {
    pub fn message(&self) -> &'static str {
        match self {
            SignInError::Invalid => "The email, password or one-time code is not right.",
            SignInError::TotpRequired => "Enter the six-digit code from your authenticator app.",
            SignInError::Throttled(_) => {
                "Too many sign-in attempts for this account or from this address; wait a little (the wait doubles with each failure) and try again."
            }
            SignInError::Other(_) => "Sign-in failed on the server; the server log has details.",
        }
    }
}

/// Checks email, password and (when enabled) the TOTP code. Failures count against the account
/// and the client's address in every replica (see [`super::throttle`]).
pub async fn sign_in(
    app: &AppState,
    client: &ClientAddr,
    email: &str,
    password: String,
    totp: Option<&str>,
    now: i64,
) -> Result<UserRow, SignInError> {
    let email = email.trim().to_lowercase();
    let account = throttle::account(&email);
    let address = throttle::address("login", client);
    let keys = [&account, &address];
    let now_ms = app.clock.now_ms();
    if let Some(wait) = throttle::admit(app, client, now).await? {
        return Err(SignInError::Throttled(wait));
    }
    if let Some(wait) = throttle::wait_for(app, &keys, now_ms).await? {
        return Err(SignInError::Throttled(wait));
    }
    let user = app.store.find_user_by_email(&email).await?;
    let credential = match &user {
        Some(u) => app.store.local_credential(u.id).await?,
        None => None,
    };
    // Unknown accounts cost the same argon2 work as known ones, so timing tells nothing.
    let stored = credential
        .as_ref()
        .map(|c| c.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let password_ok = verify_password(password, stored).await? && credential.is_some();
    // Failures are stamped when known, after the hashing: the backoff runs from then.
    let (Some(user), Some(credential), true) = (user, credential, password_ok) else {
        throttle::failed(app, &keys, app.clock.now_ms()).await?;
        return Err(SignInError::Invalid);
    };
    if let Some(sealed) = &credential.sealed_totp {
        let Some(code) = totp.filter(|c| !c.trim().is_empty()) else {
            return Err(SignInError::TotpRequired);
        };
        let secret = app
            .master
            .open(&totp::totp_aad(user.id), sealed)
            .map_err(|e| ApiError::internal(format!("TOTP secret: {e}")))?;
        // Spent once: the same code again within its window is refused (a replay).
        if !totp::accept_once(app, user.id, &secret, code, now).await? {
            throttle::failed(app, &keys, app.clock.now_ms()).await?;
            return Err(SignInError::Invalid);
        }
    }
    throttle::succeeded(app, &account).await?;
    Ok(user)
}

/// Starts a console session; returns the cookie value (shown only in `Set-Cookie`).
pub async fn start_session(store: &dyn Store, user: UserId, now: i64) -> Result<String, ApiError> {
    let value =
        secret::generate_token("kwsess_").ok_or_else(|| ApiError::internal("system RNG failed"))?;
    store
        .create_web_session(&WebSessionRow {
            hash: secret::hash_token(&value),
            user_id: user,
            created_at: now,
            expires_at: now + SESSION_IDLE.min(SESSION_TTL),
        })
        .await?;
    Ok(value)
}

/// The signed-in person of a request, from its session cookie; the request counts as activity
/// (the idle deadline slides, see [`SESSION_IDLE`]).
pub async fn session_user(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    now: i64,
) -> Result<Option<(UserRow, String)>, ApiError> {
    let Some(cookie) = session_cookie(headers) else {
        return Ok(None);
    };
    let user = app
        .store
        .touch_web_session(&secret::hash_token(&cookie), now, SESSION_IDLE, SESSION_TTL)
        .await?;
    Ok(user.map(|u| (u, cookie)))
}

/// The form token that ties a console form to its session (forms from other sites lack it).
pub fn csrf_token(session: &str) -> String {
    secret::hash_token(&format!("csrf:{session}"))
}

pub fn csrf_matches(session: &str, given: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(
        csrf_token(session).as_bytes(),
        given.as_bytes(),
    )
    .is_ok()
}
