//! `keyward token`: your personal access tokens (kwp_…) over the API, and how any new token is
//! shown: once, on stdout alone, with the explanation on stderr.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use keyward_core::api::v1::{CreateToken, TokenCreated, TokenInfo};
use time::format_description::well_known::Rfc3339;

use super::admin::{client, print, print_list};
use crate::common_args::{ApiArgs, ListOutput, Output, parse_duration};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token; it is printed once, on stdout, and never again.
    Create(TokenCreateArgs),
    /// Your tokens (never their secrets).
    List(ListOutput),
    /// Revoke one of your tokens by its id: it stops working at once.
    Revoke {
        /// The token's id (see `keyward token list`).
        token_id: String,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token is for.
    #[arg(long)]
    pub name: String,
    /// Lifetime: 90s, 15m, 24h, 30d (a personal token must expire; the server caps it).
    #[arg(long, value_parser = parse_duration)]
    pub expires_in: Option<i64>,
    /// text (the token alone on stdout) or json (the API's answer, token included).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

impl TokenCreateArgs {
    pub fn body(&self) -> anyhow::Result<CreateToken> {
        let expires_in = self
            .expires_in
            .map(u64::try_from)
            .transpose()
            .map_err(|_| anyhow::anyhow!("--expires-in must be positive"))?;
        Ok(CreateToken {
            name: self.name.clone(),
            expires_in,
        })
    }
}

/// A token's record, one line per token.
pub const TOKEN_COLUMNS: &[&str] = &[
    "id",
    "name",
    "prefix",
    "created_at",
    "expires_at",
    "revoked_at",
];

/// A new token: the secret alone on stdout (so `$(…)` captures it), what it is on stderr.
pub fn print_created(created: &TokenCreated, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print(created);
    }
    let expires = created
        .info
        .expires_at
        .map(|t| format!("expires {}", t.format(&Rfc3339).unwrap_or_default()))
        .unwrap_or_else(|| "does not expire".into());
    eprintln!(
        "Created token '{}' (id {}, {expires}). This is the only time it is shown: store it now.",
        created.info.name, created.info.id
    );
    println!("{}", created.token);
    Ok(())
}

pub fn print_revoked(info: &TokenInfo) {
    println!("revoked token '{}' ({})", info.name, info.id);
}

pub async fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let api = client(&args.api)?;
    match args.command {
        TokenCommand::Create(token) => {
            print_created(&api.create_token(&token.body()?).await?, token.output)?
        }
        TokenCommand::List(out) => print_list(&api.tokens().await?, TOKEN_COLUMNS, out.output)?,
        TokenCommand::Revoke { token_id } => print_revoked(&api.revoke_token(&token_id).await?),
    }
    Ok(ExitCode::SUCCESS)
}
