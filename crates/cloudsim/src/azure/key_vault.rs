//! Key Vault secrets on a vault's own origin: the bearer challenge that names the tenant and
//! resource, Entra tokens checked for audience and issuer, and Azure RBAC on the data plane.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::sim::{Grant, Sim, random_string};
use crate::state::AzureVault;
use crate::version::Version;
use crate::wire::{Req, json_response};

const VAULT_RESOURCE: &str = "https://vault.azure.net";
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
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let rest = req.path.trim_start_matches("/vaults/");
    let (vault_name, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let (vault, client_id) = match admit(sim, req, vault_name) {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let vault_url = sim.vault_url(vault_name);
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["secrets"]) => list_secrets(sim, vault, &client_id, &vault_url),
        ("GET", ["secrets", name]) | ("GET", ["secrets", name, ""]) => {
            get_secret(sim, vault, &client_id, &vault_url, name, None)
        }
        ("GET", ["secrets", name, version]) => {
            get_secret(sim, vault, &client_id, &vault_url, name, Some(version))
        }
        ("PUT", ["secrets", name]) => set_secret(sim, req, vault, &client_id, &vault_url, name),
        _ => kv_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No Key Vault operation at {rest}."),
            None,
        ),
    }
}

/// The vault and the app calling it: a supported `api-version`, then a bearer token Entra issued
/// for a Key Vault resource in the vault's tenant, else the challenge that says where to get one.
fn admit<'a>(
    sim: &'a Sim,
    req: &Req,
    vault_name: &str,
) -> Result<(&'a AzureVault, String), Response> {
    let Some(vault) = sim
        .state
        .file
        .azure
        .as_ref()
        .and_then(|a| a.vaults.iter().find(|v| v.name.get_ref() == vault_name))
    else {
        return Err(kv_error(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            format!("The vault '{vault_name}' does not exist in this simulated cloud."),
            None,
        ));
    };
    let tenant = vault.tenant.get_ref();
    match req.query("api-version") {
        None => {
            return Err(kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The 'api-version' query parameter is missing.".into(),
                None,
            ));
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return Err(kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                format!(
                    "The specified version ({v}) is not recognized. Consider using the latest supported version ({}).",
                    API_VERSIONS[API_VERSIONS.len() - 1]
                ),
                None,
            ));
        }
        Some(_) => {}
    }
    let Some(token) = req.bearer() else {
        return Err(challenge(
            sim,
            vault_name,
            tenant,
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let (client_id, token_tenant, resource) = match sim.grant(token) {
        Some(Grant::Entra {
            client_id,
            tenant,
            resource,
            ..
        }) => (client_id, tenant, resource),
        _ => {
            return Err(challenge(
                sim,
                vault_name,
                tenant,
                "AKV10013: Token is invalid or has expired.",
            ));
        }
    };
    if !sim.is_vault_resource(&resource) {
        return Err(challenge(
            sim,
            vault_name,
            tenant,
            &format!("AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {resource}."),
        ));
    }
    if token_tenant != *tenant {
        return Err(challenge(
            sim,
            vault_name,
            tenant,
            &format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found https://sts.windows.net/{token_tenant}/."
            ),
        ));
    }
    Ok((vault, client_id))
}

fn list_secrets(sim: &Sim, vault: &AzureVault, client_id: &str, vault_url: &str) -> Response {
    if let Err(r) = authorize(
        vault,
        client_id,
        None,
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        false,
    ) {
        return r;
    }
    let vault_name = vault.name.get_ref();
    let m = sim.lock();
    let items: Vec<Value> = m
        .azure_secrets
        .iter()
        .filter(|((v, _), _)| v == vault_name)
        .map(|((_, name), versions)| json!({"id": format!("{vault_url}/secrets/{name}"), "attributes": attributes(versions.last())}))
        .collect();
    json_response(StatusCode::OK, json!({"value": items, "nextLink": null}))
}

fn set_secret(
    sim: &Sim,
    req: &Req,
    vault: &AzureVault,
    client_id: &str,
    vault_url: &str,
    name: &str,
) -> Response {
    if let Err(r) = authorize_secret(
        vault,
        client_id,
        name,
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
    let version = add_version(sim, vault.name.get_ref(), name, value);
    json_response(StatusCode::OK, secret_bundle(vault_url, name, &version))
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
    if let Err(r) = authorize_secret(
        vault,
        client_id,
        name,
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

/// A valid secret name, then the right on that secret.
fn authorize_secret(
    vault: &AzureVault,
    client_id: &str,
    name: &str,
    action: &str,
    write: bool,
) -> Result<(), Response> {
    if !secret_name_ok(name) {
        return Err(kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!("The request URI contains an invalid name: {name}"),
            None,
        ));
    }
    authorize(vault, client_id, Some(name), action, write)
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
