//! `keyward secret-provider`: where secrets live and how Keyward reaches them, over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use keyward_core::api::v1::{CreateSecretProvider, UpdateSecretProvider};

use super::admin::{client, print, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, ShowOutput, parse_env_pair};

#[derive(Debug, Args)]
pub struct SecretProviderArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: SecretProviderCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretProviderCommand {
    List(ListOutput),
    /// One credential (id or name).
    Show {
        /// The secret provider credential (id or name).
        credential: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Create a credential; `--static KEY=VALUE` (repeatable) for static credentials.
    Create(SecretProviderFields),
    /// Change a credential; absent flags keep their value, a blank `--static KEY=` keeps the stored one.
    Update {
        /// The secret provider credential (id or name).
        credential: String,
        #[command(flatten)]
        fields: SecretProviderUpdate,
    },
    Delete {
        /// The secret provider credential (id or name).
        credential: String,
    },
    /// Test Connection: the federation handshake, step by step.
    Test {
        /// The secret provider credential (id or name).
        credential: String,
        /// For a config with `subject = automation`: the automation to test as (default: the
        /// config's only listed automation).
        #[arg(long)]
        automation: Option<String>,
    },
    /// Secret names from the provider, by prefix.
    Secrets {
        /// The secret provider credential (id or name).
        credential: String,
        /// Only names starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

#[derive(Debug, Args)]
pub struct SecretProviderFields {
    /// Its name (unique in the organization).
    #[arg(long)]
    pub name: String,
    /// aws_secrets_manager, gcp_secret_manager or azure_key_vault.
    #[arg(long)]
    pub provider: String,
    /// workload_identity or static.
    #[arg(long)]
    pub auth: String,
    /// The workload identity config (id or name) it federates through.
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
    /// GCP project id.
    #[arg(long)]
    pub project: Option<String>,
    /// Azure Key Vault URL (https://<vault>.vault.azure.net).
    #[arg(long)]
    pub vault_url: Option<String>,
    /// Static credential fields as KEY=VALUE (repeatable).
    #[arg(long = "static", value_parser = parse_env_pair)]
    pub static_fields: Vec<(String, String)>,
    /// Make it the default (`--default`, `--default true` or `--default false`).
    // One shape for create and update: a bare flag means true.
    #[arg(long = "default", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub default_for_provider: Option<bool>,
}

#[derive(Debug, Args)]
pub struct SecretProviderUpdate {
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// How it authenticates: workload_identity or static.
    #[arg(long)]
    pub auth: Option<String>,
    /// The workload identity config (id or name) it federates through.
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
    /// GCP project id.
    #[arg(long)]
    pub project: Option<String>,
    /// Azure Key Vault URL (https://<vault>.vault.azure.net).
    #[arg(long)]
    pub vault_url: Option<String>,
    /// Static credential fields as KEY=VALUE (repeatable).
    #[arg(long = "static", value_parser = parse_env_pair)]
    pub static_fields: Option<Vec<(String, String)>>,
    /// Make it the default (`--default`, `--default true` or `--default false`).
    // One shape for create and update: a bare flag means true.
    #[arg(long = "default", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub default_for_provider: Option<bool>,
}

const COLUMNS: &[&str] = &[
    "name",
    "provider",
    "auth",
    "workload_identity_config",
    "default_for_provider",
];

/// A credential's fields in `--output text`.
const SHOWN: &[&str] = &[
    "id",
    "name",
    "provider",
    "auth",
    "workload_identity_config",
    "region",
    "project",
    "vault_url",
    "static_configured",
    "default_for_provider",
];

pub async fn provider(args: SecretProviderArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        SecretProviderCommand::List(out) => {
            print_list(&api.secret_providers().await?, COLUMNS, out.output)?
        }
        SecretProviderCommand::Show { credential, out } => {
            print_one(&api.secret_provider(&credential).await?, SHOWN, out.output)?
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
                default_for_provider: Some(f.default_for_provider.unwrap_or(false)),
            };
            print(&api.create_secret_provider(&body).await?)?;
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
            print(&api.update_secret_provider(&credential, &body).await?)?;
        }
        SecretProviderCommand::Delete { credential } => {
            api.delete_secret_provider(&credential).await?;
            println!("deleted secret provider credential '{credential}'");
        }
        SecretProviderCommand::Test {
            credential,
            automation,
        } => {
            let result = with_progress(
                &credential,
                api.test_secret_provider(&credential, automation.as_deref()),
            )
            .await?;
            print(&result)?;
            if let Some(note) = endpoints_mismatch(
                result["endpoints"].as_str(),
                std::env::var_os("KEYWARD_CLOUD_ENDPOINTS").is_some_and(|v| !v.is_empty()),
            ) {
                eprintln!("{note}");
            }
            if result["ok"] != serde_json::Value::Bool(true) {
                return Ok(ExitCode::FAILURE);
            }
        }
        SecretProviderCommand::Secrets { credential, prefix } => {
            let result = api.provider_secrets(&credential, &prefix).await?;
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

/// The test runs on the server, with the server's endpoints: a CLI with KEYWARD_CLOUD_ENDPOINTS
/// (the simulator) against a server without it reaches the real clouds, which surprises.
fn endpoints_mismatch(server: Option<&str>, cli_simulated: bool) -> Option<&'static str> {
    (server == Some("real") && cli_simulated).then_some(
        "note: KEYWARD_CLOUD_ENDPOINTS is set here, but the server has none and tested against the real clouds; set KEYWARD_CLOUD_ENDPOINTS on the server to use the simulator",
    )
}

/// Awaits Test Connection, saying on stderr every few seconds that it is still waiting: the
/// server retries a failing cloud step for up to ten seconds, and silence reads as a hang.
async fn with_progress<T>(credential: &str, call: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(3),
    );
    tokio::pin!(call);
    loop {
        tokio::select! {
            done = &mut call => return done,
            _ = ticks.tick() => eprintln!(
                "still testing '{credential}' ({} s): the server retries each cloud step for up to 10 s",
                started.elapsed().as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_cli_against_a_real_server_is_told() {
        assert!(
            endpoints_mismatch(Some("real"), true)
                .unwrap()
                .contains("on the server")
        );
        assert_eq!(endpoints_mismatch(Some("simulated"), true), None);
        assert_eq!(endpoints_mismatch(Some("real"), false), None);
    }
}
