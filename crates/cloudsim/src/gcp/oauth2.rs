//! The OAuth 2.0 token endpoint (oauth2.googleapis.com): the JWT bearer grant that a service
//! account key signs, checked against the keys IAM holds.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::gcp::access::ACCESS_TOKEN_SECS;
use crate::gcp::errors::oauth_error;
use crate::jwt::{TimeRules, Unverified, check_times};
use crate::sim::{Grant, Sim};
use crate::wire::{Req, form_get, json_response};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `aud` Google's token endpoint accepts in a service account's assertion.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SA_TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: true,
    max_lifetime: Some(3600),
};

/// `POST /token` (oauth2.googleapis.com): the JWT bearer grant a service account key signs.
pub async fn token(sim: &Sim, req: &Req) -> Response {
    let form = req.form();
    let field = |k: &str| form_get(&form, k);
    match field("grant_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("Invalid grant_type: {other}"),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            );
        }
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let invalid_grant =
        |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d.to_owned());
    let token = match Unverified::parse(assertion) {
        Ok(t) => t,
        Err(_) => {
            return invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
    };
    let email = token.str_claim("iss").unwrap_or_default().to_owned();
    let known = sim.state.file.gcp.as_ref().is_some_and(|g| {
        g.service_accounts
            .iter()
            .any(|sa| sa.email.get_ref() == &email)
    });
    if !known {
        return invalid_grant("Invalid grant: account not found");
    }
    let key = token
        .kid
        .as_deref()
        .and_then(|kid| sim.lock().gcp_keys.get(kid).cloned())
        .filter(|k| k.email == email);
    match key {
        Some(k) if token.verify_rs256(&k.modulus, &k.exponent) => {}
        _ => return invalid_grant("Invalid JWT Signature."),
    }
    let own = format!("{}/token", sim.base);
    let auds = token.audiences();
    if !auds.iter().any(|a| a == GOOGLE_TOKEN_URI || a == &own) {
        return invalid_grant(&format!(
            "Invalid JWT: Failed audience check. The expected value was {GOOGLE_TOKEN_URI} but the actual value was {}",
            auds.join(",")
        ));
    }
    if check_times(&token, sim.now(), &SA_TIME).is_err() {
        return invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if token.str_claim("scope").is_none_or(str::is_empty) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let exp = sim.now() + ACCESS_TOKEN_SECS;
    let access = sim.issue(Grant::GcpServiceAccount { email, exp }, "ya29.c.sim-");
    json_response(
        StatusCode::OK,
        json!({"access_token": access, "expires_in": ACCESS_TOKEN_SECS - 1, "token_type": "Bearer"}),
    )
}
