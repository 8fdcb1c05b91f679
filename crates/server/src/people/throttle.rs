//! Limits on what anonymous clients can make the server do with passwords and one-time secrets
//! (sign-in, invitations, the setup link):
//!
//! - a request budget per client address (every attempt counts, right or wrong), so one client
//!   cannot keep the password hashers busy;
//! - an exponential backoff per account and per address on failures: a few are free, then each
//!   further attempt waits 2^n seconds, capped at `KEYWARD_LOGIN_BACKOFF_MAX`. A cap instead of a
//!   lockout, so an anonymous stranger cannot lock a person out for long, and per address too,
//!   so spraying one password over many accounts slows down as fast as guessing one;
//! - a cap on concurrent argon2 work in this process; requests over it wait briefly, then get
//!   503 with `Retry-After` instead of queueing unbounded blocking threads (19 MiB each).
//!
//! Counters live in the store, so every replica sees the same ones.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use keyward_store::secret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// Failures an account may have before each further attempt must wait.
pub const ACCOUNT_FREE_FAILURES: i64 = 5;
/// Failures an address may have (across accounts) before each further attempt must wait; more
/// than an account's, since offices share an address.
pub const ADDRESS_FREE_FAILURES: i64 = 10;
/// An hour without failures and a key starts over (milliseconds).
pub const FORGET_AFTER_MS: i64 = 3600 * 1000;
/// Sign-in, invitation and setup requests one address may make per minute.
pub const REQUESTS_PER_MINUTE: i64 = 60;
const REQUEST_WINDOW: i64 = 60;

/// A failure counter and how many failures it allows before backing off.
#[derive(Clone, Debug)]
pub struct Key {
    name: String,
    free: i64,
}

/// The account an email names, known or not (unknown emails back off alike, so the wait tells
/// nothing about whether an account exists). Hashed: the key must not store typed text.
pub fn account(email: &str) -> Key {
    Key {
        name: format!("login:{}", secret::hash_token(&email.trim().to_lowercase())),
        free: ACCOUNT_FREE_FAILURES,
    }
}

/// Failures from one client address in one `scope` (`login`, `invite`, `setup`).
pub fn address(scope: &str, client: &ClientAddr) -> Key {
    Key {
        name: format!("{scope}_addr:{}", client.limit_key()),
        free: ADDRESS_FREE_FAILURES,
    }
}

/// Seconds to wait after the last of `failures`, or 0.
pub fn backoff(failures: i64, free: i64, cap: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let exponent = (failures - free).min(62) as u32;
    2i64.saturating_pow(exponent).min(cap)
}

/// Counts this request against the client's per-minute budget; `Some(seconds)` when it is spent.
pub async fn admit(app: &AppState, client: &ClientAddr, now: i64) -> Result<Option<u64>, ApiError> {
    let key = format!("auth_requests:{}", client.limit_key());
    let count = app
        .store
        .bump_rate_counter(&key, now, REQUEST_WINDOW)
        .await?;
    if count > REQUESTS_PER_MINUTE {
        let window_end = (now.div_euclid(REQUEST_WINDOW) + 1) * REQUEST_WINDOW;
        return Ok(Some((window_end - now).max(1) as u64));
    }
    Ok(None)
}

/// `Some(seconds)` when any of `keys` is still backing off at `now_ms`. Checked before any
/// password work, so a backing-off request learns nothing about the password.
pub async fn wait_for(app: &AppState, keys: &[&Key], now_ms: i64) -> Result<Option<u64>, ApiError> {
    let mut longest_ms = 0;
    for key in keys {
        if let Some((failures, last_ms)) = app.store.failures(&key.name).await? {
            if now_ms - last_ms >= FORGET_AFTER_MS {
                continue;
            }
            let wait = backoff(failures, key.free, app.config.login_backoff_max);
            longest_ms = longest_ms.max(last_ms + wait * 1000 - now_ms);
        }
    }
    // Whole seconds, rounded up: Retry-After has no finer unit.
    Ok((longest_ms > 0).then(|| (longest_ms as u64).div_ceil(1000)))
}

/// Counts one failure under each of `keys` at `now_ms`.
pub async fn failed(app: &AppState, keys: &[&Key], now_ms: i64) -> Result<(), ApiError> {
    for key in keys {
        app.store
            .record_failure(&key.name, now_ms, FORGET_AFTER_MS)
            .await?;
    }
    Ok(())
}

/// Forgets an account's failures after its owner proved the password. Address keys stay: a
/// sprayer with one account of their own must not be able to reset their address.
pub async fn succeeded(app: &AppState, key: &Key) -> Result<(), ApiError> {
    Ok(app.store.clear_failures(&key.name).await?)
}

/// The text a failed sign-in's audit event records for what was typed as the email: only
/// something shaped like an email, since people type passwords into the wrong box.
pub fn typed_email_for_audit(typed: &str) -> String {
    let typed = typed.trim();
    let mut parts = typed.split('@');
    let shaped = matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty()
                && typed.len() <= 254
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                && !local.chars().any(|c| c.is_whitespace() || c.is_control())
    );
    if shaped {
        typed.to_lowercase()
    } else {
        "<not an email>".to_owned()
    }
}

/// Concurrent argon2 computations allowed in this process: one per core, at most 8.
fn hashing_slots() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .clamp(1, 8)
}

/// Process-wide on purpose: it bounds this process's CPU and memory, whatever state the
/// handlers were built with.
static HASHING: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(hashing_slots())));
/// How long a request waits for a hashing slot before it is told to come back.
const HASHING_WAIT: Duration = Duration::from_secs(5);

/// A slot for one argon2 computation. Move it into the blocking task, so a client that hangs up
/// does not free the slot while the work still runs.
pub async fn hashing_permit() -> Result<OwnedSemaphorePermit, ApiError> {
    permit(&HASHING, HASHING_WAIT).await
}

async fn permit(gate: &Arc<Semaphore>, wait: Duration) -> Result<OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(wait, Arc::clone(gate).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(ApiError::internal("the password hashing gate is closed")),
        Err(_) => Err(ApiError::Busy { retry_after: 1 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_failures_up_to_the_cap() {
        let waits: Vec<i64> = (0..12).map(|n| backoff(n, 5, 20)).collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 20, 20]);
        assert_eq!(backoff(i64::MAX, 5, 300), 300);
    }

    #[tokio::test]
    async fn hashing_over_the_cap_waits_then_is_refused_with_retry_after() {
        let gate = Arc::new(Semaphore::new(1));
        let held = permit(&gate, Duration::from_millis(10)).await.unwrap();
        let refused = permit(&gate, Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(refused, ApiError::Busy { retry_after: 1 }));
        let response = axum::response::IntoResponse::into_response(refused);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        drop(held);
        assert!(permit(&gate, Duration::from_millis(10)).await.is_ok());
    }

    #[test]
    fn only_email_shaped_text_reaches_the_audit_log() {
        assert_eq!(
            typed_email_for_audit(" Bob@Acme.example "),
            "bob@acme.example"
        );
        for typed in [
            "correct horse battery staple",
            "hunter2",
            "p@ss word",
            "x@y",
            "pass@word!",
            "",
        ] {
            assert_eq!(typed_email_for_audit(typed), "<not an email>", "{typed}");
        }
    }
}
