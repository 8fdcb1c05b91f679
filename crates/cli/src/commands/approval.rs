//! `keyward approval`: just-in-time approval requests of the gateway (SPEC §9) — list and show
//! them, approve (once, or for a time box), deny, or revoke a grant, over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use keyward_client::{Client, segment};
use keyward_core::api::approvals::{Approval, ApproveRequest, CommentRequest, GrantKind};
use reqwest::Method;

use super::admin::{client, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, Output, ShowOutput};

const BASE: &str = "/api/v1/approvals";

#[derive(Debug, Args)]
pub struct ApprovalArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: ApprovalCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// Approval requests, newest first.
    List(ApprovalListArgs),
    /// One request: who asked, why, for what, and what became of it.
    Show {
        /// The approval's id.
        id: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Approve pending requests: the held requests go through (you cannot approve your own).
    Approve {
        /// The approvals' ids (several at once: a batch, decided a few in parallel).
        #[arg(required = true, num_args = 1..)]
        ids: Vec<String>,
        /// Why you approve (recorded in the audit log).
        #[arg(long)]
        comment: Option<String>,
        /// How long the grant lasts: 30m (default: what the route asks), at most 48h.
        #[arg(long = "for")]
        duration: Option<String>,
        /// once (one request) or timebox (every matching request until it expires).
        #[arg(long, value_enum)]
        grant: Option<Grant>,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Deny pending requests: the held requests are answered 403.
    Deny {
        /// The approvals' ids.
        #[arg(required = true, num_args = 1..)]
        ids: Vec<String>,
        /// Why (required; recorded in the audit log).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Revoke approved grants: they stop letting requests through at once.
    Revoke {
        /// The approvals' ids.
        #[arg(required = true, num_args = 1..)]
        ids: Vec<String>,
        /// Why (required; recorded in the audit log).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        out: ShowOutput,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Grant {
    Once,
    Timebox,
}

#[derive(Debug, Args)]
pub struct ApprovalListArgs {
    /// Only requests in this state: pending, approved, denied, expired, revoked, executed.
    #[arg(long)]
    pub state: Option<String>,
    /// Only requests of this gateway route (its name).
    #[arg(long)]
    pub route: Option<String>,
    /// Only requests of this requester (subject or email).
    #[arg(long)]
    pub requester: Option<String>,
    /// At most this many (the server caps it at 500).
    #[arg(long)]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub out: ListOutput,
}

/// What a list line shows.
pub const COLUMNS: &[&str] = &["id", "state", "route", "requester", "reason", "expires_at"];
/// What `show --output text` shows.
pub const DETAIL: &[&str] = &[
    "id",
    "state",
    "route",
    "requester",
    "policy_id",
    "reason",
    "summary",
    "mode",
    "grant",
    "created_at",
    "expires_at",
    "decided_by",
    "decision_comment",
    "grant_expires_at",
    "executed_at",
    "revoked_by",
    "revoke_comment",
];

fn one(id: &str, action: &str) -> String {
    format!("{BASE}/{}/{action}", segment(id))
}

async fn list(api: &Client, args: &ApprovalListArgs) -> anyhow::Result<Vec<Approval>> {
    let limit = args.limit.map(|l| l.to_string());
    let mut query: Vec<(&str, &str)> = Vec::new();
    for (key, value) in [
        ("state", args.state.as_deref()),
        ("route", args.route.as_deref()),
        ("requester", args.requester.as_deref()),
        ("limit", limit.as_deref()),
    ] {
        if let Some(v) = value {
            query.push((key, v));
        }
    }
    Ok(api.request(Method::GET, BASE, &query, None::<&()>).await?)
}

/// Lines show the requester by subject.
fn flattened(items: &[Approval]) -> anyhow::Result<Vec<serde_json::Value>> {
    items
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a)?;
            v["requester"] = serde_json::Value::String(a.requester.subject.clone());
            if let Some(d) = &a.decided_by {
                v["decided_by"] = serde_json::Value::String(d.email.clone());
            }
            if let Some(d) = &a.revoked_by {
                v["revoked_by"] = serde_json::Value::String(d.email.clone());
            }
            Ok(v)
        })
        .collect()
}

