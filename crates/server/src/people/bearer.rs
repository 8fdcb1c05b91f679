//! A person's bearer token that is not a stored token: an access token of Keyward's own
//! identity provider (`local`) or of the external provider, resolved to the person it names;
//! and the check that a person's stored tokens still stand with the provider.

use keyward_core::UserId;
use keyward_jose::{VerifyError, verify_access};
use keyward_sso::SsoError;
use keyward_store::UserRow;

use super::admission::admit;
use super::refusal::{
    ROLE_ADMIN, ROLE_MEMBER, Refusal, audit_refusal, linked_to_another_message,
    not_assigned_message, unverified_message,
};
use crate::config::provider::{AuthProvider, LOCAL_AUDIENCE};
use crate::error::ApiError;
use crate::state::AppState;

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY: i64 = 10;

/// The one refusal for a bearer token that is not ours, forged or unknown alike.
pub fn unknown_token() -> ApiError {
    ApiError::Unauthenticated {
        code: "invalid_token",
        message: "the bearer token is not known to this server".into(),
    }
}

/// Whether a bearer token has the shape of a JWT rather than an opaque Keyward token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The person an access token was issued to. Only Keyward's own tokens are accepted here; with
/// an external provider the CLI presents that provider's tokens, which are not validated yet.
#[tracing::instrument(skip_all)]
pub async fn local_person(app: &AppState, token: &str, now: i64) -> Result<UserRow, ApiError> {
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
    let (jwks, _) = app.keyring.jwks(now);
    let claims =
        verify_access(token, &jwks, &issuer, LOCAL_AUDIENCE, now, LEEWAY).map_err(|e| match e {
            // Only reached once the signature verified: the caller holds a token of ours and
            // needs to know to sign in again.
            VerifyError::Expired | VerifyError::NotYetValid => ApiError::Unauthenticated {
                code: "invalid_token",
                message: e.to_string(),
            },
            // Which check failed (the kid, the alg, the issuer or audience expected) goes to
            // the log only: echoing it would guide a forger from one attempt to the next.
            other => {
                tracing::info!(reason = %other, "an access token was refused");
                unknown_token()
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

/// The person an access token of the external provider names (API bearer authentication):
/// verified against the provider's issuer, API audience and keys, then admitted like a browser
/// sign-in (roles checked, provisioned on first use).
#[tracing::instrument(skip_all)]
pub async fn provider_person(app: &AppState, token: &str, now: i64) -> Result<UserRow, ApiError> {
    let oidc = app.sso.oidc.as_ref().ok_or_else(|| ApiError::Unauthenticated {
        code: "invalid_token",
        message: format!(
            "AUTH_PROVIDER={} issues no access tokens this server accepts; use a personal access token",
            app.config.auth.name()
        ),
    })?;
    let who = oidc
        .verify_access_token(token, now)
        .await
        .map_err(|e| match e {
            // The provider cannot be reached or read: the caller cannot fix that, but whoever
            // runs Keyward can, and nothing about the token is told.
            SsoError::Discovery { .. } | SsoError::Jwks { .. } | SsoError::Config { .. } => {
                ApiError::Unauthenticated {
                    code: "invalid_token",
                    message: e.to_string(),
                }
            }
            // Only reached once the provider's signature verified.
            SsoError::AccessTokenLifetime(_) => ApiError::Unauthenticated {
                code: "invalid_token",
                message: e.to_string(),
            },
            // Which check failed (the key, the algorithm, the issuer or audience expected)
            // goes to the log only, as for Keyward's own tokens.
            other => {
                tracing::info!(reason = %other, "an identity provider's access token was refused");
                unknown_token()
            }
        })?;
    match admit(app, &who, "bearer", now).await {
        Ok(user) => Ok(user),
        Err(refusal) => {
            audit_refusal(app, "bearer", &refusal).await;
            Err(match refusal {
                Refusal::NotAssigned { email } => ApiError::Forbidden {
                    code: "not_assigned",
                    message: not_assigned_message(&email),
                },
                Refusal::NoEmail => ApiError::Forbidden {
                    code: "no_email",
                    message: "the access token carries no email address: ask the identity provider's administrator to add the email claim to access tokens for this API".into(),
                },
                Refusal::UnverifiedEmail { email } => ApiError::Forbidden {
                    code: "email_unverified",
                    message: unverified_message(&email),
                },
                Refusal::LinkedToAnother { email } => ApiError::Forbidden {
                    code: "linked_to_another_identity",
                    message: linked_to_another_message(&email),
                },
                Refusal::Other(e) => e,
                other => ApiError::internal(format!("{other:?}")),
            })
        }
    }
}

/// Refuses a person's stored tokens while their most recent sign-in through the identity
/// provider was refused for lack of a role: the provider withdrew them, and tokens they made
/// earlier must not outlive that.
pub async fn check_still_assigned(app: &AppState, user: UserId) -> Result<(), ApiError> {
    if app.sso.oidc.is_none() && app.sso.saml.is_none() {
        return Ok(());
    }
    match app.store.sso_admitted(user).await? {
        Some(false) => Err(ApiError::Forbidden {
            code: "not_assigned",
            message: format!(
                "your most recent sign-in through the identity provider showed you are no longer assigned to this application (neither `{}` nor `{ROLE_ADMIN}`), so your personal access tokens are suspended: ask the provider's administrator to assign you again, then sign in once",
                ROLE_MEMBER
            ),
        }),
        _ => Ok(()),
    }
}
