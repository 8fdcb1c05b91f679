//! `keyward audit`: verify the hash chain on the database directly, or read events over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use keyward_client::AuditQuery;
use time::format_description::well_known::Rfc3339;

use super::admin::{client, print};
use crate::common_args::{ApiArgs, ListOutput, Output, StorageArgs};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; exits 1 and names the first broken event if it was altered.
    /// With --file, checks an export instead (and names the first broken line).
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        /// An export written by `keyward audit export`, checked offline against the audit key.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write events as JSON lines (to stdout or --output), each carrying its hash and the previous
    /// event's, ending with a record that seals the export; works on the database directly.
    Export {
        #[command(flatten)]
        storage: StorageArgs,
        /// From the first event at or after this time: RFC 3339, or a duration back from now
        /// (90s, 15m, 24h, 7d).
        #[arg(long)]
        since: String,
        /// Up to the first event at or after this time (RFC 3339 or a duration back from now).
        #[arg(long)]
        until: Option<String>,
        /// The output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file (0600) instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// The organization's events over the API, oldest first (one page; `--after` for the next).
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Only events of this type, e.g. automation_token.created.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only events at or after this RFC 3339 time, e.g. 2026-01-31T12:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// Only events before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only events after this sequence number (the previous page's last).
        #[arg(long)]
        after: Option<i64>,
        /// At most this many events (1-1000, default 100).
        #[arg(long)]
        limit: Option<i64>,
        #[command(flatten)]
        out: ListOutput,
    },
}

/// Formats of `keyward audit export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Export {
            storage,
            since,
            until,
            format: ExportFormat::Jsonl,
            output,
        } => {
            super::audit_export::export(&storage, &since, until.as_deref(), output.as_deref()).await
        }
        AuditCommand::Verify {
            storage,
            file: Some(file),
        } => super::audit_export::verify_file(&storage, &file).await,
        AuditCommand::List {
            api,
            kind,
            since,
            until,
            after,
            limit,
            out,
        } => {
            let query = AuditQuery {
                kind,
                since,
                until,
                after,
                limit,
            };
            let page = client(&api)?.audit(&query).await?;
            if out.output == Output::Json {
                print(&page)?;
                return Ok(ExitCode::SUCCESS);
            }
            for e in &page.events {
                println!(
                    "{}  {}  {}  actor={}  {}",
                    e.seq,
                    e.at.format(&Rfc3339).unwrap_or_default(),
                    e.kind,
                    e.actor,
                    e.data
                );
            }
            if let Some(next) = page.next_after {
                eprintln!("more events: add --after {next}");
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            storage,
            file: None,
        } => {
            // Offline: the database and the master key (KEYWARD_MASTER_KEY or the key file in
            // the data directory) are all it takes; no server needs to run.
            storage.ensure_existing()?;
            let (store, master) = keyward_server::open_storage(
                &storage.data_dir,
                storage.database_url.as_deref(),
                storage.master_key.as_deref(),
            )
            .await?;
            let result =
                keyward_server::audit::verify_chain(store.as_ref(), &master.audit_key()).await?;
            match &result.broken {
                None => {
                    println!(
                        "ok: {} audit events verified (master key {})",
                        result.checked,
                        master.id_hex()
                    );
                    println!("{}", result.summary());
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("FAILED after {} good events: {broken}", result.checked);
                    println!("first broken event: {}", broken.seq());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
