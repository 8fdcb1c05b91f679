//! Entra ID's v2.0 token endpoint for app registrations (a federated client assertion, or a
//! client secret) and the discovery documents MSAL reads before it.

use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::clock::rfc3339;
use crate::jwt::{FetchError, JwtError, TimeRules, Unverified, check_times};
use crate::sim::{Grant, Sim};
use crate::state::AzureApp;
use crate::wire::{Req, form_get, json_response};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra signs and accepts RSA only for client assertions.
const ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
const TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: false,
    max_lifetime: None,
};
const ACCESS_TOKEN_SECS: i64 = 3599;

fn aad_error(sim: &Sim, status: StatusCode, error: &str, code: u32, text: String) -> Response {
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    let timestamp = rfc3339(sim.now()).replace('T', " ");
    json_response(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("{}/error?code={code}", sim.base),
        }),
    )
}

/// `GET /<tenant>/v2.0/.well-known/openid-configuration`
fn openid_configuration(sim: &Sim, tenant: &str) -> Response {
    if !tenant_known(sim, tenant) {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let b = &sim.base;
    json_response(
        StatusCode::OK,
        json!({
            "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{b}/{tenant}/v2.0"),
            "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
        }),
    )
}

/// `GET /common/discovery/instance` — MSAL's instance discovery for hosts it does not know.
fn instance_discovery(sim: &Sim, req: &Req) -> Response {
    let host = sim.base.trim_start_matches("https://").to_owned();
    let tenant = req
        .query("authorization_endpoint")
        .and_then(|u| u.strip_prefix(&format!("{}/", sim.base)))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("common")
        .to_owned();
    json_response(
        StatusCode::OK,
        json!({
            "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", sim.base),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]
        }),
    )
}

fn tenant_known(sim: &Sim, tenant: &str) -> bool {
    sim.state
        .file
        .azure
        .as_ref()
        .is_some_and(|a| a.tenants.iter().any(|t| t.get_ref() == tenant))
}

/// Resources the simulated tenant has service principals for.
fn resource_known(sim: &Sim, resource: &str) -> bool {
    [
        "https://cognitiveservices.azure.com",
        "https://management.azure.com",
    ]
    .contains(&resource)
        || sim.is_vault_resource(resource)
}

/// The tenant a path `/<tenant>/…` names.
fn tenant_of(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `POST /<tenant>/oauth2/v2.0/token`
pub async fn token_endpoint(sim: &Sim, req: &Req) -> Response {
    token(sim, req, &tenant_of(&req.path)).await
}

/// The discovery documents: instance discovery, or a tenant's OpenID configuration.
pub fn discovery(sim: &Sim, req: &Req) -> Response {
    if req.path == "/common/discovery/instance" {
        instance_discovery(sim, req)
    } else {
        openid_configuration(sim, &tenant_of(&req.path))
    }
}

/// `POST /<tenant>/oauth2/v2.0/token` with a federated client assertion.
async fn token(sim: &Sim, req: &Req, tenant: &str) -> Response {
    if !tenant_known(sim, tenant) {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form = req.form();
    let field = |k: &str| form_get(&form, k);
    for required in ["grant_type", "client_id", "scope"] {
        if field(required).is_none() {
            return aad_error(
                sim,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{required}'."),
            );
        }
    }
    if field("grant_type") != Some("client_credentials") {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.".into(),
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    let Some(app) = sim.state.file.azure.as_ref().and_then(|a| {
        a.apps
            .iter()
            .find(|app| app.tenant.get_ref() == tenant && app.client_id.get_ref() == client_id)
    }) else {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    };
    let scope = field("scope").unwrap_or_default();
    if let Some(presented) = field("client_secret") {
        return client_secret_token(sim, tenant, app, scope, presented);
    }
    let (Some(assertion), Some(assertion_type)) =
        (field("client_assertion"), field("client_assertion_type"))
    else {
        return aad_error(sim, StatusCode::UNAUTHORIZED, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into());
    };
    if assertion_type != ASSERTION_TYPE {
        return aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50027,
            format!("Invalid client_assertion_type; expected {ASSERTION_TYPE}."),
        );
    }
    let resource = match requested_resource(
        sim,
        tenant,
        scope,
        " This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
    ) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = match verify_assertion(sim, app, assertion).await {
        Ok(now) => now,
        Err(r) => return r,
    };
    access_token(sim, tenant, client_id, resource, now)
}

/// The client assertion as Entra checks it: an RSA signature, a federated credential matching
/// its issuer, subject and audience, the issuer's published keys, and its validity window.
/// Returns the time it was checked at.
async fn verify_assertion(sim: &Sim, app: &AzureApp, assertion: &str) -> Result<i64, Response> {
    let token = Unverified::parse(assertion).map_err(|e| {
        aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50027,
            format!("JWT token is invalid or malformed: {e}."),
        )
    })?;
    if !ALGS.iter().any(|a| format!("{a:?}") == token.alg) {
        return Err(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            5002738,
            format!(
                "Invalid JWT token. '{}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, RS384, RS512'",
                token.alg
            ),
        ));
    }
    let iss = token.str_claim("iss").unwrap_or("");
    let sub = token.str_claim("sub").unwrap_or("");
    let auds = token.audiences();
    let Some(fic) = matching_fic(app, iss, sub, &auds) else {
        return Err(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
                auds.join(",")
            ),
        ));
    };
    if let Err(e) = sim.keys.verify(&token, &fic, ALGS).await {
        return Err(match e {
            JwtError::Fetch(FetchError::Unavailable(detail)) | JwtError::Fetch(FetchError::Broken(detail)) => aad_error(
                sim,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50166,
                format!("Request to External OIDC endpoint failed: {detail}"),
            ),
            JwtError::UnknownKid { kid } => aad_error(
                sim,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50013,
                format!("Assertion failed signature validation. [Reason - The key was not found., Key id of key used by client: '{kid}']"),
            ),
            _ => aad_error(sim, StatusCode::UNAUTHORIZED, "invalid_client", 50013, "Assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]".into()),
        });
    }
    let now = sim.now();
    if check_times(&token, now, &TIME).is_err() {
        return Err(aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                rfc3339(now),
                token
                    .num_claim("nbf")
                    .or(token.num_claim("iat"))
                    .map(rfc3339)
                    .unwrap_or_default(),
                token.num_claim("exp").map(rfc3339).unwrap_or_default()
            ),
        ));
    }
    Ok(now)
}

