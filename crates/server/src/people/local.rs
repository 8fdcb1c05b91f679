//! The `local` provider's credentials: argon2id passwords, optional TOTP (RFC 6238), web
//! sessions, and the database-backed rate limits that guard them.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use keyward_core::UserId;
use keyward_store::{Store, UserRow, WebSessionRow, secret};
use zeroize::Zeroizing;

use super::throttle;
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How long a console session lasts.
pub const SESSION_TTL: i64 = 8 * 3600;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "keyward_session";

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let password = Zeroizing::new(password);
    let slot = super::throttle::hashing_permit().await?;
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
    let slot = super::throttle::hashing_permit().await?;
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
    super::second_factor::matching_step(secret, code, now).is_some()
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
    let now_ms = crate::clock::now_ms();
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
    let (Some(user), Some(credential), true) = (user, credential, password_ok) else {
        throttle::failed(app, &keys, crate::clock::now_ms()).await?;
        return Err(SignInError::Invalid);
    };
    if let Some(sealed) = &credential.sealed_totp {
        let Some(code) = totp.filter(|c| !c.trim().is_empty()) else {
            return Err(SignInError::TotpRequired);
        };
        let secret = app
            .master
            .open(&totp_aad(user.id), sealed)
            .map_err(|e| ApiError::internal(format!("TOTP secret: {e}")))?;
        // Spent once: the same code again within its window is refused (a replay).
        if !super::second_factor::accept_once(app, user.id, &secret, code, now).await? {
            throttle::failed(app, &keys, crate::clock::now_ms()).await?;
            return Err(SignInError::Invalid);
        }
    }
    throttle::succeeded(app, &account).await?;
    Ok(user)
}

/// An argon2id hash of a random password nobody knows, verified against for unknown accounts.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Vb1mCq2BtuQfzGdCR9VEgbxzFCSxnTDw4R9vRf9s0s8";

/// Starts a console session; returns the cookie value (shown only in `Set-Cookie`).
pub async fn start_session(store: &dyn Store, user: UserId, now: i64) -> Result<String, ApiError> {
    let value =
        secret::generate_token("kwsess_").ok_or_else(|| ApiError::internal("system RNG failed"))?;
    store
        .create_web_session(&WebSessionRow {
            hash: secret::hash_token(&value),
            user_id: user,
            created_at: now,
            expires_at: now + SESSION_TTL,
        })
        .await?;
    Ok(value)
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in person of a request, from its session cookie.
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
        .web_session_user(&secret::hash_token(&cookie), now)
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