fn show(item: &Approval, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_one(item, DETAIL, output);
    }
    let flat = flattened(std::slice::from_ref(item))?;
    print_one(&flat[0], DETAIL, output)
}

/// Decisions in flight at once in a batch: enough to decide a thousand held requests in
/// seconds, few enough not to crowd the server's other callers.
const PARALLEL: usize = 8;

/// POSTs `body` to `/{id}/{action}` for every id, `PARALLEL` at a time. One id shows the
/// request as it now stands; several print a line each (in the order given). A refusal of one
/// does not stop the others; each is named on stderr and the command then fails.
async fn decide<B>(
    api: &Client,
    ids: Vec<String>,
    action: &'static str,
    body: B,
    output: Output,
) -> anyhow::Result<ExitCode>
where
    B: serde::Serialize + Clone + Send + Sync + 'static,
{
    if let [id] = ids.as_slice() {
        let item: Approval = api
            .request(Method::POST, &one(id, action), &[], Some(&body))
            .await?;
        show(&item, output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut results: Vec<Option<Result<Approval, String>>> = ids.iter().map(|_| None).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = ids.iter().cloned().enumerate();
    loop {
        while tasks.len() < PARALLEL {
            let Some((index, id)) = next.next() else {
                break;
            };
            let (api, body) = (api.clone(), body.clone());
            tasks.spawn(async move {
                let result: Result<Approval, _> = api
                    .request(Method::POST, &one(&id, action), &[], Some(&body))
                    .await;
                (index, result.map_err(|e| format!("{e:#}")))
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let (index, result) = done?;
        results[index] = Some(result);
    }
    let (mut decided, mut failed) = (Vec::new(), 0usize);
    for (id, result) in ids.iter().zip(results) {
        match result {
            Some(Ok(item)) => decided.push(item),
            Some(Err(e)) => {
                failed += 1;
                eprintln!("approval {id}: {e}");
            }
            None => failed += 1,
        }
    }
    if output == Output::Json {
        print_list(&decided, COLUMNS, Output::Json)?;
    } else {
        print_list(&flattened(&decided)?, COLUMNS, Output::Text)?;
    }
    if failed > 0 {
        anyhow::bail!(
            "{action}: {failed} of {} approvals failed (each is named above with why); the others went through",
            ids.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: ApprovalArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        ApprovalCommand::List(list_args) => {
            let items = list(&api, &list_args).await?;
            if list_args.out.output == Output::Json {
                print_list(&items, COLUMNS, Output::Json)?;
            } else {
                print_list(&flattened(&items)?, COLUMNS, Output::Text)?;
            }
        }
        ApprovalCommand::Show { id, out } => {
            let path = format!("{BASE}/{}", segment(&id));
            let item: Approval = api.request(Method::GET, &path, &[], None::<&()>).await?;
            show(&item, out.output)?;
        }
        ApprovalCommand::Approve {
            ids,
            comment,
            duration,
            grant,
            out,
        } => {
            let body = ApproveRequest {
                comment,
                grant: grant.map(|g| match g {
                    Grant::Once => GrantKind::Once,
                    Grant::Timebox => GrantKind::Timebox,
                }),
                duration,
            };
            return decide(&api, ids, "approve", body, out.output).await;
        }
        ApprovalCommand::Deny { ids, comment, out } => {
            let body = CommentRequest {
                comment: Some(comment),
            };
            return decide(&api, ids, "deny", body, out.output).await;
        }
        ApprovalCommand::Revoke { ids, comment, out } => {
            let body = CommentRequest {
                comment: Some(comment),
            };
            return decide(&api, ids, "revoke", body, out.output).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
