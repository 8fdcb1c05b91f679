//! A person's own JSON endpoints: who this browser is signed in as, CLI auto-configuration, the
//! CrewAI-compatible organization list, and their own local credentials.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admission::login_path;
use super::second_factor::reauthenticate;
use super::{local, passwords, totp};
use crate::audit::kind;
use crate::caller::{Caller, Principal};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

/// `GET /auth/session`: whether and as whom this browser is signed in (for the console and
/// scripts). Always 200: not being signed in is an answer here, not an authentication failure.
pub async fn session(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = match local::session_user(&app, &headers, app.clock.now()).await? {
        None => json!({
            "signed_in": false,
            "provider": app.config.auth.name(),
            "login": login_path(&app),
        }),
        Some((user, _)) => {
            let orgs = app.store.memberships(user.id).await?;
            json!({
                "signed_in": true,
                "user": {"id": user.id, "email": user.email},
                "provider": app.config.auth.name(),
                "organizations": orgs.iter().map(|m| json!({"uuid": m.org.id, "name": m.org.name, "role": m.role})).collect::<Vec<_>>(),
            })
        }
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

/// `GET /auth/parameters`: what `crewai enterprise configure <url>` (and `keyward configure`)
/// need to log in through this server's identity provider.
pub async fn parameters(State(app): State<AppState>) -> Result<Response, ApiError> {
    let body = app
        .config
        .auth
        .cli_parameters(super::local_domain(&app))
        .map_err(|missing| ApiError::Unavailable {
            code: "cli_login_not_configured",
            message: format!(
                "CLI login through AUTH_PROVIDER={} is not configured: set {missing}",
                app.config.auth.name()
            ),
        })?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `GET /crewai_plus/api/v1/me/organizations`: `[{"name", "uuid"}]`, as the CrewAI CLI reads it.
pub async fn organizations(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    let memberships = app.store.memberships(caller.user()?).await?;
    Ok(Json(
        memberships
            .iter()
            .map(|m| json!({"name": m.org.name, "uuid": m.org.id}))
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    password: String,
    #[serde(default)]
    current_password: Option<String>,
    /// A fresh code, when TOTP is on.
    #[serde(default)]
    totp: Option<String>,
}

/// `PUT /api/v1/me/password`: sets the caller's password for the console sign-in. Changing an
/// existing one needs the current one too.
pub async fn set_password(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    super::require_local(&app)?;
    let user = caller.user()?;
    passwords::check_password_policy(&body.password)?;
    // Through the re-authentication throttle (and TOTP when on): a stolen bearer token must be
    // no unthrottled oracle for the password, nor a way to replace it without the second factor.
    if app.store.local_credential(user).await?.is_some() {
        let current = body.current_password.unwrap_or_default();
        reauthenticate(&app, user, current, body.totp.as_deref(), caller.now)
            .await
            .map_err(|e| match e {
                ApiError::Forbidden { .. } => ApiError::Forbidden {
                    code: "current_password_required",
                    message: "to change your password, send your current one as current_password, and a fresh code from your authenticator app as totp when TOTP is on".into(),
                },
                other => other,
            })?;
    }
    let hash = passwords::hash_password(body.password).await?;
    let now = caller.now;
    app.store.set_local_password(user, &hash, now).await?;
    // Whoever held the old password may hold a session or a CLI token from it: both end here.
    let sessions_ended = app.store.end_other_sessions(user, None, now).await?;
    app.audit
        .record(
            kind::PASSWORD_SET,
            None,
            &caller.actor(),
            json!({"sessions_ended": sessions_ended, "access_tokens_revoked": true}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableTotp {
    password: String,
}

/// `POST /api/v1/me/totp`: turns on TOTP for the console sign-in and returns the secret, once.
pub async fn enable_totp(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EnableTotp>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::require_local(&app)?;
    let user = caller.user()?;
    let credential = app
        .store
        .local_credential(user)
        .await?
        .ok_or_else(|| ApiError::Invalid {
            code: "password_required",
            message: "set a password first (PUT /api/v1/me/password)".into(),
            field: Some("password"),
        })?;
    if !passwords::verify_password(body.password, credential.password_hash).await? {
        return Err(ApiError::Forbidden {
            code: "wrong_password",
            message: "the password is not right".into(),
        });
    }
    let secret = totp::new_totp_secret()?;
    let sealed = app
        .master
        .seal(&totp::totp_aad(user), &secret)
        .map_err(ApiError::internal)?;
    app.store
        .set_local_totp(user, Some(&sealed), caller.now)
        .await?;
    app.audit
        .record(kind::TOTP_ENABLED, None, &caller.actor(), json!({}))
        .await?;
    let encoded = totp::base32(&secret);
    let email = match &caller.principal {
        Principal::Person { email, .. } => email.clone(),
        Principal::Automation { .. } => String::new(),
    };
    let label: String =
        form_urlencoded::byte_serialize(format!("Keyward:{email}").as_bytes()).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "secret": encoded,
            "otpauth_uri": format!("otpauth://totp/{label}?secret={encoded}&issuer=Keyward&algorithm=SHA1&digits=6&period=30"),
        })),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// `DELETE /api/v1/me/totp`: needs the current password and a current code, so a stolen bearer
/// token alone cannot strip the second factor.
pub async fn disable_totp(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DisableTotp>,
) -> Result<StatusCode, ApiError> {
    super::require_local(&app)?;
    let user = caller.user()?;
    let now = caller.now;
    reauthenticate(&app, user, body.password, body.totp.as_deref(), now).await?;
    app.store
        .set_local_totp(user, None, now)
        .await
        .map_err(crate::error::or_not_found("local credential"))?;
    app.audit
        .record(kind::TOTP_DISABLED, None, &caller.actor(), json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
