//! `keyward audit export` and `keyward audit verify --file`: the audit log as JSON lines for a
//! SIEM, read from the database in pages (constant memory), and its offline check.

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use keyward_store::AuditFilter;
use keyward_store::audit_export::{ExportWriter, ExportedEvent, verify_export};
use time::format_description::well_known::Rfc3339;

use crate::common_args::StorageArgs;

/// Events read per page.
const PAGE: i64 = 1000;

/// Milliseconds since the epoch for an RFC 3339 time, or a duration back from `now_ms`
/// (`90s`, `15m`, `24h`, `7d`, `2w`).
pub fn parse_time(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let bad = || {
        anyhow::anyhow!(
            "{text:?} is neither an RFC 3339 time (2026-01-31T12:00:00Z) nor a duration (90s, 15m, 24h, 7d, 2w)"
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit_ms)
        .map(|back| now_ms - back)
        .ok_or_else(bad)
}

pub async fn export(
    storage: &StorageArgs,
    since: &str,
    until: Option<&str>,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let now_ms = keyward_server::clock::now() * 1000;
    let since_ms = parse_time(since, now_ms).context("--since")?;
    let until_ms = until
        .map(|u| parse_time(u, now_ms))
        .transpose()
        .context("--until")?;
    storage.ensure_existing()?;
    let (store, master) = keyward_server::open_storage(
        &storage.data_dir,
        storage.database_url.as_deref(),
        storage.master_key.as_deref(),
    )
    .await?;
    let mut out: Box<dyn Write> = match output {
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
        Some(path) => Box::new(BufWriter::new(
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
    };
    let key = master.audit_key();
    let mut writer = ExportWriter::new(&key);
    // The export is the contiguous run of events from the first at or after --since, so it
    // verifies as one piece of the chain even where clocks of replicas disagree slightly.
    let first = store
        .audit_events(&AuditFilter {
            since_ms: Some(since_ms),
            limit: 1,
            ..Default::default()
        })
        .await?;
    let mut count = 0u64;
    if let Some(first) = first.first() {
        let mut after = first.seq - 1;
        'pages: loop {
            let rows = store
                .audit_events(&AuditFilter {
                    after_seq: Some(after),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            for row in &rows {
                if until_ms.is_some_and(|u| row.at_ms >= u) {
                    break 'pages;
                }
                let at = keyward_server::clock::ms_to_datetime(row.at_ms)
                    .format(&Rfc3339)
                    .unwrap_or_default();
                let line = writer.line(&ExportedEvent::from_row(row, at))?;
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                after = row.seq;
                count += 1;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
    }
    out.write_all(writer.end()?.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    drop(out);
    if let Some(path) = output {
        fs::File::open(path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot fsync {}", path.display()))?;
        eprintln!("exported {count} audit events to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn verify_file(storage: &StorageArgs, file: &Path) -> anyhow::Result<ExitCode> {
    // The links are keyed: checking them takes the audit key, from the master key and database.
    storage.ensure_existing()?;
    let (_store, master) = keyward_server::open_storage(
        &storage.data_dir,
        storage.database_url.as_deref(),
        storage.master_key.as_deref(),
    )
    .await?;
    let reader = BufReader::new(
        fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    match verify_export(reader, &master.audit_key()) {
        Ok(summary) => {
            match (summary.first_seq, summary.last_seq) {
                (Some(first), Some(last)) => println!(
                    "ok: {} audit events verified in {} (events {first} to {last})",
                    summary.events,
                    file.display()
                ),
                _ => println!("ok: {} holds no events", file.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("FAILED: {}: {broken}", file.display());
            if let Some(line) = broken.line() {
                println!("first broken line: {line}");
                Ok(ExitCode::FAILURE)
            } else {
                bail!("{broken}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_durations_back_from_now() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_time("24h", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        for bad in ["", "h", "12", "5y", "yesterday", "-5m"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
