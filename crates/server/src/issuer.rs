//! The public half of the workload OIDC issuer: discovery and JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The issuer URL, or the 503 that says how to configure one.
pub(crate) fn issuer_or_503(app: &AppState) -> Result<&str, ApiError> {
    app.config.issuer.as_deref().ok_or_else(|| ApiError::Unavailable {
        code: "issuer_not_configured",
        message: "no issuer URL can be determined: the server listens on all interfaces and neither OIDC_ISSUER nor KEYWARD_PUBLIC_URL is set; set OIDC_ISSUER to the public https:// URL the clouds reach this server at".into(),
    })
}

pub async fn discovery(State(app): State<AppState>) -> Result<Response, ApiError> {
    let issuer = issuer_or_503(&app)?;
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "nbf", "jti",
            "organization_id", "automation_id", "automation_name", "kickoff_id"
        ],
    });
    // As the people's IdP (`local`), the same document names the device flow's endpoints.
    if matches!(
        app.config.auth,
        crate::config::provider::AuthProvider::Local
    ) && let (Some(public), Some(map)) = (app.config.public_url.as_deref(), doc.as_object_mut())
    {
        map.insert(
            "device_authorization_endpoint".into(),
            json!(format!("{public}/oauth2/device_authorization")),
        );
        map.insert(
            "token_endpoint".into(),
            json!(format!("{public}/oauth2/token")),
        );
        map.insert(
            "grant_types_supported".into(),
            json!([crate::people::device::DEVICE_GRANT]),
        );
    }
    Ok(([(header::CACHE_CONTROL, "public, max-age=3600")], Json(doc)).into_response())
}

pub async fn jwks(State(app): State<AppState>) -> Result<Response, ApiError> {
    issuer_or_503(&app)?;
    let (keys, max_age) = app.keyring.jwks(app.clock.now());
    if keys.keys.is_empty() {
        return Err(ApiError::Unavailable {
            code: "no_signing_key",
            message: "no signing key is published: check OIDC_PRIVATE_KEY and the server log"
                .into(),
        });
    }
    let cache = format!("public, max-age={max_age}");
    Ok((
        [(header::CACHE_CONTROL, cache)],
        Json(keys.as_ref().clone()),
    )
        .into_response())
}
