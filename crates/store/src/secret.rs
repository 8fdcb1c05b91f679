//! Opaque bearer tokens: generated with 256 bits of randomness, shown once, stored as SHA-256.
//! A fast hash is enough here because the secret is random, not a password.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Prefix of personal access tokens.
pub const PERSONAL_PREFIX: &str = "kwp_";
/// Prefix of automation tokens.
pub const AUTOMATION_PREFIX: &str = "kwa_";
/// Characters of a token kept in clear to recognise it in listings.
pub const DISPLAY_PREFIX_LEN: usize = 10;

/// A new token `<prefix><43 base64url chars>`, or `None` if the system RNG failed.
pub fn generate_token(prefix: &str) -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(digest(&SHA256, token.as_bytes()).as_ref())
}

/// The part of a token that listings may show.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(DISPLAY_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hashed_stably() {
        let a = generate_token(AUTOMATION_PREFIX).unwrap();
        let b = generate_token(AUTOMATION_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("kwa_"));
        assert_eq!(a.len(), 4 + 43);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(!hash_token(&a).contains(&a[4..]));
    }
}
