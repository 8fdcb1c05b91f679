//! People's access tokens from Keyward's own identity provider, minted at the end of the device
//! flow (the bearer module accepts them).

use keyward_jose::{AccessClaims, mint_access};
use keyward_store::UserRow;

use crate::config::provider::LOCAL_AUDIENCE;
use crate::error::ApiError;
use crate::state::AppState;

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
