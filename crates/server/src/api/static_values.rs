//! Static-backed values (SPEC §6, the reference's second rotation behaviour): resolved when
//! variables are assigned to an automation and when it is redeployed, sealed, and handed to each
//! kickoff unchanged until the next redeploy.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use keyward_cloud::aws::SessionCredentials;
use keyward_cloud::{Cause, Deadline, Secret};
use keyward_core::secrets::{AuthKind, ProviderKind, SecretRef, json_field};
use keyward_core::{AutomationId, OrgId};
use keyward_store::{EnvVarRow, ResolvedValue, SecretProviderRow};
use serde_json::{Value, json};

use super::automations::{self, resolved_aad};
use super::secret_providers::{open_static, setting};
use crate::audit::kind;
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;

const DEADLINE: Duration = Duration::from_secs(30);

/// The credential a variable references, if it is static.
fn static_credential<'a>(
    var: &EnvVarRow,
    credentials: &'a [SecretProviderRow],
) -> Option<&'a SecretProviderRow> {
    let credential = match (var.credential_id, var.provider.as_deref()) {
        (Some(id), _) => credentials.iter().find(|c| c.id == id),
        (None, Some(provider)) => credentials
            .iter()
            .find(|c| c.provider == provider && c.default_for_provider),
        (None, None) => None,
    }?;
    (AuthKind::parse(&credential.auth) == Ok(AuthKind::Static)).then_some(credential)
}

/// Fetches and seals every static-backed value of `vars` for `automation`. Any failure is a 400
/// naming each variable; nothing is stored then.
pub(crate) async fn resolve(
    app: &AppState,
    org: OrgId,
    automation: AutomationId,
    vars: &[EnvVarRow],
) -> Result<Vec<ResolvedValue>, ApiError> {
    let credentials = app.store.list_secret_providers(org).await?;
    let wanted: Vec<(&EnvVarRow, &SecretProviderRow)> = vars
        .iter()
        .filter_map(|v| static_credential(v, &credentials).map(|c| (v, c)))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let clouds = app.clouds()?;
    let deadline = Deadline::after(DEADLINE);
    let now = clock::now();
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (var, credential) in wanted {
        match fetch(app, &clouds, var, credential, &deadline).await {
            Ok(value) => values.push(ResolvedValue {
                env_var_id: var.id,
                sealed_value: app
                    .master
                    .seal(&resolved_aad(automation, var.id), value.expose().as_bytes())
                    .map_err(|e| ApiError::internal(format!("sealing a resolved value: {e}")))?,
                resolved_at: now,
            }),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(ApiError::Invalid {
            code: "unresolved",
            message: format!(
                "{} static-backed variable(s) did not resolve: {}",
                problems.len(),
                problems.join("; ")
            ),
            field: Some("environment_variables"),
        })
    }
}

async fn fetch(
    app: &AppState,
    clouds: &keyward_cloud::Clouds,
    var: &EnvVarRow,
    credential: &SecretProviderRow,
    deadline: &Deadline,
) -> Result<Secret, String> {
    let reference = SecretRef::parse(var.secret_name.as_deref().unwrap_or_default())
        .map_err(|e| format!("{}: {e}", var.key))?;
    let provider =
        ProviderKind::parse(&credential.provider).map_err(|e| format!("{}: {e}", var.key))?;
    let fields = open_static(app, credential)
        .map_err(|_| {
            format!(
                "{}: the static credentials of '{}' cannot be opened",
                var.key, credential.name
            )
        })?
        .ok_or_else(|| {
            format!(
                "no credential found for {}: '{}' has no static credentials",
                var.key, credential.name
            )
        })?;
    let value = match provider {
        ProviderKind::AwsSecretsManager => {
            if fields.0.contains_key("role_arn") {
                return Err(format!(
                    "{}: static AWS credentials with role_arn (AssumeRole) are not supported yet; use the access key's own permissions",
                    var.key
                ));
            }
            let keys = SessionCredentials::static_keys(
                fields
                    .0
                    .get("access_key_id")
                    .map(String::as_str)
                    .unwrap_or_default(),
                Secret::new(
                    fields
                        .0
                        .get("secret_access_key")
                        .cloned()
                        .unwrap_or_default(),
                ),
            );
            let region = setting(credential, "region").unwrap_or_else(|| "us-east-1".into());
            let name = reference.provider_name(provider);
            clouds
                .aws(&region)
                .get_secret_value(&keys, &name, deadline)
                .await
                .map_err(|e| match e.cause() {
                    Some(Cause::SecretNotFound) => format!(
                        "secret not found: {} (aws_secrets_manager secret '{name}' through credential '{}')",
                        var.key, credential.name
                    ),
                    _ => format!("{}: {e}", var.key),
                })?
        }
        other => {
            return Err(format!(
                "{}: static credentials for {} are not supported yet; use workload identity for it",
                var.key,
                other.as_str()
            ));
        }
    };
    match &reference.json_key {
        None => Ok(value),
        Some(key) => json_field(value.expose(), key)
            .map(Secret::new)
            .ok_or_else(|| {
                format!(
                    "JSON key not found: {} ('{key}' in {} secret '{}')",
                    var.key,
                    provider.as_str(),
                    reference.name
                )
            }),
    }
}

/// `POST /automations/{id}/redeploy`: resolves the static-backed values anew.
pub async fn redeploy(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let org = caller.org()?.id;
    let automation = automations::find(&app, org, &id).await?;
    let vars = app.store.automation_env_vars(org, automation.id).await?;
    let values = resolve(&app, org, automation.id, &vars).await?;
    app.store
        .replace_resolved_values(automation.id, &values)
        .await?;
    let keys: Vec<String> = vars
        .iter()
        .filter(|v| values.iter().any(|r| r.env_var_id == v.id))
        .map(|v| v.key.clone())
        .collect();
    app.audit
        .record(
            kind::AUTOMATION_REDEPLOYED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": automation.id, "automation": automation.name, "static_values_resolved": keys}),
        )
        .await?;
    Ok(Json(
        json!({"automation": automation.name, "static_values_resolved": keys}),
    ))
}
