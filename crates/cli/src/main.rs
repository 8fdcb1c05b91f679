//! The `keyward` binary: argument parsing and wiring only.

mod args;
mod commands;
mod common_args;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// Thread-local free lists instead of glibc's arenas: the gateway and the API server allocate
/// small objects on every request (see bench/README.md for what it changed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits its arena eagerly, and where the kernel backs anonymous memory with
/// transparent huge pages always (Debian's default) each first touch makes 2 MB resident: 16 MB
/// of an idle `serve`'s 39 MB. `serve` idles most of its life, so it keeps to small pages (28 MB
/// idle, bench/ops.sh); the gateway keeps huge pages, which are worth about a tenth of its CPU
/// per request under load (bench/gateway.sh).
fn small_pages_only() {
    // SAFETY: prctl with integer arguments changes only this process's paging policy.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0)
    };
}

fn main() -> ExitCode {
    install_crypto_providers();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        small_pages_only();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(*args).await,
            Command::Keys(args) => commands::keys::run(args).await,
            Command::Audit(args) => commands::audit::run(args).await,
            Command::Admin(args) => commands::master_key::run(args).await,
            Command::Gateway(args) => commands::gateway::run(*args).await,
            Command::Cloudsim(args) => commands::cloudsim::run(*args).await,
            Command::Run(args) => commands::run::run(args).await,
            Command::Agent(args) => commands::run::agent(args).await,
            Command::Doctor(args) => commands::doctor::run(args).await,
            Command::Wi(args) => commands::wi::run(args).await,
            Command::Llm(args) => commands::llm::run(args).await,
            Command::SecretProvider(args) => commands::secrets::provider(args).await,
            Command::Env(args) => commands::env::run(args).await,
            Command::Automation(args) => commands::automations::run(args).await,
            Command::Token(args) => commands::tokens::run(args).await,
            Command::Login(args) => commands::people::login(args).await,
            Command::Logout(_) => commands::people::logout(),
            Command::Configure(args) => commands::people::configure(args).await,
            Command::Config(args) => commands::people::config(args),
            Command::Org(args) => commands::people::org(args).await,
            Command::Role(args) => commands::rbac::role(args).await,
            Command::Member(args) => commands::rbac::member(args).await,
            Command::Approval(args) => commands::approval::run(args).await,
            Command::Session(args) => commands::session::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// rustls and jsonwebtoken each need a process-wide crypto provider; with only aws-lc-rs in the
/// build, install it explicitly so neither has to guess.
fn install_crypto_providers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}
