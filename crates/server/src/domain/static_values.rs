//! Static-backed values (SPEC §6, the reference's second rotation behaviour): resolved when
//! variables are assigned to an automation and when it is redeployed, sealed, and handed to each
//! kickoff unchanged until the next redeploy.

use std::time::Duration;

use keyward_cloud::{Access, Deadline, Secret, SecretLocation, resolve_secret};
use keyward_core::secrets::{AuthKind, ProviderKind, SecretRef, SecretUse};
use keyward_core::{AutomationId, EnvVarId, OrgId};
use keyward_store::{AutomationRow, EnvVarRow, ResolvedValue, SecretProviderRow};
use serde_json::json;

use super::secret_providers::setting;
use super::sessions::{Handshake, Session, static_handshake};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The additional data a resolved static value is sealed with: bound to its automation and variable.
pub(crate) fn resolved_aad(automation: AutomationId, var: EnvVarId) -> Vec<u8> {
    keyward_store::crypto::Aad::Resolved { automation, var }.bytes()
}

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

/// Fetches and seals every static-backed value of `vars` for `automation`: one sign-in per
/// credential, then one read per variable. Any failure is a 400 naming each variable; nothing is
/// stored then.
pub(crate) async fn resolve(
    app: &AppState,
    org: OrgId,
    automation: AutomationId,
    vars: &[EnvVarRow],
    now: i64,
) -> Result<Vec<ResolvedValue>, ApiError> {
    let credentials = app.store.list_secret_providers(org).await?;
    let mut by_credential: Vec<(&SecretProviderRow, Vec<&EnvVarRow>)> = Vec::new();
    for var in vars {
        let Some(credential) = static_credential(var, &credentials) else {
            continue;
        };
        match by_credential
            .iter_mut()
            .find(|(c, _)| c.id == credential.id)
        {
            Some((_, list)) => list.push(var),
            None => by_credential.push((credential, vec![var])),
        }
    }
    if by_credential.is_empty() {
        return Ok(Vec::new());
    }
    let clouds = app.clouds()?;
    let deadline = Deadline::after(DEADLINE);
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (credential, vars) in by_credential {
        let session = match static_handshake(app, &clouds, credential, &deadline).await {
            Ok(Handshake {
                session: Some(session),
                ..
            }) => session,
            Ok(Handshake { steps, .. }) => {
                let why = steps
                    .last()
                    .map(|s| {
                        format!(
                            "{} failed: {} {}",
                            s["step"].as_str().unwrap_or_default(),
                            s["code"].as_str().unwrap_or_default(),
                            s["cause"].as_str().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                for var in vars {
                    problems.push(format!(
                        "{}: the static credentials of '{}' did not sign in ({why})",
                        var.key, credential.name
                    ));
                }
                continue;
            }
            Err(ApiError::Invalid { message, .. }) => {
                for var in vars {
                    problems.push(format!("{}: {message}", var.key));
                }
                continue;
            }
            Err(other) => return Err(other),
        };
        for var in vars {
            match fetch(&clouds, var, credential, &session, &deadline).await {
                // No process environment can hold a NUL (trial B3): refuse it now, by name.
                Ok(value) if value.expose().contains('\0') => problems.push(format!(
                    "{}: the secret's value contains a NUL byte, which no process environment can hold; remove it from the secret",
                    var.key
                )),
                Ok(value) => values.push(ResolvedValue {
                    env_var_id: var.id,
                    sealed_value: app
                        .master
                        .seal(&resolved_aad(automation, var.id), value.expose().as_bytes())
                        .map_err(|e| {
                            ApiError::internal(format!("sealing a resolved value: {e}"))
                        })?,
                    resolved_at: now,
                }),
                Err(problem) => problems.push(problem),
            }
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

/// Reads one variable's secret with a signed-in session, and its `#json_key` field if named.
async fn fetch(
    clouds: &keyward_cloud::Clouds,
    var: &EnvVarRow,
    credential: &SecretProviderRow,
    session: &Session,
    deadline: &Deadline,
) -> Result<Secret, String> {
    let reference = SecretRef::parse(var.secret_name.as_deref().unwrap_or_default())
        .map_err(|e| format!("{}: {e}", var.key))?;
    let provider =
        ProviderKind::parse(&credential.provider).map_err(|e| format!("{}: {e}", var.key))?;
    let at = SecretLocation {
        project: setting(credential, "project"),
        vault_url: setting(credential, "vault_url"),
        region: setting(credential, "region"),
    };
    let access = match session {
        Session::Gcp(token) => Access::Gcp(token.clone()),
        Session::Azure(_) if at.vault_url.is_none() => {
            return Err(format!(
                "azure_vault_url is required for Azure secret resolution: {} (set vault_url on credential '{}')",
                var.key, credential.name
            ));
        }
        Session::Azure(token) => Access::Azure(token.clone()),
        Session::Aws(creds) => Access::Aws(creds.clone()),
    };
    let wanted = SecretUse {
        key: var.key.clone(),
        provider: provider.as_str().to_owned(),
        secret: reference.provider_name(provider),
        credential: credential.name.clone(),
        json_key: reference.json_key,
    };
    resolve_secret(clouds, &access, &at, &wanted, deadline)
        .await
        .map_err(|e| e.to_string())
}

/// `POST /automations/{id}/redeploy`: resolves the static-backed values anew and returns the
/// keys that resolved.
pub(crate) async fn redeploy(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
) -> Result<Vec<String>, ApiError> {
    let org = caller.org()?.id;
    let vars = app.store.automation_env_vars(org, automation.id).await?;
    let values = resolve(app, org, automation.id, &vars, caller.now).await?;
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
    Ok(keys)
}
