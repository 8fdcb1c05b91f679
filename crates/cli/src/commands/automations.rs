//! `keyward automation`: automations, their tokens, redeploy and permissions over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use keyward_core::api::v1::{CreateAutomation, UpdateAutomation};

use super::admin::{client, print, print_list, print_one};
use super::rbac::AutomationPermissionArgs;
use super::tokens::{TOKEN_COLUMNS, TokenCreateArgs, print_created, print_revoked};
use crate::common_args::{ApiArgs, ListOutput, ShowOutput};

#[derive(Debug, Args)]
pub struct AutomationArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: AutomationCommand,
}

#[derive(Debug, Subcommand)]
pub enum AutomationCommand {
    /// The automations you may see.
    List(ListOutput),
    /// One automation (id or name).
    Show {
        /// The automation (id or name).
        automation: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Create an automation.
    Create {
        /// Its name (unique in the organization).
        name: String,
        /// A description shown in listings.
        #[arg(long)]
        description: Option<String>,
    },
    /// Rename an automation or change its description (id or name).
    Update {
        /// The automation (id or name).
        automation: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A description shown in listings.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an automation (id or name) and its tokens.
    Delete {
        /// The automation (id or name).
        automation: String,
    },
    /// The automation's tokens (kwa_…), which `keyward run` and `keyward agent` use.
    Token {
        #[command(subcommand)]
        command: AutomationTokenCommand,
    },
    /// Resolve the automation's static-backed values again (they are kept until the next redeploy).
    Redeploy {
        /// The automation (id or name).
        automation: String,
    },
    /// Show who may see and act on an automation; with any flag, replace it all.
    Permissions(AutomationPermissionArgs),
}

#[derive(Debug, Subcommand)]
pub enum AutomationTokenCommand {
    /// Create a token; it is printed once, on stdout, and never again.
    Create {
        /// The automation (id or name).
        automation: String,
        #[command(flatten)]
        token: TokenCreateArgs,
    },
    /// The automation's tokens (never their secrets).
    List {
        /// The automation (id or name).
        automation: String,
        #[command(flatten)]
        out: ListOutput,
    },
    /// Revoke a token by its id: it stops working at once.
    Revoke {
        /// The automation (id or name).
        automation: String,
        /// The token's id (see `list`).
        token_id: String,
    },
}

const COLUMNS: &[&str] = &["name", "id", "description"];
const SHOWN: &[&str] = &["id", "name", "description", "created_at", "updated_at"];

pub async fn run(args: AutomationArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        AutomationCommand::List(out) => print_list(&api.automations().await?, COLUMNS, out.output)?,
        AutomationCommand::Show { automation, out } => {
            print_one(&api.automation(&automation).await?, SHOWN, out.output)?
        }
        AutomationCommand::Create { name, description } => {
            print(
                &api.create_automation(&CreateAutomation { name, description })
                    .await?,
            )?;
        }
        AutomationCommand::Update {
            automation,
            name,
            description,
        } => {
            let body = UpdateAutomation { name, description };
            print(&api.update_automation(&automation, &body).await?)?;
        }
        AutomationCommand::Delete { automation } => {
            api.delete_automation(&automation).await?;
            println!("deleted automation '{automation}'");
        }
        AutomationCommand::Token { command } => match command {
            AutomationTokenCommand::Create { automation, token } => {
                let created = api
                    .create_automation_token(&automation, &token.body()?)
                    .await?;
                print_created(&created, token.output)?;
            }
            AutomationTokenCommand::List { automation, out } => {
                let tokens = api.automation_tokens(&automation).await?;
                print_list(&tokens, TOKEN_COLUMNS, out.output)?;
            }
            AutomationTokenCommand::Revoke {
                automation,
                token_id,
            } => print_revoked(&api.revoke_automation_token(&automation, &token_id).await?),
        },
        AutomationCommand::Redeploy { automation } => print(&api.redeploy(&automation).await?)?,
        AutomationCommand::Permissions(permissions) => {
            return super::rbac::automation_permissions(&api, permissions).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
