//! `keyward admin master-key rotate`: re-seals every sealed value under a new master key, on the
//! database directly, with every server stopped. Resumable: run it again after a crash.
//!
//! The new key is written to `<data-dir>/master.key.new` (0600, fsynced) before anything is
//! re-sealed, so a crash never loses the only copy of the key half the data is under; at the end
//! it is renamed over `master.key`, atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_server::audit::Auditor;
use keyward_store::Store;
use keyward_store::crypto::{MASTER_KEY_FILE, MasterKey};
use keyward_store::master_keys::{self, ROTATED_KIND};
use serde_json::json;
use zeroize::Zeroizing;

use crate::common_args::StorageArgs;

/// The new key until the rotation is finished.
const NEW_KEY_FILE: &str = "master.key.new";

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The master key that seals every secret at rest.
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-seal every stored secret under a new master key and retire the old one. Stop every
    /// server first; if interrupted, run it again and it finishes.
    Rotate {
        #[command(flatten)]
        storage: StorageArgs,
        /// A file holding the new base64 key (32 bytes); a random one is generated otherwise.
        #[arg(long, env = "KEYWARD_NEW_MASTER_KEY_FILE")]
        new_key_file: Option<PathBuf>,
        /// Rows re-sealed per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
    },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AdminCommand::MasterKey {
            command:
                MasterKeyCommand::Rotate {
                    storage,
                    new_key_file,
                    batch_size,
                },
        } => rotate(&storage, new_key_file.as_deref(), batch_size).await,
    }
}

