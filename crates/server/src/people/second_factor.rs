//! TOTP codes used once, and re-authentication before a person weakens their own sign-in.
//!
//! A TOTP code stays valid for its 30-second step and one step either side (clock drift), so
//! without memory a code seen over a shoulder, in a proxy log or by a phishing page works again
//! for up to a minute. The newest accepted step is stored per person (migration 0009) and a
//! code must be of a newer step; the update is one conditional statement, so two sign-ins racing
//! with the same code cannot both pass.

use keyward_core::UserId;
use keyward_store::secret;

use super::local;

/// Failed re-authentications allowed per person in one window.
const REAUTH_FAILURES: i64 = 10;
const REAUTH_WINDOW: i64 = 15 * 60;
use crate::error::ApiError;
use crate::state::AppState;

/// The TOTP time step (RFC 6238, 30 s) holding `unix`.
pub fn step_of(unix: i64) -> i64 {
    unix.max(0) / 30
}

/// The step `code` belongs to, among the current one and one either side; every candidate is
/// compared, in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    [-30, 0, 30].iter().fold(None, |found, skew| {
        let expected = local::totp_code(secret, now + skew);
        let equal =
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
                .is_ok();
        if equal {
            Some(step_of(now + skew))
        } else {
            found
        }
    })
}

/// Whether `code` is a valid TOTP code of `user` that was not used before; a valid code is spent
/// by this call.
pub async fn accept_once(
    app: &AppState,
    user: UserId,
    secret: &[u8],
    code: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let Some(step) = matching_step(secret, code, now) else {
        return Ok(false);
    };
    Ok(app.store.accept_totp_step(user, step).await?)
}

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
    let password_ok = local::verify_password(password, credential.password_hash).await?;
    let totp_ok = match &credential.sealed_totp {
        None => true,
        Some(sealed) => {
            let secret = app
                .master
                .open(&local::totp_aad(user), sealed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matching_step_is_the_codes_own() {
        let key = b"12345678901234567890";
        // RFC 6238: "287082" is the code of t=59, step 1.
        assert_eq!(matching_step(key, "287082", 59), Some(1));
        assert_eq!(matching_step(key, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(key, "287082", 59 - 30), Some(1));
        assert_eq!(matching_step(key, "287082", 59 + 60), None);
        assert_eq!(matching_step(key, "000000", 59), None);
    }
}
