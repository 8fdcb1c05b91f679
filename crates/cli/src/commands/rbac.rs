//! `keyward role …` and `keyward member …`: roles and members of an organization over the API
//! (SPEC §8), and an automation's permissions. Creating accounts is the identity provider's job;
//! `member add` adds an existing one.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_client::Client;
use keyward_core::api::rbac::{
    AddMember, AutomationGrant, AutomationPermissions, CreateRole, Principals, SetMemberRole,
    UpdateRole, Visibility,
};
use keyward_core::permission::{AutomationPermission, Feature, Level};
use serde::de::DeserializeOwned;

use super::admin::{client, print, print_list, print_one};
use crate::common_args::{ApiArgs, ListOutput, ShowOutput};

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
    List(ListOutput),
    /// One role (name or id) with its level on every feature.
    Show {
        /// The role (id or name).
        role: String,
        #[command(flatten)]
        out: ShowOutput,
    },
    /// A custom role: `--grant feature=level` (repeatable; levels none, read, write, manage;
    /// environment_variables, llm_connections, default_settings, organization_settings and
    /// studio_projects take manage or none only). Features left out get none.
    Create {
        /// Its name (unique in the organization).
        name: String,
        /// A description shown in listings.
        #[arg(long)]
        description: Option<String>,
        /// Feature levels as feature=level (repeatable).
        #[arg(long = "grant", value_name = "FEATURE=LEVEL")]
        grants: Vec<String>,
    },
    /// Change a custom role; any `--grant` replaces the whole set of grants.
    Update {
        /// The role (id or name).
        role: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A description shown in listings.
        #[arg(long)]
        description: Option<String>,
        /// Feature levels as feature=level (repeatable).
        #[arg(long = "grant", value_name = "FEATURE=LEVEL")]
        grants: Vec<String>,
    },
    /// Delete a custom role; `--reassign-to` moves its members first.
    Delete {
        /// The role (id or name).
        role: String,
        /// The member who takes over the removed member's resources.
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
    List(ListOutput),
    /// Add a person who already has a Keyward account (they signed in once).
    Add {
        /// The person's email.
        email: String,
        /// A role name or id (default: member).
        #[arg(long)]
        role: Option<String>,
    },
    /// Change a member's role (member by email or user id).
    SetRole {
        /// The member (id or email).
        member: String,
        /// The role (id or name).
        role: String,
    },
    /// Remove a member from the organization (by email or user id).
    Remove {
        /// The member (id or email).
        member: String,
    },
}

#[derive(Debug, Args)]
pub struct AutomationPermissionArgs {
    /// The automation (id or name).
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

/// A snake_case name the API knows (a feature, a level, a visibility) as its type.
fn named<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_owned())).ok()
}

/// `user:<email>=run,traces` as the API's grant object.
fn automation_grant(spec: &str) -> anyhow::Result<AutomationGrant> {
    let usage = || {
        anyhow::anyhow!(
            "--grant takes user:<email>=<permissions> or role:<name>=<permissions>, e.g. --grant user:ana@acme.example=run,traces (got {spec:?})"
        )
    };
    let (who, perms) = spec.split_once('=').ok_or_else(usage)?;
    let (kind, name) = who.split_once(':').ok_or_else(usage)?;
    let permissions = perms
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            AutomationPermission::parse(p).with_context(|| {
                let known: Vec<&str> = AutomationPermission::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .collect();
                format!(
                    "--grant: {p:?} is not a permission; use {}",
                    known.join(", ")
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (user, role) = match kind {
        "user" => (Some(name.to_owned()), None),
        "role" => (None, Some(name.to_owned())),
        _ => return Err(usage()),
    };
    Ok(AutomationGrant {
        user,
        role,
        permissions,
    })
}

pub async fn automation_permissions(
    api: &Client,
    args: AutomationPermissionArgs,
) -> anyhow::Result<ExitCode> {
    let changes = args.visibility.is_some()
        || !args.users.is_empty()
        || !args.roles.is_empty()
        || !args.grants.is_empty();
    if !changes {
        print(&api.automation_permissions(&args.automation).await?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let visibility = match args.visibility.as_deref() {
        None => Visibility::Public,
        Some(v) => {
            named(v).with_context(|| format!("--visibility takes public or private (got {v:?})"))?
        }
    };
    let grants = args
        .grants
        .iter()
        .map(|g| automation_grant(g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = AutomationPermissions {
        visibility,
        whitelist: Principals {
            users: args.users,
            roles: args.roles,
        },
        grants,
    };
    print(
        &api.set_automation_permissions(&args.automation, &body)
            .await?,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `feature=level` pairs as the grants the API takes.
fn grants(pairs: &[String]) -> anyhow::Result<BTreeMap<Feature, Level>> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        let Some((feature, level)) = pair.split_once('=') else {
            bail!(
                "--grant takes FEATURE=LEVEL, e.g. --grant secret_providers=manage (got {pair:?})"
            );
        };
        let feature: Feature = named(feature).with_context(|| {
            let known: Vec<&str> = Feature::ALL.iter().map(|f| f.as_str()).collect();
            format!(
                "--grant: {feature:?} is not a feature; use {}",
                known.join(", ")
            )
        })?;
        let level: Level = named(level).with_context(|| {
            format!("--grant: {level:?} is not a level; use none, read, write or manage")
        })?;
        map.insert(feature, level);
    }
    Ok(map)
}

const ROLE_SHOWN: &[&str] = &[
    "id",
    "name",
    "description",
    "predefined",
    "members",
    "grants",
];

pub async fn role(args: RoleArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        RoleCommand::List(out) => print_list(
            &api.roles().await?,
            &["name", "predefined", "members", "description"],
            out.output,
        )?,
        RoleCommand::Show { role, out } => {
            print_one(&api.role(&role).await?, ROLE_SHOWN, out.output)?
        }
        RoleCommand::Create {
            name,
            description,
            grants: pairs,
        } => {
            let body = CreateRole {
                name,
                description,
                grants: grants(&pairs)?,
            };
            print(&api.create_role(&body).await?)?;
        }
        RoleCommand::Update {
            role,
            name,
            description,
            grants: pairs,
        } => {
            let body = UpdateRole {
                name,
                description,
                grants: if pairs.is_empty() {
                    None
                } else {
                    Some(grants(&pairs)?)
                },
            };
            print(&api.update_role(&role, &body).await?)?;
        }
        RoleCommand::Delete { role, reassign_to } => {
            api.delete_role(&role, reassign_to.as_deref()).await?;
            match reassign_to {
                Some(target) => println!("deleted role {role}; its members now hold {target}"),
                None => println!("deleted role {role}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn member(args: MemberArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        MemberCommand::List(out) => print_list(
            &api.members().await?,
            &["email", "role", "user_id"],
            out.output,
        )?,
        MemberCommand::Add { email, role } => {
            print(&api.add_member(&AddMember { email, role }).await?)?
        }
        MemberCommand::SetRole { member, role } => print(
            &api.set_member_role(&member, &SetMemberRole { role })
                .await?,
        )?,
        MemberCommand::Remove { member } => {
            api.remove_member(&member).await?;
            println!("removed {member} from the organization");
        }
    }
    Ok(ExitCode::SUCCESS)
}
