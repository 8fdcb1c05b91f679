//! The kickoff plan for the calling automation (SPEC §5 step 1): which identities it federates
//! as, its LLM connections, and how each assigned variable gets its value.

use std::collections::BTreeMap;

use keyward_core::api::v1::{
    KickoffAutomation, KickoffEnvVar, KickoffIdentity, KickoffLlmConnection, KickoffPlan,
    KickoffValue,
};
use keyward_core::secrets::{AuthKind, ProviderKind, SecretRef};
use keyward_core::workload::{RankedConfig, WorkloadIdentity, kickoff_identities};
use keyward_core::{AutomationId, OrgId};
use keyward_store::{EnvVarRow, LlmConnectionRow, SecretProviderRow, WiConfigRow};
use serde_json::json;

use super::env_vars::read_value;
use super::secret_providers::setting;
use super::static_values::resolved_aad;
use super::wi_configs::identity_of;
use crate::audit::kind;
use crate::caller::{Caller, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// The plan for the calling automation, audited before it is handed out.
pub(crate) async fn plan(app: &AppState, caller: &Caller) -> Result<KickoffPlan, ApiError> {
    let Principal::Automation { automation, name } = &caller.principal else {
        return Err(ApiError::internal("kickoff reached without an automation"));
    };
    let org = caller.org()?.id;
    let configs = app.store.list_wi_configs(org).await?;
    let connections: Vec<LlmConnectionRow> = app
        .store
        .list_llm_connections(org)
        .await?
        .into_iter()
        .filter(|c| c.automations.contains(automation))
        .collect();
    let identities = identities(&configs, &connections, *automation)?;
    let names: BTreeMap<_, _> = configs.iter().map(|c| (c.id, c.name.clone())).collect();
    let mut withheld = Vec::new();
    let llm_connections = connections
        .iter()
        .map(|c| {
            Ok(KickoffLlmConnection {
                name: c.name.clone(),
                provider: c.provider.clone(),
                model: c.model.clone(),
                workload_identity_config: c.wi_config_id.and_then(|id| names.get(&id).cloned()),
                env: serde_json::from_str::<BTreeMap<String, String>>(&c.env)
                    .map_err(|e| ApiError::internal(format!("LLM connection {} env: {e}", c.id)))?
                    .into_iter()
                    .filter(|(k, _)| {
                        let holder = format!("LLM connection '{}'", c.name);
                        !left_out(k, &holder, name, &mut withheld)
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let env = env_plan(
        app,
        org,
        (*automation, name.as_str()),
        &configs,
        &mut withheld,
    )
    .await?;
    let kickoff_id = uuid::Uuid::new_v4().to_string();
    app.audit
        .record(
            kind::KICKOFF_PLANNED,
            Some(org),
            &caller.actor(),
            json!({
                "kickoff_id": kickoff_id,
                "automation_id": automation,
                "automation": name,
                "identities": identities.iter().map(|i| json!({"config": i.config, "cloud": i.cloud})).collect::<Vec<_>>(),
                "llm_connections": llm_connections.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "env_keys": env.iter().map(|v| v.key.clone()).collect::<Vec<_>>(),
                "client_ip": caller.ip.map(|ip| ip.to_string()),
            }),
        )
        .await?;
    Ok(KickoffPlan {
        kickoff_id,
        automation: KickoffAutomation {
            id: *automation,
            name: name.clone(),
        },
        identities,
        llm_connections,
        token_ttl: app.config.token_ttl,
        env,
        withheld,
    })
}

/// Per cloud, the best-ranked config this automation may use (`keyward_core::workload`), with
/// the service account of the Vertex connection that chose it.
fn identities(
    configs: &[WiConfigRow],
    connections: &[LlmConnectionRow],
    automation: AutomationId,
) -> Result<Vec<KickoffIdentity>, ApiError> {
    let ranked: Vec<RankedConfig<'_, usize>> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| RankedConfig {
            id: i,
            cloud: &c.cloud,
            lists_automation: c.automations.contains(&automation),
            unrestricted: c.automations.is_empty(),
            default_for_cloud: c.default_for_cloud,
        })
        .collect();
    let used: Vec<(usize, Option<String>)> = connections
        .iter()
        .filter_map(|connection| {
            let config = connection.wi_config_id?;
            let i = configs.iter().position(|c| c.id == config)?;
            Some((i, connection.service_account_email.clone()))
        })
        .collect();
    kickoff_identities(&ranked, &used)
        .into_iter()
        .map(|(i, sa)| identity(&configs[i], sa))
        .collect()
}

fn identity(config: &WiConfigRow, sa: Option<String>) -> Result<KickoffIdentity, ApiError> {
    let parsed = identity_of(config)?;
    let mut out = KickoffIdentity {
        config_id: config.id,
        config: config.name.clone(),
        cloud: config.cloud.clone(),
        audience: parsed.audience().to_string(),
        provider: None,
        project_number: None,
        service_account_email: None,
        tenant_id: None,
        client_id: None,
        role_arn: None,
        region: None,
    };
    match parsed {
        WorkloadIdentity::Gcp { provider } => {
            out.provider = Some(provider.resource_name());
            out.project_number = Some(provider.project_number);
            out.service_account_email = sa;
        }
        WorkloadIdentity::Azure {
            tenant_id,
            client_id,
        } => {
            out.tenant_id = Some(tenant_id);
            out.client_id = Some(client_id);
        }
        WorkloadIdentity::Aws { role_arn, region } => {
            out.role_arn = Some(role_arn);
            out.region = Some(region);
        }
    }
    Ok(out)
}

/// How each assigned variable gets its value at this kickoff (SPEC §6): direct values and
/// static-backed values resolved at the last redeploy are handed over; workload-identity-backed
/// ones are fetched fresh by the runtime; anything unresolvable says why, naming the variable.
async fn env_plan(
    app: &AppState,
    org: OrgId,
    (automation, name): (AutomationId, &str),
    configs: &[WiConfigRow],
    withheld: &mut Vec<String>,
) -> Result<Vec<KickoffEnvVar>, ApiError> {
    let mut vars = app.store.automation_env_vars(org, automation).await?;
    vars.retain(|v| !left_out(&v.key, "environment variable", name, withheld));
    if vars.is_empty() {
        return Ok(Vec::new());
    }
    let credentials = app.store.list_secret_providers(org).await?;
    let resolved = app.store.resolved_values(automation).await?;
    let mut out = Vec::with_capacity(vars.len());
    for var in &vars {
        let value = match var.source.as_str() {
            "direct" => direct_value(app, var)?,
            _ => match credential_of(var, &credentials) {
                Err(error) => KickoffValue::Unresolved { error },
                Ok(credential) => reference(app, var, credential, configs, automation, &resolved)?,
            },
        };
        out.push(KickoffEnvVar {
            key: var.key.clone(),
            value,
        });
    }
    Ok(out)
}

/// A reserved key (H4) stored before the API refused it: left out of the plan, logged, and
/// listed in the plan's `withheld` for the runtime and `keyward doctor` to name.
fn left_out(key: &str, holder: &str, automation: &str, withheld: &mut Vec<String>) -> bool {
    let Some(why) = keyward_core::env_keys::reserved(key) else {
        return false;
    };
    let fix = if holder.starts_with("LLM connection") {
        "remove it from the connection's env"
    } else {
        "delete the variable (keyward env delete)"
    };
    let line = format!("{key} ({holder}) is reserved and left out: {why}; {fix}");
    tracing::warn!("kickoff of automation '{automation}': {line}");
    withheld.push(line);
    true
}

fn direct_value(app: &AppState, var: &EnvVarRow) -> Result<KickoffValue, ApiError> {
    let value = read_value(app, var)?
        .map(|v| v.to_string())
        .unwrap_or_default();
    Ok(KickoffValue::Value { value })
}

/// The credential a reference uses: the named one, or the provider's default.
fn credential_of<'a>(
    var: &EnvVarRow,
    credentials: &'a [SecretProviderRow],
) -> Result<&'a SecretProviderRow, String> {
    match (var.credential_id, var.provider.as_deref()) {
        (Some(id), _) => credentials.iter().find(|c| c.id == id).ok_or_else(|| {
            format!("no credential found for {}: its credential was removed", var.key)
        }),
        (None, Some(provider)) => credentials
            .iter()
            .find(|c| c.provider == provider && c.default_for_provider)
            .ok_or_else(|| {
                format!(
                    "no credential found for {}: the organization has no default {provider} credential; mark one default_for_provider or name a credential on the variable",
                    var.key
                )
            }),
        (None, None) => Err(format!("no credential found for {}", var.key)),
    }
}

fn reference(
    app: &AppState,
    var: &EnvVarRow,
    credential: &SecretProviderRow,
    configs: &[WiConfigRow],
    automation: AutomationId,
    resolved: &[keyward_store::ResolvedValue],
) -> Result<KickoffValue, ApiError> {
    let unresolved = |error: String| Ok(KickoffValue::Unresolved { error });
    let Ok(provider) = ProviderKind::parse(&credential.provider) else {
        return unresolved(format!(
            "{}: unknown provider {}",
            var.key, credential.provider
        ));
    };
    let Ok(secret) = SecretRef::parse(var.secret_name.as_deref().unwrap_or_default()) else {
        return unresolved(format!("{}: secret_name is not usable", var.key));
    };
    match AuthKind::parse(&credential.auth) {
        Ok(AuthKind::Static) => match resolved.iter().find(|r| r.env_var_id == var.id) {
            Some(r) => {
                let plain = app
                    .master
                    .open(&resolved_aad(automation, var.id), &r.sealed_value)
                    .map_err(|e| {
                        ApiError::internal(format!("resolved value of {}: {e}", var.key))
                    })?;
                Ok(KickoffValue::Value {
                    value: String::from_utf8(plain.to_vec()).map_err(ApiError::internal)?,
                })
            }
            None => unresolved(format!(
                "{} uses the static credential '{}', whose values are resolved when the automation is registered or redeployed: run `keyward automation redeploy`",
                var.key, credential.name
            )),
        },
        Ok(AuthKind::WorkloadIdentity) => {
            let Some(config) = credential
                .wi_config_id
                .and_then(|id| configs.iter().find(|c| c.id == id))
            else {
                return unresolved(format!(
                    "no credential found for {}: credential '{}' has no workload identity config",
                    var.key, credential.name
                ));
            };
            if !config.automations.is_empty() && !config.automations.contains(&automation) {
                return unresolved(format!(
                    "{}: workload identity config '{}' of credential '{}' is restricted to other automations",
                    var.key, config.name, credential.name
                ));
            }
            let vault_url = setting(credential, "vault_url");
            if provider == ProviderKind::AzureKeyVault && vault_url.is_none() {
                return unresolved(format!(
                    "azure_vault_url is required for Azure secret resolution ({}: credential '{}' has no vault_url)",
                    var.key, credential.name
                ));
            }
            Ok(KickoffValue::WorkloadIdentity {
                provider: provider.as_str().into(),
                credential: credential.name.clone(),
                identity: Box::new(identity(config, None)?),
                secret_name: secret.provider_name(provider),
                json_key: secret.json_key,
                region: setting(credential, "region"),
                project: setting(credential, "project"),
                vault_url,
            })
        }
        Err(_) => unresolved(format!(
            "{}: credential '{}' has an unknown auth",
            var.key, credential.name
        )),
    }
}
