//! `keyward wi`: workload identity configs over the API.

use std::process::ExitCode;

use keyward_core::api::v1::{CreateWorkloadIdentityConfig, UpdateWorkloadIdentityConfig};
use reqwest::Method;
use serde_json::Value;

use super::admin::{Api, print, print_list, segment};
use crate::args::{WiArgs, WiCommand};

pub async fn run(args: WiArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let base = "/workload-identity-configs";
    match args.command {
        WiCommand::List => {
            let list = api.call(Method::GET, base, None).await?;
            print_list(
                &list,
                &[
                    "name",
                    "cloud",
                    "audience",
                    "default_for_cloud",
                    "automations",
                    "subject",
                ],
            );
        }
        WiCommand::Show { config } => {
            print(
                &api.call(Method::GET, &format!("{base}/{}", segment(&config)), None)
                    .await?,
            );
        }
        WiCommand::Create(f) => {
            let body = CreateWorkloadIdentityConfig {
                name: f.name,
                cloud: f.cloud,
                provider: f.cloud_fields.provider,
                tenant_id: f.cloud_fields.tenant_id,
                client_id: f.cloud_fields.client_id,
                role_arn: f.cloud_fields.role_arn,
                region: f.cloud_fields.region,
                default_for_cloud: Some(f.default_for_cloud),
                automations: Some(f.automations),
                subject: f.subject,
            };
            print(
                &api.call(Method::POST, base, Some(&serde_json::to_value(body)?))
                    .await?,
            );
        }
        WiCommand::Update { config, fields } => {
            let body = UpdateWorkloadIdentityConfig {
                name: fields.name,
                cloud: None,
                provider: fields.cloud_fields.provider,
                tenant_id: fields.cloud_fields.tenant_id,
                client_id: fields.cloud_fields.client_id,
                role_arn: fields.cloud_fields.role_arn,
                region: fields.cloud_fields.region,
                default_for_cloud: fields.default_for_cloud,
                automations: fields
                    .automations
                    .map(|a| a.into_iter().filter(|x| !x.is_empty()).collect()),
                subject: fields.subject,
            };
            let path = format!("{base}/{}", segment(&config));
            print(
                &api.call(Method::PATCH, &path, Some(&serde_json::to_value(body)?))
                    .await?,
            );
        }
        WiCommand::Delete { config } => {
            let path = format!("{base}/{}", segment(&config));
            api.call(Method::DELETE, &path, None::<&Value>).await?;
            println!("deleted workload identity config '{config}'");
        }
    }
    Ok(ExitCode::SUCCESS)
}
