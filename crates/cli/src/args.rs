//! The command line: `keyward <command>`. Each command's arguments live with the command;
//! the groups several share are in `common_args`. Every server setting is a flag and the
//! same-named environment variable.

use clap::{Parser, Subcommand};

use crate::commands::{
    approval, audit, automations, cloudsim, doctor, env, gateway, keys, llm, master_key, people,
    rbac, run, secrets, serve, session, tokens, wi,
};
use crate::common_args::PeopleArgs;

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "Identity and access plane for AI-agent platforms"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: HTTPS API, workload OIDC issuer, audit log.
    Serve(Box<serve::ServeArgs>),
    /// Inspect or rotate the issuer's signing keys (works on the database directly).
    Keys(keys::KeysArgs),
    /// Work with the audit log: verify the chain (on the database directly) or list events (over the API).
    Audit(audit::AuditArgs),
    /// Operator tasks on the database directly, servers stopped (master-key rotation).
    Admin(master_key::AdminArgs),
    /// Run the gateway: an enforcing reverse proxy (identity, Cedar policy, credential injection,
    /// streaming, audit) in front of LLM APIs, MCP servers and internal APIs.
    Gateway(Box<gateway::GatewayArgs>),
    /// Run a local simulator of the GCP, Azure and AWS federation and secret endpoints.
    Cloudsim(Box<cloudsim::CloudsimArgs>),
    /// Run one kickoff: mint the automation's cloud identities, point the SDKs at them, and run
    /// the command with them (`keyward run --automation <name> -- <command>`).
    Run(run::RunArgs),
    /// The kickoff runtime as a sidecar: keeps token files and an env file fresh for a worker.
    Agent(run::AgentArgs),
    /// Walk each of an automation's cloud identities step by step and print a checklist.
    Doctor(doctor::DoctorArgs),
    /// Workload identity configs: the cloud side of an automation's federated identity.
    Wi(wi::WiArgs),
    /// LLM connections: provider, workload identity, service account, env and model.
    Llm(llm::LlmArgs),
    /// Secret provider credentials: where secrets live and how Keyward reaches them.
    SecretProvider(secrets::SecretProviderArgs),
    /// Environment variables and their assignment to automations.
    Env(env::EnvArgs),
    /// Automations and their tokens; redeploy resolves static-backed values anew.
    Automation(automations::AutomationArgs),
    /// Your personal access tokens (kwp_…).
    Token(tokens::TokenArgs),
    /// Sign in through the device flow of the configured identity provider (`keyward configure` first).
    Login(PeopleArgs),
    /// Forget the stored access token.
    Logout(PeopleArgs),
    /// Set the CLI up from a Keyward server's /auth/parameters.
    Configure(people::ConfigureArgs),
    /// Show, change or reset the CLI settings (the CrewAI CLI's keys).
    Config(people::ConfigArgs),
    /// Your organizations: list them, or choose the one commands act in.
    Org(people::OrgArgs),
    /// Roles: Owner and Member, and custom roles with a level per feature.
    Role(rbac::RoleArgs),
    /// Members of the organization and their roles.
    Member(rbac::MemberArgs),
    /// Just-in-time approvals of the gateway: list, show, approve, deny, revoke.
    Approval(approval::ApprovalArgs),
    /// Recorded gateway sessions: list, show, replay, verify.
    Session(session::SessionArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every option and positional of every command, with the path to it, that has no help line.
    fn undocumented(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    #[test]
    fn every_option_has_a_help_line() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "keyward", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:#?}");
    }

    #[test]
    fn the_connection_options_are_grouped_apart_from_the_commands_own() {
        let mut cli = Cli::command();
        // Global options reach the subcommands when the tree is built.
        cli.build();
        let list = cli
            .find_subcommand("automation")
            .and_then(|c| c.find_subcommand("list"))
            .unwrap();
        for id in ["url", "token", "token_file", "ca_file", "org"] {
            let arg = list
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(arg.get_help_heading(), Some("Connection options"), "{id}");
        }
    }

    #[test]
    fn default_has_one_shape_in_create_and_update() {
        for line in [
            "keyward wi create --name a --cloud gcp --default",
            "keyward wi create --name a --cloud gcp --default false",
            "keyward wi update a --default",
            "keyward wi update a --default false",
            "keyward secret-provider update a --default",
            "keyward secret-provider update a --default true",
        ] {
            let parsed = Cli::try_parse_from(line.split(' '));
            assert!(parsed.is_ok(), "{line}: {}", parsed.unwrap_err());
        }
    }
}
