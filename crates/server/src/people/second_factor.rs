//! Re-authentication before a person weakens their own sign-in: the current password and, when
//! TOTP is on, a current code not used before.

use keyward_core::UserId;
use keyward_store::secret;

use super::passwords::verify_password;
use super::totp::{accept_once, totp_aad};
use crate::error::ApiError;
use crate::state::AppState;

/// Failed re-authentications allowed per person in one window.
const REAUTH_FAILURES: i64 = 10;
const REAUTH_WINDOW: i64 = 15 * 60;

/// Why re-authentication failed.
fn refused(message: &str) -> ApiError {
    ApiError::Forbidden {
        code: "reauthentication_failed",
        message: message.into(),
    }
}

/// Checks the person's current password and, when TOTP is on, a current code not used before.
/// Failures count in their own window, so a stolen bearer token is no unthrottled password
/// oracle.
pub async fn reauthenticate(
    app: &AppState,
    user: UserId,
    password: String,
    totp: Option<&str>,
    now: i64,
) -> Result<(), ApiError> {
    let key = format!("reauth:{}", secret::hash_token(&user.to_string()));
    if app.store.rate_counter(&key, now, REAUTH_WINDOW).await? >= REAUTH_FAILURES {
        return Err(ApiError::Throttled {
            message: format!(
                "too many failed re-authentications for this account; wait {} minutes and try again",
                REAUTH_WINDOW / 60
            ),
            retry_after: REAUTH_WINDOW as u64,
        });
    }
    let credential = app
        .store
        .local_credential(user)
        .await?
        .ok_or_else(|| ApiError::not_found("local credential"))?;
    let password_ok = verify_password(password, credential.password_hash).await?;
    let totp_ok = match &credential.sealed_totp {
        None => true,
        Some(sealed) => {
            let secret = app
                .master
                .open(&totp_aad(user), sealed)
                .map_err(|e| ApiError::internal(format!("TOTP secret: {e}")))?;
            // The code is spent only when the password was right: a wrong password must not
            // burn the person's next code.
            match totp.filter(|c| !c.trim().is_empty()) {
                Some(code) if password_ok => accept_once(app, user, &secret, code, now).await?,
                _ => false,
            }
        }
    };
    if password_ok && totp_ok {
        return Ok(());
    }
    app.store
        .bump_rate_counter(&key, now, REAUTH_WINDOW)
        .await?;
    Err(refused(if credential.sealed_totp.is_some() {
        "send your current password as password and a current code from your authenticator app (not one used before) as totp"
    } else {
        "send your current password as password"
    }))
}
