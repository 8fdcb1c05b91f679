//! Resolution of the kickoff plan's environment (SPEC §5 step 4, §6): direct and static-backed
//! values as handed over; workload-identity-backed ones fetched fresh, in parallel, with one token
//! exchange per identity. Any failure names the variable, and the command does not start.

use std::collections::BTreeMap;
use std::time::Duration;

use keyward_cloud::{
    Access, CloudError, Clouds, Deadline, Secret, SecretLocation, aws, azure, resolve_secret,
};
use keyward_core::api::v1::{KickoffIdentity, KickoffPlan, KickoffValue};
use keyward_core::secrets::SecretUse;
use tokio::task::JoinSet;

use crate::{Platform, RuntimeError};

/// How long a kickoff waits for the clouds, retries included, unless `keyward run --deadline`
/// says otherwise (docs/runtime.md, "When the cloud is failing").
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// Words of the cloud clients' deadline failure, for the hint on how to allow more time.
pub(crate) const DEADLINE_PASSED: &str = "left no time for another";

/// One secret to fetch through an identity: whose it is, and where its provider keeps it.
#[derive(Clone)]
struct Wanted {
    secret: SecretUse,
    at: SecretLocation,
}

/// The environment the plan's variables resolve to, by key, within [`DEFAULT_DEADLINE`].
pub async fn resolve(
    platform: &Platform,
    clouds: &Clouds,
    plan: &KickoffPlan,
) -> Result<BTreeMap<String, Secret>, RuntimeError> {
    resolve_within(platform, clouds, plan, DEFAULT_DEADLINE).await
}

/// [`resolve`] with every cloud call of the kickoff, retries included, done within `total`: one
/// deadline for all identities, so parallel groups and their steps cannot add up past it.
pub async fn resolve_within(
    platform: &Platform,
    clouds: &Clouds,
    plan: &KickoffPlan,
    total: Duration,
) -> Result<BTreeMap<String, Secret>, RuntimeError> {
    let deadline = Deadline::after(total);
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    let mut by_identity: BTreeMap<String, (KickoffIdentity, Vec<Wanted>)> = BTreeMap::new();
    for var in &plan.env {
        match &var.value {
            KickoffValue::Value { value } => {
                values.insert(var.key.clone(), Secret::new(value.clone()));
            }
            KickoffValue::Unresolved { error } => problems.push(error.clone()),
            KickoffValue::WorkloadIdentity {
                provider,
                credential,
                identity,
                secret_name,
                json_key,
                region,
                project,
                vault_url,
            } => {
                let entry = by_identity
                    .entry(identity.config_id.to_string())
                    .or_insert_with(|| ((**identity).clone(), Vec::new()));
                entry.1.push(Wanted {
                    secret: SecretUse {
                        key: var.key.clone(),
                        provider: provider.clone(),
                        secret: secret_name.clone(),
                        credential: credential.clone(),
                        json_key: json_key.clone(),
                    },
                    at: SecretLocation {
                        project: project.clone(),
                        vault_url: vault_url.clone(),
                        region: region.clone(),
                    },
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(RuntimeError::Secrets(problems));
    }
    let mut groups = JoinSet::new();
    for (_, (identity, wanted)) in by_identity {
        let platform = platform.clone();
        let clouds = clouds.clone();
        let kickoff = plan.kickoff_id.clone();
        let session = format!(
            "keyward-{}",
            &plan.kickoff_id[..8.min(plan.kickoff_id.len())]
        );
        groups.spawn(async move {
            let count = wanted.len();
            let result = resolve_group(
                &platform, &clouds, &kickoff, &session, &identity, wanted, &deadline,
            )
            .await;
            (identity, count, result)
        });
    }
    while let Some(done) = groups.join_next().await {
        let (identity, count, result) = done.map_err(|e| RuntimeError::TaskFailed {
            task: "secret resolution",
            detail: e.to_string(),
        })?;
        match result {
            Ok(resolved) => {
                tracing::info!(
                    "Workload identity config '{}' ({}): {count} secret(s) resolved",
                    identity.config,
                    identity.cloud
                );
                values.extend(resolved);
            }
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        problems.sort();
        Err(RuntimeError::Secrets(problems))
    }
}

/// One exchange for the identity, then every secret of the group at once.
async fn resolve_group(
    platform: &Platform,
    clouds: &Clouds,
    kickoff: &str,
    session: &str,
    identity: &KickoffIdentity,
    wanted: Vec<Wanted>,
    deadline: &Deadline,
) -> Result<Vec<(String, Secret)>, Vec<String>> {
    let all_keys = || {
        wanted
            .iter()
            .map(|w| w.secret.key.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let token = platform
        .mint_once(identity.config_id, kickoff)
        .await
        .map_err(|e| {
            vec![format!(
                "{}: minting a token for workload identity config '{}': {e}",
                all_keys(),
                identity.config
            )]
        })?;
    let exchange_failed = |e: CloudError| {
        vec![format!(
            "{}: workload identity config '{}' ({}): {e}",
            all_keys(),
            identity.config,
            identity.cloud
        )]
    };
    let access = match identity.cloud.as_str() {
        "gcp" => Access::Gcp(
            clouds
                .gcp()
                .exchange(&token.audience, &token.token, deadline)
                .await
                .map_err(exchange_failed)?,
        ),
        "azure" => Access::Azure(
            clouds
                .azure()
                .token(
                    identity.tenant_id.as_deref().unwrap_or_default(),
                    identity.client_id.as_deref().unwrap_or_default(),
                    &token.token,
                    azure::VAULT_SCOPE,
                    deadline,
                )
                .await
                .map_err(exchange_failed)?,
        ),
        _ => Access::Aws(
            clouds
                .aws(aws::region_or_default(identity.region.as_deref()))
                .assume_role_with_web_identity(
                    identity.role_arn.as_deref().unwrap_or_default(),
                    session,
                    &token.token,
                    None,
                    deadline,
                )
                .await
                .map_err(exchange_failed)?,
        ),
    };
    let mut fetches = JoinSet::new();
    for want in wanted {
        let clouds = clouds.clone();
        let access = access.clone();
        let deadline = *deadline;
        fetches.spawn(async move {
            let fetched = resolve_secret(&clouds, &access, &want.at, &want.secret, &deadline).await;
            (want, fetched)
        });
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    while let Some(done) = fetches.join_next().await {
        let Ok((want, fetched)) = done else {
            errors.push("a secret fetch failed to run".into());
            continue;
        };
        let want = want.secret;
        match fetched {
            // Named here, with its secret: exec would only say `nul byte found` (trial B3).
            Ok(value) if value.expose().contains('\0') => errors.push(format!(
                "{}: {} secret '{}' holds a NUL byte, which no process environment can hold; remove it from the secret",
                want.key, want.provider, want.secret
            )),
            Ok(value) => out.push((want.key, value)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
