//! `keyward wi`: workload identity configs over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use keyward_core::api::v1::{CreateWorkloadIdentityConfig, UpdateWorkloadIdentityConfig};

use super::admin::{client, print, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, ShowOutput};

#[derive(Debug, Args)]
pub struct WiArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: WiCommand,
}

#[derive(Debug, Subcommand)]
pub enum WiCommand {
    /// List the organization's configs.
    List(ListOutput),
    /// Show one config (id or name).
    Show {
        /// The workload identity config (id or name).
        config: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Create a config.
    Create(WiFields),
    /// Change a config's fields (id or name); absent flags keep their value.
    Update {
        /// The workload identity config (id or name).
        config: String,
        #[command(flatten)]
        fields: WiUpdateFields,
    },
    /// Delete a config (id or name).
    Delete {
        /// The workload identity config (id or name).
        config: String,
    },
}

#[derive(Debug, Args)]
pub struct WiFields {
    /// Its name (unique in the organization).
    #[arg(long)]
    pub name: String,
    /// gcp, azure or aws.
    #[arg(long)]
    pub cloud: String,
    #[command(flatten)]
    pub cloud_fields: WiCloudFields,
    /// Make it the default (`--default`, `--default true` or `--default false`).
    // One shape for create and update: a bare flag means true.
    #[arg(long = "default", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub default_for_cloud: Option<bool>,
    /// Restrict it to this automation (repeatable); none means every automation.
    #[arg(long = "automation")]
    pub automations: Vec<String>,
    /// The `sub` its tokens carry: organization (default) or automation
    /// (organization:<org>:automation:<id>, for a cloud trust that enforces the restriction).
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct WiCloudFields {
    /// GCP: projects/<PROJECT_NUMBER>/locations/global/workloadIdentityPools/<pool>/providers/<id>
    #[arg(long)]
    pub provider: Option<String>,
    /// Azure: the Directory (tenant) ID.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Azure: the Application (client) ID.
    #[arg(long)]
    pub client_id: Option<String>,
    /// AWS: arn:aws:iam::<account>:role/<name>
    #[arg(long)]
    pub role_arn: Option<String>,
    /// AWS: the region, e.g. us-east-1.
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct WiUpdateFields {
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub cloud_fields: WiCloudFields,
    /// Make it the default (`--default`, `--default true` or `--default false`).
    // One shape for create and update: a bare flag means true.
    #[arg(long = "default", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub default_for_cloud: Option<bool>,
    /// Replace the restriction (repeatable); `--automation ''` clears it.
    #[arg(long = "automation")]
    pub automations: Option<Vec<String>>,
    /// organization or automation.
    #[arg(long)]
    pub subject: Option<String>,
}

const COLUMNS: &[&str] = &[
    "name",
    "cloud",
    "audience",
    "default_for_cloud",
    "automations",
    "subject",
];

pub async fn run(args: WiArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        WiCommand::List(out) => print_list(&api.wi_configs().await?, COLUMNS, out.output)?,
        WiCommand::Show { config, out } => {
            print_one(&api.wi_config(&config).await?, SHOWN, out.output)?
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
                default_for_cloud: Some(f.default_for_cloud.unwrap_or(false)),
                automations: Some(f.automations),
                subject: f.subject,
            };
            print(&api.create_wi_config(&body).await?)?;
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
            print(&api.update_wi_config(&config, &body).await?)?;
        }
        WiCommand::Delete { config } => {
            api.delete_wi_config(&config).await?;
            println!("deleted workload identity config '{config}'");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A config's fields in `--output text`.
const SHOWN: &[&str] = &[
    "id",
    "name",
    "cloud",
    "provider",
    "project_number",
    "tenant_id",
    "client_id",
    "role_arn",
    "region",
    "audience",
    "default_for_cloud",
    "automations",
    "subject",
];
