//! `keyward doctor`: the kickoff chain, step by step.

use std::process::ExitCode;

use clap::Args;
use keyward_cloud::Clouds;
use keyward_runtime::doctor;

use super::run::{endpoints, platform};
use crate::common_args::PlatformArgs;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The automation the token belongs to (checked against the server's answer).
    #[arg(long)]
    pub automation: Option<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let platform = platform(&args.platform)?;
    let clouds = match endpoints(&args.platform)? {
        Some(file) => Clouds::new(file)?,
        None => Clouds::real()?,
    };
    let report = doctor::diagnose(&platform, &clouds, args.automation.as_deref()).await;
    print!("{}", report.render());
    if report.healthy() {
        println!("All checks passed.");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
