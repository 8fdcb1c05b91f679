//! `keyward llm`: LLM connections over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use keyward_core::api::v1::{CreateLlmConnection, UpdateLlmConnection};

use super::admin::{client, print, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, ShowOutput, parse_env_pair};

#[derive(Debug, Args)]
pub struct LlmArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: LlmCommand,
}

#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// List the organization's LLM connections.
    List(ListOutput),
    /// Show one connection (id or name).
    Show {
        /// The LLM connection (id or name).
        connection: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Create a connection.
    Create(LlmFields),
    /// Change a connection (id or name); absent flags keep their value, '' clears a text field.
    Update {
        /// The LLM connection (id or name).
        connection: String,
        #[command(flatten)]
        fields: LlmUpdateFields,
    },
    /// Delete a connection (id or name).
    Delete {
        /// The LLM connection (id or name).
        connection: String,
    },
}

#[derive(Debug, Args)]
pub struct LlmFields {
    /// Its name (unique in the organization).
    #[arg(long)]
    pub name: String,
    /// vertex, azure_openai, bedrock, openai, anthropic, …
    #[arg(long)]
    pub provider: String,
    /// A workload identity config of the provider's cloud (id or name).
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    /// Vertex: the service account to impersonate.
    #[arg(long = "service-account")]
    pub service_account_email: Option<String>,
    /// The model (e.g. google/gemini-2.0-flash).
    #[arg(long)]
    pub model: Option<String>,
    /// KEY=VALUE, repeatable (e.g. GOOGLE_CLOUD_LOCATION=global).
    #[arg(long = "env", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// An automation that uses it (repeatable).
    #[arg(long = "automation")]
    pub automations: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LlmUpdateFields {
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// The provider (see the API reference for the accepted values).
    #[arg(long)]
    pub provider: Option<String>,
    /// The workload identity config (id or name) it federates through.
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    /// GCP service account to impersonate.
    #[arg(long = "service-account")]
    pub service_account_email: Option<String>,
    /// The model (e.g. google/gemini-2.0-flash).
    #[arg(long)]
    pub model: Option<String>,
    /// Replace the env (repeatable KEY=VALUE).
    #[arg(long = "env", value_parser = parse_env_pair)]
    pub env: Option<Vec<(String, String)>>,
    /// Replace the automations (repeatable).
    #[arg(long = "automation")]
    pub automations: Option<Vec<String>>,
}

const COLUMNS: &[&str] = &[
    "name",
    "provider",
    "workload_identity_config",
    "model",
    "automations",
];

/// A connection's fields in `--output text`.
const SHOWN: &[&str] = &[
    "id",
    "name",
    "provider",
    "workload_identity_config",
    "service_account_email",
    "model",
    "env",
    "automations",
];

pub async fn run(args: LlmArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        LlmCommand::List(out) => print_list(&api.llm_connections().await?, COLUMNS, out.output)?,
        LlmCommand::Show { connection, out } => {
            print_one(&api.llm_connection(&connection).await?, SHOWN, out.output)?
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
            print(&api.create_llm_connection(&body).await?)?;
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
            print(&api.update_llm_connection(&connection, &body).await?)?;
        }
        LlmCommand::Delete { connection } => {
            api.delete_llm_connection(&connection).await?;
            println!("deleted LLM connection '{connection}'");
        }
    }
    Ok(ExitCode::SUCCESS)
}
