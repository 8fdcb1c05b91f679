//! `keyward doctor`: the kickoff chain, step by step.

use std::process::ExitCode;

use clap::Args;
use keyward_cloud::Clouds;
use keyward_runtime::doctor;

use super::run::{endpoints, init_logging, platform};

/// Said first when no endpoints file is given: a newcomer with the simulator running expects it.
const REAL_CLOUDS: &str = "Cloud endpoints: the real clouds (sts.googleapis.com, login.microsoftonline.com, sts.amazonaws.com); set KEYWARD_CLOUD_ENDPOINTS to the simulator's endpoints file to use the simulator";
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
    // A line per retry of a cloud call, so a slow failure shows progress; nothing else.
    init_logging("warn,keyward_cloud=info");
    let platform = platform(&args.platform)?;
    let clouds = match endpoints(&args.platform)? {
        Some(file) => Clouds::new(file)?,
        None => {
            println!("{REAL_CLOUDS}");
            Clouds::real()?
        }
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
