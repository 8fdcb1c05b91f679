//! The `local` provider's passwords: the policy, and argon2id hashing and checking on blocking
//! threads under the process-wide hashing cap.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::throttle;
use crate::error::ApiError;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let password = Zeroizing::new(password);
    let slot = throttle::hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| ApiError::internal("system RNG failed"))?;
        let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks a password against a stored argon2 hash on a blocking thread (argon2's comparison is
/// constant-time).
pub async fn verify_password(password: String, stored: String) -> Result<bool, ApiError> {
    let password = Zeroizing::new(password);
    let slot = throttle::hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| ApiError::internal(format!("stored password hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(ApiError::internal)?
}

pub fn check_password_policy(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "password",
            format!("the password is too short: use at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "password",
            format!("the password is longer than {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

/// An argon2id hash of a random password nobody knows, verified against for unknown accounts.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Vb1mCq2BtuQfzGdCR9VEgbxzFCSxnTDw4R9vRf9s0s8";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse battery".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), hash).await.unwrap());
        // The dummy hash parses, so unknown accounts pay the same work.
        assert!(
            !verify_password("x".into(), DUMMY_HASH.into())
                .await
                .unwrap()
        );
    }
}
