//! TOTP (RFC 6238) for the `local` provider: secrets, codes, and codes used once.
//!
//! A TOTP code stays valid for its 30-second step and one step either side (clock drift), so
//! without memory a code seen over a shoulder, in a proxy log or by a phishing page works again
//! for up to a minute. The newest accepted step is stored per person (migration 0009) and a
//! code must be of a newer step; the update is one conditional statement, so two sign-ins racing
//! with the same code cannot both pass.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use keyward_core::UserId;
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::AppState;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps take TOTP secrets.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The six-digit TOTP code (SHA-1, 30 s steps) of `secret` for the step holding `unix`.
pub fn totp_code(secret: &[u8], unix: i64) -> String {
    let counter = (unix.max(0) / 30) as u64;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let digest = tag.as_ref();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

/// Accepts the code of the current step or of one step either side (clock drift), compared in
/// constant time.
pub fn totp_matches(secret: &[u8], code: &str, now: i64) -> bool {
    matching_step(secret, code, now).is_some()
}

pub fn totp_aad(user: UserId) -> Vec<u8> {
    keyward_store::crypto::Aad::Totp { user }.bytes()
}

/// A fresh 160-bit TOTP secret.
pub fn new_totp_secret() -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| ApiError::internal("system RNG failed"))?;
    Ok(secret)
}

/// The TOTP time step (RFC 6238, 30 s) holding `unix`.
pub fn step_of(unix: i64) -> i64 {
    unix.max(0) / 30
}

/// The step `code` belongs to, among the current one and one either side; every candidate is
/// compared, in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    [-30, 0, 30].iter().fold(None, |found, skew| {
        let expected = totp_code(secret, now + skew);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_the_rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1 key "12345678901234567890", 8 digits → our 6 are the tail.
        let key = b"12345678901234567890";
        assert_eq!(totp_code(key, 59), "287082");
        assert_eq!(totp_code(key, 1_111_111_109), "081804");
        assert_eq!(totp_code(key, 2_000_000_000), "279037");
        assert!(totp_matches(key, "287082", 59 + 30));
        assert!(!totp_matches(key, "287082", 59 + 90));
    }

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

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
