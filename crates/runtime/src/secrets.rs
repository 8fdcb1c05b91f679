//! Resolution of the kickoff plan's environment (SPEC §5 step 4, §6): direct and static-backed
//! values as handed over; workload-identity-backed ones fetched fresh, in parallel, with one token
//! exchange per identity. Any failure names the variable, and the command does not start.

use std::collections::BTreeMap;
use std::time::Duration;

use keyward_cloud::{Cause, CloudError, Clouds, Deadline, Secret, azure};
use keyward_core::api::v1::{KickoffIdentity, KickoffPlan, KickoffValue};
use tokio::task::JoinSet;

use crate::{Platform, RuntimeError};

const DEADLINE: Duration = Duration::from_secs(60);

/// One secret to fetch through an identity.
#[derive(Clone)]
struct Wanted {
    key: String,
    provider: String,
    credential: String,
    secret_name: String,
    json_key: Option<String>,
    region: Option<String>,
    project: Option<String>,
    vault_url: Option<String>,
}

/// The environment the plan's variables resolve to, by key.
pub async fn resolve(
    platform: &Platform,
    clouds: &Clouds,
    plan: &KickoffPlan,
) -> Result<BTreeMap<String, Secret>, RuntimeError> {
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
                    key: var.key.clone(),
                    provider: provider.clone(),
                    credential: credential.clone(),
                    secret_name: secret_name.clone(),
                    json_key: json_key.clone(),
                    region: region.clone(),
                    project: project.clone(),
                    vault_url: vault_url.clone(),
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
            let result =
                resolve_group(&platform, &clouds, &kickoff, &session, &identity, wanted).await;
            (identity, count, result)
        });
    }
    while let Some(done) = groups.join_next().await {
        let (identity, count, result) = done
            .map_err(|e| RuntimeError::Config(format!("secret resolution failed to run: {e}")))?;
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
) -> Result<Vec<(String, Secret)>, Vec<String>> {
    let all_keys = || {
        wanted
            .iter()
            .map(|w| w.key.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let deadline = Deadline::after(DEADLINE);
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
                .exchange(&token.audience, &token.token, &deadline)
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
                    &deadline,
                )
                .await
                .map_err(exchange_failed)?,
        ),
        _ => {
            let region = identity
                .region
                .clone()
                .unwrap_or_else(|| "us-east-1".into());
            Access::Aws(
                clouds
                    .aws(&region)
                    .assume_role_with_web_identity(
                        identity.role_arn.as_deref().unwrap_or_default(),
                        session,
                        &token.token,
                        None,
                        &deadline,
                    )
                    .await
                    .map_err(exchange_failed)?,
            )
        }
    };
    let mut fetches = JoinSet::new();
    for want in wanted {
        let clouds = clouds.clone();
        let access = access.clone();
        fetches.spawn(async move {
            let fetched = fetch(&clouds, &access, &want, &deadline).await;
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
        match fetched.and_then(|value| extract(&want, value)) {
            // Named here, with its secret: exec would only say `nul byte found` (trial B3).
            Ok(value) if value.expose().contains('\0') => errors.push(format!(
                "{}: {} secret '{}' holds a NUL byte, which no process environment can hold; remove it from the secret",
                want.key, want.provider, want.secret_name
            )),
            Ok(value) => out.push((want.key, value)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[derive(Clone)]
enum Access {
    Gcp(keyward_cloud::gcp::AccessToken),
    Azure(keyward_cloud::azure::AccessToken),
    Aws(keyward_cloud::aws::SessionCredentials),
}

async fn fetch(
    clouds: &Clouds,
    access: &Access,
    want: &Wanted,
    deadline: &Deadline,
) -> Result<Secret, String> {
    let result = match access {
        Access::Gcp(token) => {
            clouds
                .gcp()
                .access_secret(
                    token,
                    want.project.as_deref().unwrap_or_default(),
                    &want.secret_name,
                    "latest",
                    deadline,
                )
                .await
        }
        Access::Azure(token) => {
            clouds
                .azure()
                .get_secret(
                    token,
                    want.vault_url.as_deref().unwrap_or_default(),
                    &want.secret_name,
                    None,
                    deadline,
                )
                .await
        }
        Access::Aws(creds) => {
            clouds
                .aws(want.region.as_deref().unwrap_or("us-east-1"))
                .get_secret_value(creds, &want.secret_name, deadline)
                .await
        }
    };
    result.map_err(|e| match e.cause() {
        Some(Cause::SecretNotFound) => format!(
            "secret not found: {} ({} secret '{}' through credential '{}')",
            want.key, want.provider, want.secret_name, want.credential
        ),
        _ => format!(
            "{}: {} secret '{}': {e}",
            want.key, want.provider, want.secret_name
        ),
    })
}

/// The value itself, or one field of a JSON object (`name#json_key`).
fn extract(want: &Wanted, value: Secret) -> Result<Secret, String> {
    let Some(key) = &want.json_key else {
        return Ok(value);
    };
    let not_found = || {
        format!(
            "JSON key not found: {} ('{key}' in {} secret '{}')",
            want.key, want.provider, want.secret_name
        )
    };
    keyward_core::secrets::json_field(value.expose(), key)
        .map(Secret::new)
        .ok_or_else(|| {
            if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value.expose())
                .is_err()
            {
                format!(
                    "JSON key not found: {} ({} secret '{}' is not a JSON object)",
                    want.key, want.provider, want.secret_name
                )
            } else {
                not_found()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(json_key: Option<&str>) -> Wanted {
        Wanted {
            key: "DB_PASSWORD".into(),
            provider: "aws_secrets_manager".into(),
            credential: "aws".into(),
            secret_name: "db".into(),
            json_key: json_key.map(str::to_owned),
            region: None,
            project: None,
            vault_url: None,
        }
    }

    #[test]
    fn json_keys_take_one_field_and_a_missing_one_names_the_variable() {
        let secret = || Secret::new(r#"{"username": "crew", "password": "pw", "port": 5432}"#);
        assert_eq!(
            extract(&want(Some("password")), secret()).unwrap().expose(),
            "pw"
        );
        assert_eq!(
            extract(&want(Some("port")), secret()).unwrap().expose(),
            "5432"
        );
        assert_eq!(
            extract(&want(None), secret()).unwrap().expose(),
            secret().expose()
        );
        let err = extract(&want(Some("host")), secret()).unwrap_err();
        assert!(err.starts_with("JSON key not found: DB_PASSWORD"), "{err}");
        let err = extract(&want(Some("x")), Secret::new("plain")).unwrap_err();
        assert!(err.contains("is not a JSON object"), "{err}");
    }
}
