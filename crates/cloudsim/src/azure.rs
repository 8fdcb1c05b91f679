//! Azure: Entra's v2.0 token endpoint for federated client assertions (plus the discovery
//! documents MSAL reads first) and Key Vault secrets with its bearer challenge and Azure RBAC.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::jwt::{FetchError, JwtError, TimeRules, Unverified, check_times};
use crate::sim::{Grant, Req, Sim, Version, form_get, json_response, random_string};
use crate::state::{AzureApp, AzureVault};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra signs and accepts RSA only for client assertions.
const ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
const TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: false,
    max_lifetime: None,
};
const VAULT_RESOURCE: &str = "https://vault.azure.net";
const ACCESS_TOKEN_SECS: i64 = 3599;
pub const API_VERSIONS: &[&str] = &[
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
];

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
pub fn openid_configuration(sim: &Sim, tenant: &str) -> Response {
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
pub fn instance_discovery(sim: &Sim, req: &Req) -> Response {
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

/// `POST /<tenant>/oauth2/v2.0/token` with a federated client assertion.
pub async fn token(sim: &Sim, req: &Req, tenant: &str) -> Response {
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
    if let Some(presented) = field("client_secret") {
        return client_secret_token(sim, req, tenant, client_id, app, presented);
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
    let resource = match vault_resource_of_scope(field("scope").unwrap_or_default()) {
        Ok(r) => r,
        Err(scope) => {
            return aad_error(
                sim,
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            );
        }
    };
    if !resource_known(sim, &resource) {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        );
    }
    let token = match Unverified::parse(assertion) {
        Ok(t) => t,
        Err(e) => {
            return aad_error(
                sim,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50027,
                format!("JWT token is invalid or malformed: {e}."),
            );
        }
    };
    if !ALGS.iter().any(|a| format!("{a:?}") == token.alg) {
        return aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            5002738,
            format!(
                "Invalid JWT token. '{}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, RS384, RS512'",
                token.alg
            ),
        );
    }
    let iss = token.str_claim("iss").unwrap_or("");
    let sub = token.str_claim("sub").unwrap_or("");
    let auds = token.audiences();
    let Some(fic) = matching_fic(app, iss, sub, &auds) else {
        return aad_error(
            sim,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
                auds.join(",")
            ),
        );
    };
    if let Err(e) = sim.keys.verify(&token, &fic, ALGS).await {
        return match e {
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
        };
    }
    let now = sim.now();
    if check_times(&token, now, &TIME).is_err() {
        return aad_error(
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
        );
    }
    let access = sim.issue(
        Grant::Entra {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            resource,
            exp: now + ACCESS_TOKEN_SECS,
        },
        "eyJ0eXAiOiJKV1Qi.sim-",
    );
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECS, "ext_expires_in": ACCESS_TOKEN_SECS, "access_token": access}),
    )
}

/// The client-secret half of the token endpoint: the app's own secret instead of an assertion.
fn client_secret_token(
    sim: &Sim,
    req: &Req,
    tenant: &str,
    client_id: &str,
    app: &AzureApp,
    presented: &str,
) -> Response {
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
    let form = req.form();
    let resource = match vault_resource_of_scope(form_get(&form, "scope").unwrap_or_default()) {
        Ok(r) => r,
        Err(scope) => {
            return aad_error(
                sim,
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            );
        }
    };
    if !resource_known(sim, &resource) {
        return aad_error(
            sim,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}."
            ),
        );
    }
    let access = sim.issue(
        Grant::Entra {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            resource,
            exp: sim.now() + ACCESS_TOKEN_SECS,
        },
        "eyJ0eXAiOiJKV1Qi.sim-",
    );
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECS, "ext_expires_in": ACCESS_TOKEN_SECS, "access_token": access}),
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

fn kv_error(status: StatusCode, code: &str, message: String, inner: Option<&str>) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = json!({"code": inner});
    }
    json_response(status, json!({ "error": error }))
}

