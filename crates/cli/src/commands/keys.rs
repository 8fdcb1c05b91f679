//! `keyward keys`: list or rotate the issuer's signing keys on the database directly.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use keyward_server::audit::Auditor;
use keyward_server::clock;
use keyward_server::config::RawServerConfig;
use keyward_server::keyring::Keyring;

use super::serve::raw_rotation;
use crate::common_args::{RotationArgs, StorageArgs};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every signing key with its phase.
    List {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        rotation: RotationArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish a successor key now; it signs after the publish lead.
    Rotate {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        rotation: RotationArgs,
        /// Sign with the new key at once (suspected compromise). Verifiers refetch the JWKS on
        /// the unknown kid; tokens of the old key stay valid until they expire.
        #[arg(long)]
        immediate: bool,
    },
}

async fn open(
    storage: &StorageArgs,
    rotation: &RotationArgs,
) -> anyhow::Result<(Keyring, Auditor)> {
    let mut raw = RawServerConfig::default();
    raw_rotation(rotation, &mut raw);
    let config = raw.validate().context("invalid rotation settings")?;
    storage.ensure_existing()?;
    let (store, master) = keyward_server::open_storage(
        &storage.data_dir,
        storage.database_url.as_deref(),
        storage.master_key.as_deref(),
    )
    .await?;
    let audit = Auditor::new(store.clone(), master.audit_key());
    // Before this command's own events: they must not be the first keyed ones after an old log.
    keyward_server::audit::seal_unkeyed(
        store.as_ref(),
        &master.audit_key(),
        &audit,
        &storage.data_dir,
    )
    .await?;
    let keyring = Keyring::new(store, master, config.rotation);
    keyring
        .reload(clock::now())
        .await
        .context("cannot load the signing keys")?;
    Ok((keyring, audit))
}

fn when(secs: i64) -> String {
    clock::to_datetime(secs)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::List {
            storage,
            rotation,
            json,
        } => {
            let (keyring, _) = open(&storage, &rotation).await?;
            let keys = keyring.list(clock::now());
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|(row, phase)| {
                        serde_json::json!({
                            "kid": row.kid,
                            "alg": row.alg,
                            "state": phase.as_str(),
                            "source": row.source.as_str(),
                            "published_at": row.published_at,
                            "activates_at": row.activates_at,
                            "retires_at": row.retires_at,
                            "retired_at": row.retired_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<24} {:<6} {:<9} {:<10} {:<20} {:<20} RETIRES",
                    "KID", "ALG", "STATE", "SOURCE", "PUBLISHED", "ACTIVATES"
                );
                for (row, phase) in keys {
                    println!(
                        "{:<24} {:<6} {:<9} {:<10} {:<20} {:<20} {}",
                        row.kid,
                        row.alg,
                        phase.as_str(),
                        row.source.as_str(),
                        when(row.published_at),
                        when(row.activates_at),
                        row.retired_at
                            .or(row.retires_at)
                            .map(when)
                            .unwrap_or_else(|| "-".into()),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate {
            storage,
            rotation,
            immediate,
        } => {
            let (keyring, audit) = open(&storage, &rotation).await?;
            let now = clock::now();
            let kid = keyring.rotate(now, immediate, &audit).await?;
            let activates = if immediate {
                now
            } else {
                keyward_jose::schedule::earliest_activation(now, keyring.policy())
            };
            println!("published key {kid}; it signs from {}", when(activates));
            Ok(ExitCode::SUCCESS)
        }
    }
}
