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
    /// Approve a pending request: the held request goes through (you cannot approve your own).
    Approve {
        /// The approval's id.
        id: String,
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
    /// Deny a pending request: the held request is answered 403.
    Deny {
        /// The approval's id.
        id: String,
        /// Why (required; recorded in the audit log).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// Revoke an approved grant: it stops letting requests through at once.
    Revoke {
        /// The approval's id.
        id: String,
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
            id,
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
            let item: Approval = api
                .request(Method::POST, &one(&id, "approve"), &[], Some(&body))
                .await?;
            show(&item, out.output)?;
        }
        ApprovalCommand::Deny { id, comment, out } => {
            let body = CommentRequest {
                comment: Some(comment),
            };
            let item: Approval = api
                .request(Method::POST, &one(&id, "deny"), &[], Some(&body))
                .await?;
            show(&item, out.output)?;
        }
        ApprovalCommand::Revoke { id, comment, out } => {
            let body = CommentRequest {
                comment: Some(comment),
            };
            let item: Approval = api
                .request(Method::POST, &one(&id, "revoke"), &[], Some(&body))
                .await?;
            show(&item, out.output)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
