//! `keyward env`: environment variables and their assignment to automations, over the API.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use clap::{Args, Subcommand};
use keyward_core::api::v1::{
    AssignEnvironmentVariables, CreateEnvironmentVariable, UpdateEnvironmentVariable,
};

use super::admin::{client, print, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, Output, ShowOutput};

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    List(ListOutput),
    /// One variable (id or name).
    Show {
        /// The variable's key (id or name for an existing one).
        key: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Create a variable: `--value` (with `--secret` to mask and seal it), or `--secret-name` with
    /// `--credential` or `--provider` (the provider's default credential).
    Create(EnvFields),
    /// Change a variable; a blank `--value ''` keeps the stored value.
    Update {
        /// The variable's key (id or name for an existing one).
        key: String,
        #[command(flatten)]
        fields: EnvUpdate,
    },
    Delete {
        /// The variable's key (id or name for an existing one).
        key: String,
    },
    /// Replace an automation's assigned variables.
    Assign {
        /// The automation (id or name).
        automation: String,
        /// Variable keys (or ids).
        keys: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct EnvFields {
    /// The variable's key (letters, digits and _; not starting with a digit).
    pub key: String,
    /// The value (visible in the process list: prefer --value-file for secrets).
    #[arg(long)]
    pub value: Option<String>,
    /// Read the value from this file (`-`: from stdin); one trailing newline is dropped.
    #[arg(long, value_name = "PATH|-", conflicts_with = "value")]
    pub value_file: Option<PathBuf>,
    /// Store the value as a secret (true or false).
    #[arg(long)]
    pub secret: bool,
    /// The secret provider credential (id or name).
    #[arg(long)]
    pub credential: Option<String>,
    /// The provider (see the API reference for the accepted values).
    #[arg(long)]
    pub provider: Option<String>,
    /// `name` or `name#json_key`.
    #[arg(long)]
    pub secret_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnvUpdate {
    /// A new key.
    // Its own id: `env update <key>` already has a positional `key`, and clap refuses two.
    #[arg(long = "key", id = "new_key", value_name = "KEY")]
    pub key: Option<String>,
    /// A new value (visible in the process list: prefer --value-file for secrets).
    #[arg(long)]
    pub value: Option<String>,
    /// Read the new value from this file (`-`: from stdin); one trailing newline is dropped.
    #[arg(long, value_name = "PATH|-", conflicts_with = "value")]
    pub value_file: Option<PathBuf>,
    /// true or false.
    #[arg(long)]
    pub secret: Option<bool>,
    /// Where the value comes from: direct or secret_provider.
    #[arg(long)]
    pub source: Option<String>,
    /// The secret provider credential (id or name).
    #[arg(long)]
    pub credential: Option<String>,
    /// The provider (see the API reference for the accepted values).
    #[arg(long)]
    pub provider: Option<String>,
    /// `name` or `name#json_key` in the provider.
    #[arg(long)]
    pub secret_name: Option<String>,
}

const COLUMNS: &[&str] = &[
    "key",
    "source",
    "value",
    "credential",
    "provider",
    "secret_name",
];

/// A variable's fields in `--output text`.
const SHOWN: &[&str] = &[
    "id",
    "key",
    "source",
    "value",
    "secret",
    "credential",
    "provider",
    "secret_name",
];

/// `--value`, or the content of `--value-file` (stdin for `-`) so a secret stays out of the
/// process list and the shell history.
fn value_from(value: Option<String>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = file else {
        return Ok(value);
    };
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the value file {}", path.display()))?;
    }
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Some(trimmed.to_owned()))
}

pub async fn run(args: EnvArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        EnvCommand::List(out) => print_list(&api.env_vars().await?, COLUMNS, out.output)?,
        EnvCommand::Show { key, out } => print_one(&api.env_var(&key).await?, SHOWN, out.output)?,
        EnvCommand::Create(f) => {
            let body = CreateEnvironmentVariable {
                value: value_from(f.value, f.value_file.as_deref())?,
                key: f.key,
                source: None,
                provider: f.provider,
                credential: f.credential,
                secret_name: f.secret_name,
                secret: Some(f.secret),
            };
            print(&api.create_env_var(&body).await?)?;
        }
        EnvCommand::Update { key, fields: f } => {
            let body = UpdateEnvironmentVariable {
                value: value_from(f.value, f.value_file.as_deref())?,
                key: f.key,
                source: f.source,
                provider: f.provider,
                credential: f.credential,
                secret_name: f.secret_name,
                secret: f.secret,
            };
            print(&api.update_env_var(&key, &body).await?)?;
        }
        EnvCommand::Delete { key } => {
            api.delete_env_var(&key).await?;
            println!("deleted environment variable {key}");
        }
        EnvCommand::Assign { automation, keys } => {
            let body = AssignEnvironmentVariables {
                environment_variables: keys,
            };
            let list = api.assign_env_vars(&automation, &body).await?;
            print_list(&list, &["key", "source", "value"], Output::Text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_file_gives_its_content_without_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        std::fs::write(&path, "s3cret \n").unwrap();
        assert_eq!(
            value_from(None, Some(&path)).unwrap().as_deref(),
            Some("s3cret ")
        );
        assert_eq!(
            value_from(Some("x".into()), None).unwrap().as_deref(),
            Some("x")
        );
        assert!(value_from(None, Some(&dir.path().join("missing"))).is_err());
    }
}
