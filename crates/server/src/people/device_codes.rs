//! The user codes of the device flow: drawn from an alphabet people read without mistakes, typed
//! back on the verification page or sent by the CLI, and the rate-limited decision on them that
//! both the page and the API make.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use keyward_core::UserId;
use keyward_store::{DeviceCodeRow, StoreError, secret};
use serde_json::json;

use crate::audit::kind;
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// RFC 8628 §6.1: no vowels (no words), no look-alikes; 20^8 ≈ 2^34 codes.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
/// Wrong user codes a person may enter per window before entry is refused.
pub const USER_CODE_FAILURES: i64 = 5;
pub const USER_CODE_WINDOW: i64 = 10 * 60;
/// Wrong user codes one client address may enter per window, over all its accounts.
pub const USER_CODE_FAILURES_PER_ADDRESS: i64 = 20;

/// A fresh user code; `None` when the system RNG fails.
pub fn random_user_code() -> Option<String> {
    let rng = SystemRandom::new();
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        let mut byte = [0u8; 1];
        rng.fill(&mut byte).ok()?;
        // 240 is the largest multiple of 20 below 256: no letter is likelier than another.
        if byte[0] < 240 {
            code.push(USER_CODE_ALPHABET[(byte[0] % 20) as usize] as char);
        }
    }
    Some(code)
}

/// `BCDF-GHJK` as people read it.
pub fn display_user_code(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// The canonical form of a typed user code, or `None` when it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// Approves or denies the authorization with `typed` user code for `user`. Wrong codes count
/// against the person in every replica; past the limit entry is refused for the window.
pub async fn decide(
    app: &AppState,
    client: &ClientAddr,
    user: UserId,
    typed: &str,
    approve: bool,
    now: i64,
) -> Result<DeviceCodeRow, ApiError> {
    super::require_local(app)?;
    let key = format!("user_code:{user}");
    // Per address as well: one client with many accounts must not multiply its guesses.
    let address_key = format!("user_code_addr:{}", client.limit_key());
    for (key, limit) in [
        (&key, USER_CODE_FAILURES),
        (&address_key, USER_CODE_FAILURES_PER_ADDRESS),
    ] {
        if app.store.rate_counter(key, now, USER_CODE_WINDOW).await? >= limit {
            let window_end = (now.div_euclid(USER_CODE_WINDOW) + 1) * USER_CODE_WINDOW;
            return Err(ApiError::Throttled {
                message: format!(
                    "too many wrong codes: code entry is blocked for up to {} minutes",
                    USER_CODE_WINDOW / 60
                ),
                retry_after: (window_end - now) as u64,
            });
        }
    }
    let wrong = || {
        ApiError::Invalid {
        code: "invalid_user_code",
        message: "no pending sign-in has this code: check the code your terminal shows (it expires after a few minutes)".into(),
        field: Some("user_code"),
    }
    };
    let decided = match normalize_user_code(typed) {
        Some(code) => {
            app.store
                .decide_device(&secret::hash_token(&code), user, approve, now)
                .await
        }
        None => Err(StoreError::NotFound),
    };
    let row = match decided {
        Ok(row) => row,
        Err(StoreError::NotFound) => {
            for key in [&key, &address_key] {
                app.store
                    .bump_rate_counter(key, now, USER_CODE_WINDOW)
                    .await?;
            }
            return Err(wrong());
        }
        Err(e) => return Err(e.into()),
    };
    app.audit
        .record(
            if approve {
                kind::DEVICE_APPROVED
            } else {
                kind::DEVICE_DENIED
            },
            None,
            &format!("user:{user}"),
            json!({"client_id": row.client_id, "scope": row.scope}),
        )
        .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_drawn_from_the_safe_alphabet_and_read_back() {
        let code = random_user_code().unwrap();
        assert_eq!(code.len(), 8);
        let shown = display_user_code(&code);
        assert_eq!(normalize_user_code(&shown.to_lowercase()), Some(code));
        assert_eq!(normalize_user_code("AEIO-UBCD"), None);
        assert_eq!(normalize_user_code("BCDF"), None);
    }
}