/// The client-secret half of the token endpoint: the app's own secret instead of an assertion.
fn client_secret_token(
    sim: &Sim,
    tenant: &str,
    app: &AzureApp,
    scope: &str,
    presented: &str,
) -> Response {
    let client_id = app.client_id.get_ref();
    let matches = app.client_secrets.iter().any(|s| {
        let s = s.get_ref();
        s.len() == presented.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), presented.as_bytes())
                .is_ok()
    });
    if !matches {
        return aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let resource = match requested_resource(sim, tenant, scope, "") {
        Ok(r) => r,
        Err(r) => return r,
    };
    access_token(sim, tenant, client_id, resource, sim.now())
}

/// The resource a client-credentials scope asks for, if the tenant knows it; `unknown_hint`
/// ends the error for an unknown one.
fn requested_resource(
    sim: &Sim,
    tenant: &str,
    scope: &str,
    unknown_hint: &str,
) -> Result<String, Response> {
    let resource = vault_resource_of_scope(scope).map_err(|scope| {
        aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    })?;
    if !resource_known(sim, &resource) {
        return Err(aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}.{unknown_hint}"
            ),
        ));
    }
    Ok(resource)
}

/// Issues the app's access token for the resource.
/// Issued at `now`; it lives an hour unless the token-lifetime knob shortens it.
fn access_token(sim: &Sim, tenant: &str, client_id: &str, resource: String, now: i64) -> Response {
    let life = sim.lifetime(ACCESS_TOKEN_SECS);
    let exp = now + life;
    let access = sim.issue(
        Grant::Entra {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            resource,
            exp,
        },
        "eyJ0eXAiOiJKV1Qi.sim-",
    );
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": access}),
    )
}

/// `https://vault.azure.net/.default` → `https://vault.azure.net`; the scope back on error.
fn vault_resource_of_scope(scope: &str) -> Result<String, String> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    match scopes.as_slice() {
        [one] => one
            .strip_suffix("/.default")
            .map(str::to_owned)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| one.to_string()),
        _ => Err(scope.to_owned()),
    }
}

/// Entra matches federated credentials exactly and case-sensitively on all three values; the
/// matched credential's issuer is where the keys come from.
fn matching_fic(app: &AzureApp, iss: &str, sub: &str, auds: &[String]) -> Option<String> {
    app.federated_credentials
        .iter()
        .find(|f| {
            f.issuer.get_ref() == iss
                && f.subject.get_ref() == sub
                && f.audiences.iter().any(|a| auds.contains(a.get_ref()))
        })
        .map(|f| f.issuer.get_ref().clone())
}
