//! `keyward session`: gateway session recordings (SPEC §9) over the API — list and show them,
//! replay the masked exchange with its original timing, and verify a recording against the heads
//! the audit log holds (exit 1, naming the segment and line, when it was tampered with).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use keyward_client::{Client, segment};
use keyward_core::api::sessions::{
    SessionDetail, SessionRecords, SessionSummary, SessionVerification,
};
use reqwest::Method;

use super::admin::{client, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, Output, ShowOutput};

const BASE: &str = "/api/v1/sessions";
/// Records fetched per request while replaying.
const PAGE: &str = "5000";

#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Recorded gateway sessions, the most recently active first.
    List(SessionListArgs),
    /// One session: its requests' heads from the audit log and what the store holds.
    Show {
        /// The session's id.
        id: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Print the (masked) exchange with its original timing: `>` sent, `<` received, `=` decided.
    Replay {
        /// The session's id.
        id: String,
        /// Play this many times faster (2 = twice as fast; 0 = no waiting).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Print at once, without the recorded pauses (same as --speed 0).
        #[arg(long)]
        no_wait: bool,
    },
    /// Check the recording against the audit log: exits 1 naming the place when it was edited,
    /// truncated, or had lines or segments deleted or added.
    Verify {
        /// The session's id.
        id: String,
        /// text (a verdict line) or json (the API's answer).
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct SessionListArgs {
    /// Only sessions with a request by this caller (subject, e.g. user:<id> or automation:<id>).
    #[arg(long)]
    pub caller: Option<String>,
    /// Only sessions with a request through this gateway route (its name).
    #[arg(long)]
    pub route: Option<String>,
    /// Only sessions active at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only sessions active before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many (the server caps it at 500).
    #[arg(long)]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub out: ListOutput,
}

/// What a list line shows.
pub const COLUMNS: &[&str] = &[
    "id", "segments", "errors", "first_at", "last_at", "callers", "routes",
];
/// What `show --output text` shows.
pub const DETAIL: &[&str] = &[
    "id",
    "segments",
    "errors",
    "first_at",
    "last_at",
    "callers",
    "routes",
    "stored",
    "stored_error",
];

fn path(id: &str, action: Option<&str>) -> String {
    match action {
        Some(a) => format!("{BASE}/{}/{a}", segment(id)),
        None => format!("{BASE}/{}", segment(id)),
    }
}

async fn list(api: &Client, args: &SessionListArgs) -> anyhow::Result<Vec<SessionSummary>> {
    let limit = args.limit.map(|l| l.to_string());
    let mut query: Vec<(&str, &str)> = Vec::new();
    for (key, value) in [
        ("caller", args.caller.as_deref()),
        ("route", args.route.as_deref()),
        ("since", args.since.as_deref()),
        ("until", args.until.as_deref()),
        ("limit", limit.as_deref()),
    ] {
        if let Some(v) = value {
            query.push((key, v));
        }
    }
    Ok(api.request(Method::GET, BASE, &query, None::<&()>).await?)
}

/// Every record of the session, page by page.
async fn records(api: &Client, id: &str) -> anyhow::Result<Vec<keyward_recording::Record>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", PAGE)];
        if let Some(a) = &after {
            query.push(("after_seq", a.as_str()));
        }
        let page: SessionRecords = api
            .request(Method::GET, &path(id, Some("records")), &query, None::<&()>)
            .await?;
        out.extend(page.records.into_iter().map(|r| keyward_recording::Record {
            segment: r.segment,
            line: r.line,
            seq: r.seq,
            at_ms: r.at_ms,
            kind: r.kind,
            data: r.data,
            prev: r.prev,
            hash: r.hash,
        }));
        match page.next_after_seq {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(out),
        }
    }
}

fn print_heads(detail: &SessionDetail) {
    for h in &detail.heads {
        let at =
            h.at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
        let place = h
            .segment
            .map_or("segment -".to_owned(), |s| format!("segment {s}"));
        let route = h.route.as_deref().unwrap_or("-");
        let status = h.status.map_or("-".to_owned(), |s| s.to_string());
        match &h.error {
            Some(e) => println!(
                "  {place} at {at} caller={} route={route} status={status} write error: {e}",
                h.caller
            ),
            None => println!(
                "  {place} at {at} caller={} route={route} status={status} lines={} head={}",
                h.caller,
                h.lines.unwrap_or(0),
                h.head_hash.as_deref().unwrap_or("-"),
            ),
        }
    }
}

fn print_verdict(v: &SessionVerification) -> ExitCode {
    if v.ok && v.anchored {
        println!(
            "ok: {} records in {} segments, anchored: true",
            v.records,
            v.segments.len()
        );
        if v.write_errors > 0 {
            println!(
                "note: the recording of {} request(s) of this session failed to be written (see `keyward session show {}`)",
                v.write_errors, v.id
            );
        }
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "session {} does not verify: {}",
            v.id,
            v.error
                .as_deref()
                .unwrap_or("it is not anchored in the audit log")
        );
        ExitCode::FAILURE
    }
}

pub async fn run(args: SessionArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        SessionCommand::List(list_args) => {
            let items = list(&api, &list_args).await?;
            print_list(&items, COLUMNS, list_args.out.output)?;
        }
        SessionCommand::Show { id, out } => {
            let item: SessionDetail = api
                .request(Method::GET, &path(&id, None), &[], None::<&()>)
                .await?;
            print_one(&item, DETAIL, out.output)?;
            if out.output == Output::Text {
                println!("heads:");
                print_heads(&item);
            }
        }
        SessionCommand::Replay { id, speed, no_wait } => {
            if !(speed.is_finite() && speed >= 0.0) {
                anyhow::bail!("--speed must be a number of at least 0 (got {speed})");
            }
            // Replaying is for investigations: say so when the recording does not verify, but
            // still show it (the damage may be what is being investigated).
            let verdict: SessionVerification = api
                .request(Method::GET, &path(&id, Some("verify")), &[], None::<&()>)
                .await?;
            if !verdict.ok {
                eprintln!(
                    "warning: session {id} does not verify: {}",
                    verdict.error.as_deref().unwrap_or("")
                );
            }
            let records = records(&api, &id).await?;
            let sleep = !no_wait && speed > 0.0;
            tokio::task::spawn_blocking(move || {
                let stdout = std::io::stdout();
                keyward_recording::replay(&records, speed, &mut stdout.lock(), sleep)
            })
            .await
            .context("the replay task failed")?
            .context("writing the replay to stdout")?;
        }
        SessionCommand::Verify { id, output } => {
            let verdict: SessionVerification = api
                .request(Method::GET, &path(&id, Some("verify")), &[], None::<&()>)
                .await?;
            if output == Output::Json {
                print_one(&verdict, &[], Output::Json)?;
                return Ok(if verdict.ok && verdict.anchored {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            return Ok(print_verdict(&verdict));
        }
    }
    Ok(ExitCode::SUCCESS)
}
