//! Security Token Service: the token exchange that turns an issuer's JWT into a federated access
//! token, through a workload identity provider's attribute mapping and condition.

use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::condition::{Mapped, Vars};
use crate::gcp::access::ACCESS_TOKEN_SECS;
use crate::gcp::errors::{api_error, oauth_error};
use crate::jwt::{FetchError, JwtError, TimeError, TimeRules, Unverified, check_times};
use crate::sim::{Grant, Sim};
use crate::state::{GcpProvider, GcpState};
use crate::wire::{Req, form_get, json_response};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
];
const ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
const TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: true,
    max_lifetime: Some(3600),
};

fn provider_audience(gcp: &GcpState, p: &GcpProvider) -> String {
    format!(
        "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
        gcp.project_number.get_ref(),
        p.pool.get_ref(),
        p.id.get_ref()
    )
}

/// `POST /v1/token`
pub async fn token(sim: &Sim, req: &Req) -> Response {
    let form = req.form();
    let field = |k: &str| form_get(&form, k);
    if let Err(r) = check_form(&form) {
        return r;
    }
    let audience = field("audience").unwrap_or_default();
    let Some(gcp) = &sim.state.file.gcp else {
        return invalid_target();
    };
    let Some((index, provider)) = gcp.providers.iter().enumerate().find(|(_, p)| {
        provider_audience(gcp, p) == audience
            || format!("https:{}", provider_audience(gcp, p)) == audience
    }) else {
        return invalid_target();
    };
    if provider.disabled {
        return invalid_target();
    }
    let subject_token = field("subject_token").unwrap_or_default();
    let token = match verify_subject_token(sim, gcp, provider, subject_token).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (subject, mapped) = match admit(sim, index, &token) {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let life = sim.lifetime(ACCESS_TOKEN_SECS);
    let access = sim.issue(
        Grant::GcpFederated {
            project_number: gcp.project_number.get_ref().clone(),
            pool: provider.pool.get_ref().clone(),
            subject,
            attributes: mapped.attribute,
            exp: sim.now() + life,
        },
        "ya29.d.sim-",
    );
    json_response(
        StatusCode::OK,
        json!({"access_token": access, "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer", "expires_in": life}),
    )
}

/// The grant and token types STS takes, and the parameters it requires.
fn check_form(form: &[(String, String)]) -> Result<(), Response> {
    let field = |k: &str| form_get(form, k);
    if field("grant_type") != Some(TOKEN_EXCHANGE) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type must be {TOKEN_EXCHANGE}"),
        ));
    }
    for required in [
        "audience",
        "subject_token",
        "subject_token_type",
        "requested_token_type",
    ] {
        if field(required).is_none() {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("Missing required parameter: {required}"),
            ));
        }
    }
    if !SUBJECT_TYPES.contains(&field("subject_token_type").unwrap_or_default()) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid value for \"subject_token_type\": OIDC providers accept urn:ietf:params:oauth:token-type:jwt or id_token.",
        ));
    }
    if field("requested_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Invalid value for \"requested_token_type\": expected {ACCESS_TOKEN_TYPE}."),
        ));
    }
    Ok(())
}

/// The subject token as the provider checks it: its issuer, an accepted audience, a signature by
/// the issuer's published keys, and a short, current lifetime.
async fn verify_subject_token(
    sim: &Sim,
    gcp: &GcpState,
    provider: &GcpProvider,
    subject_token: &str,
) -> Result<Unverified, Response> {
    let token =
        Unverified::parse(subject_token).map_err(|e| invalid_jwt(format!("Invalid JWT: {e}.")))?;
    let issuer = provider.issuer.get_ref();
    if token.str_claim("iss") != Some(issuer.as_str()) {
        return Err(invalid_jwt(format!(
            "Invalid JWT: the issuer '{}' does not match the provider's issuer URI '{issuer}'.",
            token.str_claim("iss").unwrap_or("(none)")
        )));
    }
    let own = provider_audience(gcp, provider);
    let accepted: Vec<String> = if provider.allowed_audiences.is_empty() {
        vec![own.clone(), format!("https:{own}")]
    } else {
        provider
            .allowed_audiences
            .iter()
            .map(|a| a.get_ref().clone())
            .collect()
    };
    let auds = token.audiences();
    if !auds.iter().any(|a| accepted.contains(a)) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            format!(
                "INVALID_ARGUMENT: The audience in ID Token [{}] does not match the expected audience.",
                auds.join(", ")
            ),
        ));
    }
    if let Err(e) = sim.keys.verify(&token, issuer, ALGS).await {
        return Err(match e {
            JwtError::Fetch(FetchError::Unavailable(detail)) => api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Failed to fetch JWKS from issuer {issuer}: {detail}"),
                None,
            ),
            JwtError::Fetch(FetchError::Broken(detail)) => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                format!("INVALID_ARGUMENT: Failed to fetch JWKS from issuer {issuer}: {detail}"),
            ),
            other => invalid_jwt(format!("Invalid JWT signature: {other}.")),
        });
    }
    if let Err(e) = check_times(&token, sim.now(), &TIME) {
        let detail = match e {
            TimeError::Expired { .. } => "the token has expired",
            TimeError::NotYetValid { .. } | TimeError::IssuedInFuture { .. } => {
                "the token is not valid yet"
            }
            TimeError::Missing(_) => "iat and exp are required",
            TimeError::TooLong { .. } => "the token lives longer than 60 minutes",
        };
        return Err(invalid_jwt(format!(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim. ({detail})"
        )));
    }
    Ok(token)
}

/// The provider's attribute mapping and condition applied to the token: the mapped subject and
/// attributes, or the refusal.
fn admit(sim: &Sim, provider: usize, token: &Unverified) -> Result<(String, Mapped), Response> {
    let (mapping, condition) = &sim.state.gcp_rules[provider];
    let mapped = mapping.apply(&token.claims).map_err(|e| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            format!("INVALID_ARGUMENT: The attribute mapping could not be evaluated: {e}."),
        )
    })?;
    let subject = match mapped.google.get("subject").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.len() <= 127 => s.to_owned(),
        _ => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "INVALID_ARGUMENT: The mapped attribute 'google.subject' must be a non-empty string of at most 127 bytes.",
            ));
        }
    };
    if let Some(condition) = condition {
        let vars = Vars {
            assertion: &token.claims,
            google: &mapped.google,
            attribute: &mapped.attribute,
        };
        if condition.eval(&vars) != Ok(true) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "PERMISSION_DENIED: The given credential is rejected by the attribute condition.",
            ));
        }
    }
    Ok((subject, mapped))
}

fn invalid_target() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
    )
}

fn invalid_jwt(detail: String) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        format!("INVALID_ARGUMENT: {detail}"),
    )
}