async fn rotate(
    storage: &StorageArgs,
    new_key_file: Option<&Path>,
    batch: i64,
) -> anyhow::Result<ExitCode> {
    storage.ensure_existing()?;
    let dir = &storage.data_dir;
    let key_path = dir.join(MASTER_KEY_FILE);
    let new_path = dir.join(NEW_KEY_FILE);
    if storage.master_key.is_none() && !key_path.is_file() {
        bail!(
            "no master key: {} does not exist and KEYWARD_MASTER_KEY is not set; give the key the data was sealed with",
            key_path.display()
        );
    }
    let mut old = MasterKey::load_or_create(storage.master_key.as_deref(), dir)?;
    let store: Arc<dyn Store> = keyward_store::open(storage.database_url.as_deref(), dir).await?;
    let keys = store.master_keys().await?;
    let old_id = old.id_hex();

    // Killed after the database was switched but before the key file was: install it now.
    if let Some(mine) = keys
        .iter()
        .find(|k| k.key_id == old_id && k.state == "retired")
    {
        let successor = mine.successor.clone().unwrap_or_default();
        let (new, _) = read_key(&new_path)
            .with_context(|| format!("master key {old_id} is retired, and its successor {successor} is not in {}: configure the new key", new_path.display()))?;
        if new.id_hex() != successor {
            bail!(
                "master key {old_id} is retired in favour of {successor}, but {} holds key {}",
                new_path.display(),
                new.id_hex()
            );
        }
        install(&new_path, &key_path)?;
        finished(storage, &old_id, &successor);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(known) = keys.iter().find(|k| k.state == "active")
        && known.key_id != old_id
    {
        bail!(
            "the configured master key {old_id} is not this database's (its active key is {}): configure the key the data was sealed with",
            known.key_id
        );
    }
    let rotating = keys.iter().find(|k| k.state == "rotating");

    let (new, new_text) = match (new_key_file, new_path.is_file()) {
        // A given key is copied beside the data first, like a generated one.
        (Some(file), false) => {
            let (key, text) = read_key(file)?;
            write_private(&new_path, &text)?;
            (key, text)
        }
        (_, true) => read_key(&new_path)?,
        (None, false) => {
            if let Some(r) = rotating {
                bail!(
                    "a rotation to master key {} is unfinished but {} is missing: give that key with --new-key-file",
                    r.key_id,
                    new_path.display()
                );
            }
            let (key, text) = MasterKey::generate()?;
            write_private(&new_path, &text)?;
            (key, text)
        }
    };
    drop(new_text);
    let mut new = new;
    let new_id = new.id_hex();
    if new_id == old_id {
        bail!("the new master key is the configured one ({old_id}): give a different key");
    }
    if keys
        .iter()
        .any(|k| k.key_id == new_id && k.state == "retired")
    {
        bail!(
            "master key {new_id} was retired by an earlier rotation: give a key never used before"
        );
    }
    if let Some(r) = rotating
        && r.key_id != new_id
    {
        bail!(
            "a rotation to master key {} is unfinished, but the new key given is {new_id}: finish that rotation first (its key is in {})",
            r.key_id,
            new_path.display()
        );
    }
    if let Some(given) = new_key_file
        && new_path.is_file()
    {
        let (from_file, _) = read_key(given)?;
        if from_file.id_hex() != new_id {
            bail!(
                "{} holds key {new_id} from an earlier, unfinished rotation, not the key in {}: finish that rotation (run without --new-key-file), or delete the file if that rotation never started",
                new_path.display(),
                given.display()
            );
        }
    }

    // The audit chain's key outlives this master key: stored sealed, carried over like the rest.
    match master_keys::stored_audit_key(store.as_ref(), &[&old, &new]).await? {
        Some(audit) => {
            old.set_audit_key(audit.clone());
            new.set_audit_key(audit);
        }
        None => {
            master_keys::keep_audit_key(store.as_ref(), &old).await?;
            new.set_audit_key(old.audit_key());
        }
    }
    let now = keyward_server::clock::now();
    store.begin_master_rotation(&old_id, &new_id, now).await?;
    println!("rotating master key {old_id} -> {new_id}");

    let pause_after: Option<u64> = std::env::var("KEYWARD_TEST_ROTATE_PAUSE_AFTER")
        .ok()
        .and_then(|v| v.parse().ok());
    let report = master_keys::reseal_all(store.as_ref(), &old, &new, batch, |column, r| {
        println!(
            "batch {}: {} re-sealed so far ({})",
            r.batches,
            r.resealed,
            column.name()
        );
        // Tests kill the rotation here, between two committed batches.
        if pause_after == Some(r.batches) {
            println!("paused after batch {}", r.batches);
            let _ = std::io::stdout().flush();
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    })
    .await?;

    let audit = Auditor::new(store.clone(), new.audit_key());
    keyward_server::audit::seal_unkeyed(store.as_ref(), &new.audit_key(), &audit, dir).await?;
    audit
        .record(
            ROTATED_KIND,
            None,
            "system:master-key-rotation",
            json!({
                "old_key_id": old_id,
                "new_key_id": new_id,
                "resealed": report.resealed,
                "already_resealed": report.already,
            }),
        )
        .await?;
    store.finish_master_rotation(&old_id, &new_id, now).await?;
    install(&new_path, &key_path)?;
    println!(
        "{} values re-sealed ({} were already under the new key)",
        report.resealed, report.already
    );
    finished(storage, &old_id, &new_id);
    Ok(ExitCode::SUCCESS)
}

fn finished(storage: &StorageArgs, old_id: &str, new_id: &str) {
    println!("master key rotated: {new_id} is active, {old_id} is retired and refused from now on");
    if storage.master_key.is_some() {
        println!(
            "KEYWARD_MASTER_KEY still holds the retired key: set it to the contents of {} before starting servers",
            storage.data_dir.join(MASTER_KEY_FILE).display()
        );
    }
}

fn read_key(path: &Path) -> anyhow::Result<(MasterKey, Zeroizing<String>)> {
    let text = Zeroizing::new(
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let key = MasterKey::from_base64(&text)
        .with_context(|| format!("{} does not hold a master key", path.display()))?;
    Ok((key, text))
}

/// Writes `text` to `path` (0600) through a temporary file, fsynced and renamed, so the path
/// holds either nothing or the whole key.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let io = |what: &str| format!("cannot {what} {}", tmp.display());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| io("create"))?;
    file.write_all(text.trim().as_bytes())
        .with_context(|| io("write"))?;
    file.sync_all().with_context(|| io("fsync"))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} into place", tmp.display()))?;
    sync_dir(path)
}

/// Moves the new key over the old one (one atomic rename) and makes the rename durable.
fn install(new_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    fs::rename(new_path, key_path).with_context(|| {
        format!(
            "cannot move {} to {}: move it by hand; the database already uses the new key",
            new_path.display(),
            key_path.display()
        )
    })?;
    sync_dir(key_path)
}

fn sync_dir(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot fsync {}", dir.display()))?;
    }
    Ok(())
}
