//! Test Connection and secret-name autocomplete for a secret provider credential (SPEC §6).
//! Test Connection proves the federation handshake — not per-secret permissions, and says so.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use keyward_core::secrets::AuthKind;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::domain::secret_providers::find_secret_provider;
use crate::domain::sessions::{Listing, handshake, list_names};
use crate::error::ApiError;
use crate::state::AppState;

const HANDSHAKE_ONLY: &str = "A passing test proves the federation handshake (issuer, subject and audience accepted, the identity reachable); it does not prove per-secret permissions, which are exercised when a variable resolves at kickoff.";

const STATIC_ONLY: &str = "A passing test proves the static credentials authenticate (one authenticated call); it does not prove per-secret permissions, which are exercised when the automation is registered or redeployed.";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    /// For a config with `subject = automation`: the automation (id or name) to test as.
    #[serde(default)]
    automation: Option<String>,
}

/// `POST /secret-providers/{id}/test[?automation=]`.
pub async fn test(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<TestQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = super::query(query, "automation")?;
    let row = find_secret_provider(&app, caller.org()?.id, &id).await?;
    let done = handshake(&app, &caller, &row, query.automation.as_deref()).await?;
    let ok = done.session.is_some();
    let simulated = app.cloud_endpoints.is_some();
    // A newcomer with the simulator running but not configured on the server reaches the real
    // clouds; say so where the failure shows.
    let hint = (!ok && !simulated).then(|| real_clouds_hint(&row.provider));
    Ok(Json(json!({
        "ok": ok,
        "endpoints": if simulated { "simulated" } else { "real" },
        "hint": hint,
        "credential": row.name,
        "provider": row.provider,
        "auth": row.auth,
        "steps": done.steps,
        "presented": done.presented.map(|p| json!({"iss": p.iss, "sub": p.sub, "aud": p.aud})),
        "subject": done.subject,
        "tested_as": done.tested_as,
        "note": if AuthKind::parse(&row.auth) == Ok(AuthKind::Static) { STATIC_ONLY } else { HANDSHAKE_ONLY },
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SecretsQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    automation: Option<String>,
}

/// `GET /secret-providers/{id}/secrets?prefix=`: names from the provider; a permission refusal
/// answers with the role or scope that is missing.
pub async fn secrets(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<SecretsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = super::query(query, "prefix, automation")?;
    let row = find_secret_provider(&app, caller.org()?.id, &id).await?;
    let done = handshake(&app, &caller, &row, query.automation.as_deref()).await?;
    let listing = match done.session {
        Some(session) => list_names(&app, &row, session, &query.prefix).await?,
        None => Listing::Failed(done.steps.last().cloned().unwrap_or(Value::Null)),
    };
    Ok(Json(match listing {
        Listing::Names(names) => json!({"names": names}),
        Listing::Failed(failed) => {
            json!({"names": [], "hint": hint_of(&failed), "failed_step": failed})
        }
        Listing::Hint(hint) => json!({"names": [], "hint": hint}),
    }))
}

/// What a failed test on a server without `KEYWARD_CLOUD_ENDPOINTS` adds: where it went.
fn real_clouds_hint(provider: &str) -> String {
    let endpoint = match provider.split('_').next() {
        Some("gcp") => "https://sts.googleapis.com",
        Some("azure") => "https://login.microsoftonline.com",
        Some("aws") => "https://sts.amazonaws.com",
        _ => "the provider's public endpoints",
    };
    format!(
        "this server talks to the real clouds ({endpoint}); set KEYWARD_CLOUD_ENDPOINTS on the server to use the simulator"
    )
}

fn hint_of(step: &Value) -> String {
    match (
        step["code"].as_str(),
        step["cause"].as_str(),
        step["fix"].as_str(),
    ) {
        (Some(code), Some(cause), Some(fix)) => format!("{code}: {cause}. Fix: {fix}"),
        _ => step["message"]
            .as_str()
            .unwrap_or("the provider refused")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_against_the_real_clouds_names_the_endpoint_and_the_simulator_setting() {
        let hint = real_clouds_hint("aws_secrets_manager");
        assert!(hint.contains("https://sts.amazonaws.com"), "{hint}");
        assert!(
            hint.contains("set KEYWARD_CLOUD_ENDPOINTS on the server"),
            "{hint}"
        );
        assert!(real_clouds_hint("gcp_secret_manager").contains("sts.googleapis.com"));
        assert!(real_clouds_hint("azure_key_vault").contains("login.microsoftonline.com"));
    }
}
