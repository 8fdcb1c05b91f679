//! `keyward secret-provider` and `keyward env`: the secrets manager over the API.

use std::process::ExitCode;

use keyward_core::api::v1::{
    AssignEnvironmentVariables, CreateEnvironmentVariable, CreateSecretProvider,
    UpdateEnvironmentVariable, UpdateSecretProvider,
};
use reqwest::Method;

use super::admin::{Api, print, print_list, segment};
use crate::args::{
    AutomationArgs, AutomationCommand, EnvArgs, EnvCommand, SecretProviderArgs,
    SecretProviderCommand,
};

pub async fn provider(args: SecretProviderArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let base = "/secret-providers";
    let one = |c: &str| format!("{base}/{}", segment(c));
    match args.command {
        SecretProviderCommand::List => {
            let list = api.call(Method::GET, base, None).await?;
            print_list(
                &list,
                &[
                    "name",
                    "provider",
                    "auth",
                    "workload_identity_config",
                    "default_for_provider",
                ],
            );
        }
        SecretProviderCommand::Show { credential } => {
            print(&api.call(Method::GET, &one(&credential), None).await?)
        }
        SecretProviderCommand::Create(f) => {
            let body = CreateSecretProvider {
                name: f.name,
                provider: f.provider,
                auth: f.auth,
                workload_identity_config: f.workload_identity_config,
                region: f.region,
                project: f.project,
                vault_url: f.vault_url,
                static_credentials: (!f.static_fields.is_empty())
                    .then(|| f.static_fields.into_iter().collect()),
                default_for_provider: Some(f.default_for_provider),
            };
            print(
                &api.call(Method::POST, base, Some(&serde_json::to_value(body)?))
                    .await?,
            );
        }
        SecretProviderCommand::Update {
            credential,
            fields: f,
        } => {
            let body = UpdateSecretProvider {
                name: f.name,
                provider: None,
                auth: f.auth,
                workload_identity_config: f.workload_identity_config,
                region: f.region,
                project: f.project,
                vault_url: f.vault_url,
                static_credentials: f.static_fields.map(|s| s.into_iter().collect()),
                default_for_provider: f.default_for_provider,
            };
            print(
                &api.call(
                    Method::PATCH,
                    &one(&credential),
                    Some(&serde_json::to_value(body)?),
                )
                .await?,
            );
        }
        SecretProviderCommand::Delete { credential } => {
            api.call(Method::DELETE, &one(&credential), None).await?;
            println!("deleted secret provider credential '{credential}'");
        }
        SecretProviderCommand::Test {
            credential,
            automation,
        } => {
            let query = automation
                .map(|a| format!("?automation={}", segment(&a)))
                .unwrap_or_default();
            let result = api
                .call(
                    Method::POST,
                    &format!("{}/test{query}", one(&credential)),
                    None,
                )
                .await?;
            print(&result);
            if result["ok"] != serde_json::Value::Bool(true) {
                return Ok(ExitCode::FAILURE);
            }
        }
        SecretProviderCommand::Secrets { credential, prefix } => {
            let path = format!("{}/secrets?prefix={}", one(&credential), segment(&prefix));
            let result = api.call(Method::GET, &path, None).await?;
            for name in result["names"].as_array().into_iter().flatten() {
                println!("{}", name.as_str().unwrap_or_default());
            }
            if let Some(hint) = result["hint"].as_str() {
                eprintln!("{hint}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn env(args: EnvArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let base = "/environment-variables";
    let one = |k: &str| format!("{base}/{}", segment(k));
    match args.command {
        EnvCommand::List => {
            let list = api.call(Method::GET, base, None).await?;
            print_list(
                &list,
                &[
                    "key",
                    "source",
                    "value",
                    "credential",
                    "provider",
                    "secret_name",
                ],
            );
        }
        EnvCommand::Show { key } => print(&api.call(Method::GET, &one(&key), None).await?),
        EnvCommand::Create(f) => {
            let body = CreateEnvironmentVariable {
                key: f.key,
                value: f.value,
                source: None,
                provider: f.provider,
                credential: f.credential,
                secret_name: f.secret_name,
                secret: Some(f.secret),
            };
            print(
                &api.call(Method::POST, base, Some(&serde_json::to_value(body)?))
                    .await?,
            );
        }
        EnvCommand::Update { key, fields: f } => {
            let body = UpdateEnvironmentVariable {
                key: f.key,
                value: f.value,
                source: f.source,
                provider: f.provider,
                credential: f.credential,
                secret_name: f.secret_name,
                secret: f.secret,
            };
            print(
                &api.call(
                    Method::PATCH,
                    &one(&key),
                    Some(&serde_json::to_value(body)?),
                )
                .await?,
            );
        }
        EnvCommand::Delete { key } => {
            api.call(Method::DELETE, &one(&key), None).await?;
            println!("deleted environment variable {key}");
        }
        EnvCommand::Assign { automation, keys } => {
            let body = AssignEnvironmentVariables {
                environment_variables: keys,
            };
            let path = format!(
                "/automations/{}/environment-variables",
                segment(&automation)
            );
            let list = api
                .call(Method::PUT, &path, Some(&serde_json::to_value(body)?))
                .await?;
            print_list(&list, &["key", "source", "value"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn automation(args: AutomationArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    match args.command {
        AutomationCommand::Redeploy { automation } => {
            let path = format!("/automations/{}/redeploy", segment(&automation));
            print(&api.call(Method::POST, &path, None).await?);
        }
        AutomationCommand::Permissions(permissions) => {
            return super::rbac::automation_permissions(&api, permissions).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
