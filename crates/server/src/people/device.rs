//! The OAuth 2.0 device authorization grant (RFC 8628) with Keyward as the authorization server,
//! in the layout the CrewAI CLI expects of a WorkOS provider: `POST /oauth2/device_authorization`,
//! `POST /oauth2/token`, tokens verifiable with `/oauth2/jwks`.
//!
//! Every state lives in the database, so any replica can be polled or approve. Codes are kept as
//! SHA-256 only; the user code, which a person types, is short, so its entry is rate-limited.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_store::{DeviceCodeRow, DeviceStatus, StoreError, secret};
use serde::Deserialize;
use serde_json::json;

use super::device_codes::{decide, display_user_code, random_user_code};
use crate::audit::kind;
use crate::caller::Caller;
use crate::client_addr::ClientAddr;
use crate::config::provider::LOCAL_CLIENT_ID;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Device authorizations one client address may start per minute (each stores a row).
pub const STARTS_PER_MINUTE: i64 = 60;
/// Authorization rows held at most, live ones and expired ones kept for late polls (a few
/// hundred bytes each, so a few MiB). A client address is held to [`STARTS_PER_MINUTE`]; this
/// bounds many addresses together. Requests in flight when it is reached may each add one row.
pub const MAX_DEVICE_CODES: i64 = 10_000;
/// How long an expired authorization is kept so a late poll still hears `expired_token`.
const EXPIRED_KEPT: i64 = 24 * 3600;
/// A poll counts as too fast below this share of the interval (clients' timers are not exact).
const POLL_TOLERANCE_PERCENT: i64 = 80;

/// An OAuth error body: `{"error", "error_description"}` (RFC 6749 §5.2, RFC 8628 §3.5).
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Seconds for `Retry-After` (429 and busy 503 only).
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        // invalid_client is 400, not 401: public clients send no Authorization header (RFC 6749
        // §5.2 requires 401 only then), and public routes never answer 401.
        let status = match error {
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "too_many_requests" => StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error,
            description: description.into(),
            retry_after: (status == StatusCode::TOO_MANY_REQUESTS).then_some(60),
        }
    }

    fn busy(description: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new("temporarily_unavailable", description)
        }
    }

    fn throttled(description: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new("too_many_requests", description)
        }
    }
}

impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        let retry_after = e.retry_after();
        match e {
            ApiError::Busy { retry_after } => Self {
                retry_after: Some(retry_after),
                ..OAuthError::new(
                    "temporarily_unavailable",
                    "the server is busy; retry in a moment",
                )
            },
            // A database restart keeps its Retry-After: a polling CLI waits it out.
            ApiError::Unavailable { message, .. } => OAuthError {
                retry_after,
                ..OAuthError::new("temporarily_unavailable", message)
            },
            ApiError::Forbidden { message, .. } => OAuthError::new("unauthorized_client", message),
            other => {
                tracing::error!(error = ?other, "device flow failed");
                OAuthError::new(
                    "server_error",
                    "an internal error occurred; the server log has the details",
                )
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            crate::error::set_retry_after(&mut response, secs);
        }
        response
    }
}

fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn check_client(fields: &HashMap<String, String>) -> Result<String, OAuthError> {
    let client = fields.get("client_id").map(String::as_str).unwrap_or("");
    if client != LOCAL_CLIENT_ID {
        return Err(OAuthError::new(
            "invalid_client",
            format!(
                "unknown client_id {client:?}: this server's CLI client is {LOCAL_CLIENT_ID:?} (run `crewai enterprise configure <url>` again)"
            ),
        ));
    }
    Ok(client.to_owned())
}

