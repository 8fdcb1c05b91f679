//! `keyward llm`: LLM connections over the API.

use std::process::ExitCode;

use keyward_core::api::v1::{CreateLlmConnection, UpdateLlmConnection};
use reqwest::Method;

use super::admin::{Api, print, print_list, segment};
use crate::args::{LlmArgs, LlmCommand};

pub async fn run(args: LlmArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let base = "/llm-connections";
    match args.command {
        LlmCommand::List => {
            let list = api.call(Method::GET, base, None).await?;
            print_list(
                &list,
                &[
                    "name",
                    "provider",
                    "workload_identity_config",
                    "model",
                    "automations",
                ],
            );
        }
        LlmCommand::Show { connection } => {
            print(
                &api.call(
                    Method::GET,
                    &format!("{base}/{}", segment(&connection)),
                    None,
                )
                .await?,
            );
        }
        LlmCommand::Create(f) => {
            let body = CreateLlmConnection {
                name: f.name,
                provider: f.provider,
                workload_identity_config: f.workload_identity_config,
                service_account_email: f.service_account_email,
                model: f.model,
                env: Some(f.env.into_iter().collect()),
                automations: Some(f.automations),
            };
            print(
                &api.call(Method::POST, base, Some(&serde_json::to_value(body)?))
                    .await?,
            );
        }
        LlmCommand::Update { connection, fields } => {
            let body = UpdateLlmConnection {
                name: fields.name,
                provider: fields.provider,
                workload_identity_config: fields.workload_identity_config,
                service_account_email: fields.service_account_email,
                model: fields.model,
                env: fields.env.map(|e| e.into_iter().collect()),
                automations: fields
                    .automations
                    .map(|a| a.into_iter().filter(|x| !x.is_empty()).collect()),
            };
            let path = format!("{base}/{}", segment(&connection));
            print(
                &api.call(Method::PATCH, &path, Some(&serde_json::to_value(body)?))
                    .await?,
            );
        }
        LlmCommand::Delete { connection } => {
            api.call(
                Method::DELETE,
                &format!("{base}/{}", segment(&connection)),
                None,
            )
            .await?;
            println!("deleted LLM connection '{connection}'");
        }
    }
    Ok(ExitCode::SUCCESS)
}