fn challenge(sim: &Sim, vault: &str, tenant: &str, message: &str) -> Response {
    let mut resp = kv_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        message.to_owned(),
        None,
    );
    let value = format!(
        "Bearer authorization=\"{}/{tenant}\", resource=\"{}\"",
        sim.base,
        sim.vault_resource(vault)
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn secret_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `…/vaults/<vault>/secrets[/<name>[/<version>]]`
pub async fn key_vault(sim: &Sim, req: &Req, vault_name: &str, rest: &str) -> Response {
    let Some(vault) = sim
        .state
        .file
        .azure
        .as_ref()
        .and_then(|a| a.vaults.iter().find(|v| v.name.get_ref() == vault_name))
    else {
        return kv_error(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            format!("The vault '{vault_name}' does not exist in this simulated cloud."),
            None,
        );
    };
    let tenant = vault.tenant.get_ref();
    match req.query("api-version") {
        None => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The 'api-version' query parameter is missing.".into(),
                None,
            );
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                format!(
                    "The specified version ({v}) is not recognized. Consider using the latest supported version ({}).",
                    API_VERSIONS[API_VERSIONS.len() - 1]
                ),
                None,
            );
        }
        Some(_) => {}
    }
    let Some(token) = req.bearer() else {
        return challenge(
            sim,
            vault_name,
            tenant,
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
    };
    let (client_id, token_tenant, resource) = match sim.grant(token) {
        Some(Grant::Entra {
            client_id,
            tenant,
            resource,
            ..
        }) => (client_id, tenant, resource),
        _ => {
            return challenge(
                sim,
                vault_name,
                tenant,
                "AKV10013: Token is invalid or has expired.",
            );
        }
    };
    if !sim.is_vault_resource(&resource) {
        return challenge(
            sim,
            vault_name,
            tenant,
            &format!("AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {resource}."),
        );
    }
    if token_tenant != *tenant {
        return challenge(
            sim,
            vault_name,
            tenant,
            &format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found https://sts.windows.net/{token_tenant}/."
            ),
        );
    }
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let vault_url = sim.vault_url(vault_name);
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["secrets"]) => {
            if let Err(r) = authorize(
                vault,
                &client_id,
                None,
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                false,
            ) {
                return r;
            }
            let m = sim.lock();
            let items: Vec<Value> = m
                .azure_secrets
                .iter()
                .filter(|((v, _), _)| v == vault_name)
                .map(|((_, name), versions)| json!({"id": format!("{vault_url}/secrets/{name}"), "attributes": attributes(versions.last())}))
                .collect();
            json_response(StatusCode::OK, json!({"value": items, "nextLink": null}))
        }
        ("GET", ["secrets", name]) | ("GET", ["secrets", name, ""]) => {
            get_secret(sim, vault, &client_id, &vault_url, name, None)
        }
        ("GET", ["secrets", name, version]) => {
            get_secret(sim, vault, &client_id, &vault_url, name, Some(version))
        }
        ("PUT", ["secrets", name]) => {
            if !secret_name_ok(name) {
                return kv_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("The request URI contains an invalid name: {name}"),
                    None,
                );
            }
            if let Err(r) = authorize(
                vault,
                &client_id,
                Some(name),
                "Microsoft.KeyVault/vaults/secrets/setSecret/action",
                true,
            ) {
                return r;
            }
            let value = match serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|b| b.get("value").and_then(Value::as_str).map(str::to_owned))
            {
                Some(v) => v,
                None => {
                    return kv_error(
                        StatusCode::BAD_REQUEST,
                        "BadParameter",
                        "Property 'value' is required.".into(),
                        None,
                    );
                }
            };
            let version = add_version(sim, vault_name, name, value);
            json_response(StatusCode::OK, secret_bundle(&vault_url, name, &version))
        }
        _ => kv_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No Key Vault operation at {rest}."),
            None,
        ),
    }
}

/// Adds a version (the admin endpoint and `PUT` share it) and returns it.
pub fn add_version(sim: &Sim, vault: &str, name: &str, value: String) -> Version {
    let now = sim.now();
    let version = Version {
        id: random_string(32).to_lowercase(),
        value,
        created: now,
    };
    sim.lock()
        .azure_secrets
        .entry((vault.to_owned(), name.to_owned()))
        .or_default()
        .push(version.clone());
    version
}

fn attributes(v: Option<&Version>) -> Value {
    let created = v.map(|v| v.created).unwrap_or(0);
    json!({"enabled": true, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90})
}

fn secret_bundle(vault_url: &str, name: &str, v: &Version) -> Value {
    json!({"value": v.value, "id": format!("{vault_url}/secrets/{name}/{}", v.id), "attributes": attributes(Some(v))})
}

fn get_secret(
    sim: &Sim,
    vault: &AzureVault,
    client_id: &str,
    vault_url: &str,
    name: &str,
    version: Option<&str>,
) -> Response {
    if !secret_name_ok(name) {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!("The request URI contains an invalid name: {name}"),
            None,
        );
    }
    if let Err(r) = authorize(
        vault,
        client_id,
        Some(name),
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        false,
    ) {
        return r;
    }
    let m = sim.lock();
    let versions = m
        .azure_secrets
        .get(&(vault.name.get_ref().clone(), name.to_owned()));
    let chosen = versions.and_then(|vs| match version {
        None => vs.last(),
        Some(id) => vs.iter().find(|v| v.id == id),
    });
    match chosen {
        Some(v) => json_response(StatusCode::OK, secret_bundle(vault_url, name, v)),
        None => kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
            None,
        ),
    }
}

/// Azure RBAC on the data plane: `secret: None` asks for a vault-scoped right (list).
fn authorize(
    vault: &AzureVault,
    client_id: &str,
    secret: Option<&str>,
    action: &str,
    write: bool,
) -> Result<(), Response> {
    let vault_name = vault.name.get_ref();
    if !vault.rbac {
        return Err(kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "The user, group or application 'appid={client_id}' does not have secrets permission on key vault '{vault_name}'. The request was not authorized: this vault uses the legacy access policy permission model. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
            ),
            Some("AccessDenied"),
        ));
    }
    let roles: &[&str] = if write {
        &["Key Vault Secrets Officer", "Key Vault Administrator"]
    } else {
        &[
            "Key Vault Secrets User",
            "Key Vault Secrets Officer",
            "Key Vault Administrator",
        ]
    };
    let granted = vault.role_assignments.iter().any(|ra| {
        ra.principal.get_ref() == client_id
            && roles.contains(&ra.role.get_ref().as_str())
            && match (&ra.secret, secret) {
                (None, _) => true,
                (Some(scoped), Some(wanted)) => scoped.get_ref() == wanted,
                (Some(_), None) => false,
            }
    });
    if granted {
        return Ok(());
    }
    let scope = match secret {
        Some(s) => format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/cloudsim/providers/microsoft.keyvault/vaults/{vault_name}/secrets/{s}"
        ),
        None => format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/cloudsim/providers/microsoft.keyvault/vaults/{vault_name}"
        ),
    };
    let listing = if secret.is_none() {
        " (list needs the role at vault scope)"
    } else {
        ""
    };
    Err(kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={client_id};iss=https://sts.windows.net/{}/\r\nAction: '{action}'{listing}\r\nResource: '{scope}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {vault_name};location=eastus\r\n",
            vault.tenant.get_ref()
        ),
        Some("ForbiddenByRbac"),
    ))
}
