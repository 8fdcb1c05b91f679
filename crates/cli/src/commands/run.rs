//! `keyward run`: one kickoff around a command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use keyward_core::endpoints::EndpointsFile;
use keyward_runtime::{AgentOptions, Platform, RunOptions};

use crate::common_args::PlatformArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The automation the token belongs to (checked against the server's answer).
    #[arg(long)]
    pub automation: Option<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Do not rewrite token files while the command runs (for testing what refresh prevents).
    #[arg(long, env = "KEYWARD_NO_REFRESH", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    pub no_refresh: bool,
    /// Log each step (token minted, files written, refreshes) on stderr; warnings only otherwise.
    #[arg(short, long)]
    pub verbose: bool,
    /// Seconds the kickoff waits for the clouds (token exchanges and secret reads, retries
    /// included) before it gives up without starting the command.
    #[arg(long, env = "KEYWARD_KICKOFF_DEADLINE", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub deadline: u64,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The automation the token belongs to (checked against the server's answer).
    #[arg(long)]
    pub automation: Option<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Directory for the token files (created 0700; must not exist). A fresh tmpfs one if unset.
    #[arg(long, env = "KEYWARD_AGENT_DIR")]
    pub dir: Option<PathBuf>,
    /// Where to write the KEY=VALUE lines a worker exports for its kickoffs (0600).
    #[arg(long, env = "KEYWARD_AGENT_ENV_FILE")]
    pub env_file: Option<PathBuf>,
}

pub(crate) fn platform(args: &PlatformArgs) -> anyhow::Result<Platform> {
    let token = super::token_input::resolve(
        args.token.as_deref(),
        args.token_file.as_deref(),
        "KEYWARD_AUTOMATION_TOKEN",
    )?;
    super::token_input::warn_if_cleartext(&args.url);
    Ok(Platform::new(
        &args.url,
        token.as_deref().unwrap_or_default(),
        args.ca_file.as_deref(),
    )?)
}

pub(crate) fn endpoints(args: &PlatformArgs) -> anyhow::Result<Option<EndpointsFile>> {
    let Some(path) = &args.cloud_endpoints else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read KEYWARD_CLOUD_ENDPOINTS {}", path.display()))?;
    let file = EndpointsFile::from_json(&text).with_context(|| {
        format!(
            "KEYWARD_CLOUD_ENDPOINTS {} is not an endpoints file",
            path.display()
        )
    })?;
    Ok(Some(file))
}

/// Plain lines on stderr (the child owns stdout): `keyward run` is used by people and workers.
/// `default` applies unless KEYWARD_LOG says otherwise; colour only when stderr is a terminal, so
/// a log file or a pipe gets no escape codes.
pub(crate) fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Quiet by default: the child's output is what the person reads.
    init_logging(if args.verbose { "info" } else { "warn" });
    let platform = platform(&args.platform)?;
    let options = RunOptions {
        automation: args.automation,
        command: args.command,
        refresh: !args.no_refresh,
        endpoints: endpoints(&args.platform)?,
        deadline: std::time::Duration::from_secs(args.deadline),
    };
    match keyward_runtime::run(&platform, options).await {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1)))
        }
    }
}

pub async fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    init_logging("info");
    let platform = platform(&args.platform)?;
    let options = AgentOptions {
        automation: args.automation,
        dir: args.dir,
        env_file: args.env_file,
        endpoints: endpoints(&args.platform)?,
    };
    keyward_runtime::agent(&platform, options).await?;
    Ok(ExitCode::SUCCESS)
}