/// `POST /oauth2/device_authorization`.
pub async fn authorize(
    State(app): State<AppState>,
    client: ClientAddr,
    body: Bytes,
) -> Result<Response, OAuthError> {
    super::require_local(&app)?;
    let fields = form(&body);
    let client_id = check_client(&fields)?;
    if client.0.is_some() {
        let key = format!("device_start:{}", client.limit_key());
        let now = app.clock.now();
        if app.store.bump_rate_counter(&key, now, 60).await? > STARTS_PER_MINUTE {
            return Err(OAuthError::throttled(
                format!(
                    "more than {STARTS_PER_MINUTE} device logins started from this address in a minute; wait a minute"
                ),
                (60 - now.rem_euclid(60)) as u64,
            ));
        }
    }
    let scope = fields.get("scope").cloned().unwrap_or_default();
    // Fails with the setting to fix when the public URL is unknown.
    super::local_issuer(&app)?;
    let public = app.config.public_url.clone().unwrap_or_default();
    let now = app.clock.now();
    app.store.purge_device_codes(now - EXPIRED_KEPT).await?;
    if app.store.count_device_codes().await? >= MAX_DEVICE_CODES {
        // Room for new sign-ins comes first: late polls of expired codes then hear "unknown
        // device_code" instead of `expired_token`.
        app.store.purge_device_codes(now).await?;
        if app.store.count_device_codes().await? >= MAX_DEVICE_CODES {
            tracing::warn!(
                max = MAX_DEVICE_CODES,
                "refusing new device logins: too many pending device authorizations (someone may be filling the table)"
            );
            return Err(OAuthError::busy(
                format!(
                    "{MAX_DEVICE_CODES} device logins are already waiting for approval on this server; try again in a minute"
                ),
                60,
            ));
        }
    }
    let device_code =
        secret::generate_token("kwdc_").ok_or_else(|| ApiError::internal("system RNG failed"))?;
    let settings = app.config.device;
    for _ in 0..5 {
        let user_code =
            random_user_code().ok_or_else(|| ApiError::internal("system RNG failed"))?;
        let row = DeviceCodeRow {
            device_hash: secret::hash_token(&device_code),
            user_code_hash: secret::hash_token(&user_code),
            client_id: client_id.clone(),
            scope: scope.clone(),
            status: DeviceStatus::Pending,
            user_id: None,
            interval_secs: settings.interval,
            last_polled_ms: None,
            created_at: now,
            expires_at: now + settings.code_ttl,
            decided_at: None,
        };
        match app.store.create_device_code(&row).await {
            Ok(()) => {
                let shown = display_user_code(&user_code);
                let body = json!({
                    "device_code": device_code,
                    "user_code": shown,
                    "verification_uri": format!("{public}/device"),
                    "verification_uri_complete": format!("{public}/device?user_code={shown}"),
                    "expires_in": settings.code_ttl,
                    "interval": settings.interval,
                });
                return Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response());
            }
            // A live code already has these letters: draw again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("could not draw a free user code in five tries").into())
}

/// `POST /oauth2/token` with the device grant.
pub async fn token(State(app): State<AppState>, body: Bytes) -> Result<Response, OAuthError> {
    super::require_local(&app)?;
    let fields = form(&body);
    let grant = fields.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != DEVICE_GRANT {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type must be {DEVICE_GRANT}"),
        ));
    }
    let client_id = check_client(&fields)?;
    let device_code = fields.get("device_code").map(String::as_str).unwrap_or("");
    let hash = secret::hash_token(device_code);
    let Some(row) = app.store.device_by_hash(&hash).await? else {
        return Err(OAuthError::new(
            "invalid_grant",
            "unknown device_code: start again with `crewai login`",
        ));
    };
    if row.client_id != client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "this device_code was issued to another client",
        ));
    }
    let now_ms = app.clock.now_ms();
    let now = now_ms / 1000;
    if row.status == DeviceStatus::Consumed {
        return Err(OAuthError::new(
            "invalid_grant",
            "this device_code was already exchanged for a token; codes are single-use",
        ));
    }
    if now >= row.expires_at {
        return Err(OAuthError::new(
            "expired_token",
            "the device code expired before it was approved: start again with `crewai login`",
        ));
    }
    match row.status {
        DeviceStatus::Denied => Err(OAuthError::new(
            "access_denied",
            "the sign-in request was denied on the verification page",
        )),
        DeviceStatus::Pending => {
            let too_fast = row.last_polled_ms.is_some_and(|last| {
                now_ms - last < row.interval_secs * 1000 * POLL_TOLERANCE_PERCENT / 100
            });
            app.store.record_device_poll(&hash, now_ms).await?;
            if too_fast {
                Err(OAuthError::new(
                    "slow_down",
                    format!(
                        "polling faster than every {} seconds; wait 5 seconds longer between requests",
                        row.interval_secs
                    ),
                ))
            } else {
                Err(OAuthError::new(
                    "authorization_pending",
                    "waiting for the code to be approved on the verification page",
                ))
            }
        }
        DeviceStatus::Approved => {
            let Some(user_id) = app.store.consume_device(&hash, now).await? else {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "this device_code was already exchanged for a token; codes are single-use",
                ));
            };
            let user = app.store.get_user(user_id).await?;
            let (access_token, expires_in) =
                super::access::mint(&app, &user, &row.client_id, &row.scope, now)?;
            app.audit
                .record(
                    kind::DEVICE_TOKEN_ISSUED,
                    None,
                    &format!("user:{}", user.id),
                    json!({"client_id": row.client_id, "expires_in": expires_in}),
                )
                .await?;
            let body = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": row.scope,
            });
            Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
        }
        DeviceStatus::Consumed => Err(OAuthError::new("invalid_grant", "already used")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCodeBody {
    pub user_code: String,
}

/// `POST /api/v1/device/approve`: a person approves a device login with a bearer token.
pub async fn approve(
    State(app): State<AppState>,
    client: ClientAddr,
    caller: Caller,
    ApiJson(body): ApiJson<UserCodeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(
        &app,
        &client,
        caller.user()?,
        &body.user_code,
        true,
        caller.now,
    )
    .await?;
    Ok(Json(json!({"status": "approved"})))
}

/// `POST /api/v1/device/deny`.
pub async fn deny(
    State(app): State<AppState>,
    client: ClientAddr,
    caller: Caller,
    ApiJson(body): ApiJson<UserCodeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(
        &app,
        &client,
        caller.user()?,
        &body.user_code,
        false,
        caller.now,
    )
    .await?;
    Ok(Json(json!({"status": "denied"})))
}
