//! People's access tokens from Keyward's own identity provider: minted at the end of the device
//! flow, and accepted as a person's bearer token beside personal access tokens.

use keyward_core::UserId;
use keyward_jose::{AccessClaims, mint_access, verify_access};
use keyward_store::UserRow;

use super::provider::{AuthProvider, LOCAL_AUDIENCE};
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY: i64 = 10;

/// Whether a bearer token has the shape of a JWT rather than an opaque Keyward token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Signs an access token for `user`; returns it with its lifetime in seconds.
pub fn mint(
    app: &AppState,
    user: &UserRow,
    client_id: &str,
    scope: &str,
    now: i64,
) -> Result<(String, i64), ApiError> {
    let issuer = super::local_issuer(app)?;
    let key = app
        .keyring
        .signer(now)
        .ok_or_else(|| ApiError::Unavailable {
            code: "no_signing_key",
            message: "no signing key is active yet; retry in a few seconds".into(),
        })?;
    // Keys stay published for the longest workload token's life after they stop signing; an
    // access token living longer could outlive its key.
    let ttl = app.config.rotation.max_token_ttl;
    let claims = AccessClaims {
        iss: issuer,
        sub: format!("user:{}", user.id),
        aud: LOCAL_AUDIENCE.to_owned(),
        iat: now,
        nbf: now - keyward_jose::claims::NBF_BACKDATE_SECS,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        email: Some(user.email.clone()),
    };
    let token = mint_access(&key, &claims).map_err(ApiError::internal)?;
    Ok((token, ttl))
}

/// The person an access token was issued to. Only Keyward's own tokens are accepted here; with
/// an external provider the CLI presents that provider's tokens, which are not validated yet.
#[tracing::instrument(skip_all)]
pub async fn person(app: &AppState, token: &str) -> Result<UserRow, ApiError> {
    if !matches!(app.config.auth, AuthProvider::Local) {
        return Err(ApiError::Unauthenticated {
            code: "invalid_token",
            message: format!(
                "access tokens of AUTH_PROVIDER={} are not accepted by this server yet; use a personal access token",
                app.config.auth.name()
            ),
        });
    }
    let issuer = super::local_issuer(app)?;
    let now = clock::now();
    let (jwks, _) = app.keyring.jwks(now);
    let claims =
        verify_access(token, &jwks, &issuer, LOCAL_AUDIENCE, now, LEEWAY).map_err(|e| {
            ApiError::Unauthenticated {
                code: "invalid_token",
                message: format!("the access token was refused: {e}"),
            }
        })?;
    let user: UserId = claims
        .sub
        .strip_prefix("user:")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::Unauthenticated {
            code: "invalid_token",
            message: "the access token's subject is not a person".into(),
        })?;
    let user = app.store.get_user(user).await.map_err(|e| match e {
        keyward_store::StoreError::NotFound => ApiError::Unauthenticated {
            code: "invalid_token",
            message: "the person this access token was issued to no longer exists".into(),
        },
        other => other.into(),
    })?;
    // A password change cuts off every access token issued before it (at or before the same
    // second: `iat` has no finer grain, and the newer token is one sign-in away).
    if let Some(after) = app.store.tokens_valid_after(user.id).await?
        && claims.iat <= after
    {
        return Err(ApiError::Unauthenticated {
            code: "token_revoked",
            message: "this access token was issued before the password of its account changed; sign in again (keyward login)".into(),
        });
    }
    Ok(user)
}
