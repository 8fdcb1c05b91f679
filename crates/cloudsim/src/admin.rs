//! Admin endpoints under `/_cloudsim/`: change secrets while running (rotation tests), set fault
//! knobs, read request counters, move the simulated clouds' clock. Loopback only, like the rest.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sim::{ENDPOINTS, Fault, Sim};
use crate::version::Version;
use crate::wire::{Req, json_response};

fn bad(message: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "message": message.into()}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecret {
    cloud: String,
    name: String,
    value: String,
    /// Azure: which vault (default: the first declared).
    #[serde(default)]
    vault: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLifetime {
    /// Seconds; `null` restores each cloud's own lifetime.
    secs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    offset_secs: i64,
}

fn parse<T: serde::de::DeserializeOwned>(req: &Req) -> Result<T, Response> {
    serde_json::from_slice(&req.body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

/// Whether the request carries the simulator's admin token (compared in constant time).
pub fn authorized(sim: &Sim, req: &Req) -> bool {
    let given = req
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), sim.admin_token.as_bytes())
        .is_ok()
}

pub fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": "unauthorized", "message": "the /_cloudsim admin endpoints take 'Authorization: Bearer <admin_token>', the admin_token of the endpoints file this simulator wrote"}),
    )
}

pub async fn handle(sim: &Sim, req: &Req) -> Response {
    let route = req.path.trim_start_matches("/_cloudsim/");
    match (req.method.as_str(), route) {
        ("POST", "secrets") => match parse::<SetSecret>(req) {
            Ok(body) => set_secret(sim, body),
            Err(r) => r,
        },
        ("GET", "requests") => {
            let m = sim.lock();
            json_response(
                StatusCode::OK,
                json!({"counts": m.counts, "issuer_fetches": sim.keys.fetch_count()}),
            )
        }
        ("DELETE", "requests") => {
            sim.lock().counts.clear();
            json_response(StatusCode::OK, json!({"counts": {}}))
        }
        ("GET", "vaults") => json_response(
            StatusCode::OK,
            json!({"vaults": sim.vault_origins.keys().map(|name| (name.clone(), json!({"url": sim.vault_url(name), "resource": sim.vault_resource(name)}))).collect::<serde_json::Map<_, _>>()}),
        ),
        ("GET", "faults") => json_response(StatusCode::OK, json!({"faults": sim.lock().faults})),
        ("POST", "faults") => match parse::<Fault>(req) {
            Ok(fault) => add_fault(sim, fault),
            Err(r) => r,
        },
        ("DELETE", "faults") => {
            sim.lock().faults.clear();
            json_response(StatusCode::OK, json!({"faults": []}))
        }
        ("POST", "gcp/service-account-keys") => match parse::<NewKey>(req) {
            Ok(body) => crate::gcp::keys::create_key(sim, &body.email),
            Err(r) => r,
        },
        ("DELETE", r) if r.starts_with("gcp/service-account-keys/") => {
            crate::gcp::keys::delete_key(sim, r.trim_start_matches("gcp/service-account-keys/"))
        }
        ("POST", "clock") => match parse::<Clock>(req) {
            Ok(c) => {
                sim.lock().clock_offset = c.offset_secs;
                json_response(
                    StatusCode::OK,
                    json!({"offset_secs": c.offset_secs, "now": sim.now()}),
                )
            }
            Err(r) => r,
        },
        ("POST", "token-lifetime") => match parse::<TokenLifetime>(req) {
            Ok(TokenLifetime { secs: Some(secs) }) if secs < 1 => {
                bad("secs must be at least 1 (or null for the clouds' own lifetimes)")
            }
            Ok(body) => {
                sim.lock().token_lifetime = body.secs;
                json_response(StatusCode::OK, json!({"secs": body.secs}))
            }
            Err(r) => r,
        },
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "message": format!("no admin endpoint {} /_cloudsim/{route}; try POST secrets|faults|clock|token-lifetime|gcp/service-account-keys, DELETE gcp/service-account-keys/<id>, GET requests|faults|vaults, DELETE requests|faults", req.method)}),
        ),
    }
}

fn add_fault(sim: &Sim, fault: Fault) -> Response {
    if let Some(endpoint) = &fault.endpoint
        && !ENDPOINTS.contains(&endpoint.as_str())
    {
        return bad(format!(
            "unknown endpoint '{endpoint}'; use one of {}",
            ENDPOINTS.join(", ")
        ));
    }
    if !(0.0..=1.0).contains(&fault.error_rate) {
        return bad("error_rate must be between 0 and 1");
    }
    if let Some(status) = fault.status
        && status != 429
        && !(500..=599).contains(&status)
    {
        return bad(format!(
            "status {status} is not a transient failure; use 429 or a 5xx"
        ));
    }
    let mut m = sim.lock();
    m.faults.push(fault);
    json_response(StatusCode::OK, json!({"faults": m.faults}))
}

fn set_secret(sim: &Sim, body: SetSecret) -> Response {
    let version: Version = match body.cloud.as_str() {
        "gcp" => {
            if sim.state.file.gcp.is_none() {
                return bad("this world declares no [gcp]");
            }
            let now = sim.now();
            let mut m = sim.lock();
            let versions = m.gcp_secrets.entry(body.name.clone()).or_default();
            let v = Version {
                id: (versions.len() + 1).to_string(),
                value: body.value,
                created: now,
            };
            versions.push(v.clone());
            v
        }
        "azure" => {
            let vault = body.vault.clone().or_else(|| {
                sim.state
                    .file
                    .azure
                    .as_ref()
                    .and_then(|a| a.vaults.first())
                    .map(|v| v.name.get_ref().clone())
            });
            let Some(vault) = vault else {
                return bad("this world declares no Azure vault");
            };
            if !body
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return bad(format!(
                    "'{}' is not a Key Vault secret name (letters, digits, hyphens)",
                    body.name
                ));
            }
            crate::azure::key_vault::add_version(sim, &vault, &body.name, body.value)
        }
        "aws" => match crate::aws::secrets_manager::put_value(sim, &body.name, body.value, true) {
            Some((_, _, v)) => v,
            None => return bad("this world declares no [aws]"),
        },
        other => return bad(format!("cloud must be gcp, azure or aws, not '{other}'")),
    };
    json_response(
        StatusCode::OK,
        json!({"cloud": body.cloud, "name": body.name, "version": version.id}),
    )
}

/// The request counters as a map, for tests.
pub fn counts(value: &Value) -> std::collections::BTreeMap<String, u64> {
    value
        .get("counts")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}
