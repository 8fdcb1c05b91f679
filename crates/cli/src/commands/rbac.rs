//! `keyward role …` and `keyward member …`: roles and members of an organization over the API
//! (SPEC §8). Creating accounts is the identity provider's job; `member add` adds an existing one.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use keyward_core::api::rbac::{AddMember, SetMemberRole};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::admin::{Api, print, print_list, segment};
use crate::args::ApiArgs;

#[derive(Debug, Args)]
pub struct RoleArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: RoleCommand,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Every role with its member count.
    List,
    /// One role (name or id) with its level on every feature.
    Show { role: String },
    /// A custom role: `--grant feature=level` (repeatable; levels none, read, write, manage;
    /// environment_variables, llm_connections, default_settings, organization_settings and
    /// studio_projects take manage or none only). Features left out get none.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "grant", value_name = "FEATURE=LEVEL")]
        grants: Vec<String>,
    },
    /// Change a custom role; any `--grant` replaces the whole set of grants.
    Update {
        role: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "grant", value_name = "FEATURE=LEVEL")]
        grants: Vec<String>,
    },
    /// Delete a custom role; `--reassign-to` moves its members first.
    Delete {
        role: String,
        #[arg(long)]
        reassign_to: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    List,
    /// Add a person who already has a Keyward account (they signed in once).
    Add {
        email: String,
        /// A role name or id (default: member).
        #[arg(long)]
        role: Option<String>,
    },
    /// Change a member's role (member by email or user id).
    SetRole {
        member: String,
        role: String,
    },
    /// Remove a member from the organization (by email or user id).
    Remove {
        member: String,
    },
}

#[derive(Debug, Args)]
pub struct AutomationPermissionArgs {
    pub automation: String,
    /// `private` (only the owner, the whitelist and grant holders see it) or `public`.
    #[arg(long)]
    pub visibility: Option<String>,
    /// A user (email or id) who sees it while private (repeatable).
    #[arg(long = "whitelist-user", value_name = "EMAIL")]
    pub users: Vec<String>,
    /// A role (name or id) whose members see it while private (repeatable).
    #[arg(long = "whitelist-role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// `user:<email>=<permissions>` or `role:<name>=<permissions>`, permissions comma-separated
    /// from run, traces, manage_settings, human_in_the_loop, full_access (repeatable).
    #[arg(long = "grant", value_name = "WHO=PERMISSIONS")]
    pub grants: Vec<String>,
}

/// `user:<email>=run,traces` as the API's grant object.
fn automation_grant(spec: &str) -> anyhow::Result<Value> {
    let parsed = spec.split_once('=').and_then(|(who, perms)| {
        let (kind, name) = who.split_once(':')?;
        let perms: Vec<&str> = perms
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        matches!(kind, "user" | "role").then(|| json!({kind: name, "permissions": perms}))
    });
    parsed.ok_or_else(|| {
        anyhow::anyhow!(
            "--grant takes user:<email>=<permissions> or role:<name>=<permissions>, e.g. --grant user:ana@acme.example=run,traces (got {spec:?})"
        )
    })
}

pub async fn automation_permissions(
    api: &Api,
    args: AutomationPermissionArgs,
) -> anyhow::Result<ExitCode> {
    let path = format!("/automations/{}/permissions", segment(&args.automation));
    let changes = args.visibility.is_some()
        || !args.users.is_empty()
        || !args.roles.is_empty()
        || !args.grants.is_empty();
    if !changes {
        print(&api.call(Method::GET, &path, None).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let grants = args
        .grants
        .iter()
        .map(|g| automation_grant(g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = json!({
        "visibility": args.visibility.unwrap_or_else(|| "public".into()),
        "whitelist": {"users": args.users, "roles": args.roles},
        "grants": grants,
    });
    print(&api.call(Method::PUT, &path, Some(&body)).await?);
    Ok(ExitCode::SUCCESS)
}

/// `feature=level` pairs as the JSON object the API takes.
fn grants(pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = Map::new();
    for pair in pairs {
        let Some((feature, level)) = pair.split_once('=') else {
            bail!(
                "--grant takes FEATURE=LEVEL, e.g. --grant secret_providers=manage (got {pair:?})"
            );
        };
        map.insert(feature.trim().to_owned(), json!(level.trim()));
    }
    Ok(Value::Object(map))
}

pub async fn role(args: RoleArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let one = |r: &str| format!("/roles/{}", segment(r));
    match args.command {
        RoleCommand::List => {
            let list = api.call(Method::GET, "/roles", None).await?;
            print_list(&list, &["name", "predefined", "members", "description"]);
        }
        RoleCommand::Show { role } => print(&api.call(Method::GET, &one(&role), None).await?),
        RoleCommand::Create {
            name,
            description,
            grants: pairs,
        } => {
            let body = json!({"name": name, "description": description, "grants": grants(&pairs)?});
            print(&api.call(Method::POST, "/roles", Some(&body)).await?);
        }
        RoleCommand::Update {
            role,
            name,
            description,
            grants: pairs,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            if !pairs.is_empty() {
                body.insert("grants".into(), grants(&pairs)?);
            }
            let body = Value::Object(body);
            print(&api.call(Method::PATCH, &one(&role), Some(&body)).await?);
        }
        RoleCommand::Delete { role, reassign_to } => {
            let path = match &reassign_to {
                Some(target) => format!("{}?reassign_to={}", one(&role), segment(target)),
                None => one(&role),
            };
            api.call(Method::DELETE, &path, None).await?;
            match reassign_to {
                Some(target) => println!("deleted role {role}; its members now hold {target}"),
                None => println!("deleted role {role}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn member(args: MemberArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.api)?;
    let one = |m: &str| format!("/members/{}", segment(m));
    match args.command {
        MemberCommand::List => {
            let list = api.call(Method::GET, "/members", None).await?;
            print_list(&list, &["email", "role", "user_id"]);
        }
        MemberCommand::Add { email, role } => {
            let body = serde_json::to_value(AddMember { email, role })?;
            print(&api.call(Method::POST, "/members", Some(&body)).await?);
        }
        MemberCommand::SetRole { member, role } => {
            let body = serde_json::to_value(SetMemberRole { role })?;
            print(&api.call(Method::PATCH, &one(&member), Some(&body)).await?);
        }
        MemberCommand::Remove { member } => {
            api.call(Method::DELETE, &one(&member), None).await?;
            println!("removed {member} from the organization");
        }
    }
    Ok(ExitCode::SUCCESS)
}
