//! Command-line arguments. Every server setting is a flag and the same-named environment
//! variable.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};

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
    Serve(Box<ServeArgs>),
    /// Inspect or rotate the issuer's signing keys (works on the database directly).
    Keys(KeysArgs),
    /// Work with the audit log (works on the database directly).
    Audit(AuditArgs),
    /// Run a local simulator of the GCP, Azure and AWS federation and secret endpoints.
    Cloudsim(Box<CloudsimArgs>),
    /// Run one kickoff: mint the automation's cloud identities, point the SDKs at them, and run
    /// the command with them (`keyward run --automation <name> -- <command>`).
    Run(RunArgs),
    /// The kickoff runtime as a sidecar: keeps token files and an env file fresh for a worker.
    Agent(AgentArgs),
    /// Walk each of an automation's cloud identities step by step and print a checklist.
    Doctor(DoctorArgs),
    /// Workload identity configs: the cloud side of an automation's federated identity.
    Wi(WiArgs),
    /// LLM connections: provider, workload identity, service account, env and model.
    Llm(LlmArgs),
    /// Secret provider credentials: where secrets live and how Keyward reaches them.
    SecretProvider(SecretProviderArgs),
    /// Environment variables and their assignment to automations.
    Env(EnvArgs),
    /// Automations: redeploy resolves static-backed values anew.
    Automation(AutomationArgs),
    /// Sign in through the device flow of the configured identity provider (`keyward configure` first).
    Login(PeopleArgs),
    /// Forget the stored access token.
    Logout(PeopleArgs),
    /// Set the CLI up from a Keyward server's /auth/parameters.
    Configure(ConfigureArgs),
    /// Show, change or reset the CLI settings (the CrewAI CLI's keys).
    Config(ConfigArgs),
    /// Your organizations: list them, or choose the one commands act in.
    Org(OrgArgs),
    /// Roles: Owner and Member, and custom roles with a level per feature.
    Role(crate::commands::rbac::RoleArgs),
    /// Members of the organization and their roles.
    Member(crate::commands::rbac::MemberArgs),
}

/// How the people's CLI reaches Keyward and the identity provider.
#[derive(Debug, Clone, Args)]
pub struct PeopleArgs {
    /// A CA certificate to trust besides the system's (Keyward's generated keyward-data/tls/ca.pem).
    #[arg(long, env = "KEYWARD_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The Keyward server, e.g. https://keyward.example.com
    pub url: String,
    #[command(flatten)]
    pub people: PeopleArgs,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting.
    List,
    /// Validate and set one setting.
    Set { key: String, value: String },
    /// Forget every setting.
    Reset,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(flatten)]
    pub people: PeopleArgs,
    #[command(subcommand)]
    pub command: OrgCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// List your organizations (the current one is marked).
    List,
    /// Act in this organization from now on.
    Switch { org_uuid: String },
}

#[derive(Debug, Args)]
pub struct AutomationArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: AutomationCommand,
}

#[derive(Debug, Subcommand)]
pub enum AutomationCommand {
    /// Resolve the automation's static-backed values again (they are kept until the next redeploy).
    Redeploy { automation: String },
    /// Show who may see and act on an automation; with any flag, replace it all.
    Permissions(crate::commands::rbac::AutomationPermissionArgs),
}

#[derive(Debug, Args)]
pub struct SecretProviderArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: SecretProviderCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretProviderCommand {
    List,
    Show {
        credential: String,
    },
    /// Create a credential; `--static KEY=VALUE` (repeatable) for static credentials.
    Create(SecretProviderFields),
    /// Change a credential; absent flags keep their value, a blank `--static KEY=` keeps the stored one.
    Update {
        credential: String,
        #[command(flatten)]
        fields: SecretProviderUpdate,
    },
    Delete {
        credential: String,
    },
    /// Test Connection: the federation handshake, step by step.
    Test {
        credential: String,
        /// For a config with `subject = automation`: the automation to test as (default: the
        /// config's only listed automation).
        #[arg(long)]
        automation: Option<String>,
    },
    /// Secret names from the provider, by prefix.
    Secrets {
        credential: String,
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

#[derive(Debug, Args)]
pub struct SecretProviderFields {
    #[arg(long)]
    pub name: String,
    /// aws_secrets_manager, gcp_secret_manager or azure_key_vault.
    #[arg(long)]
    pub provider: String,
    /// workload_identity or static.
    #[arg(long)]
    pub auth: String,
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub vault_url: Option<String>,
    #[arg(long = "static", value_parser = parse_env_pair)]
    pub static_fields: Vec<(String, String)>,
    #[arg(long = "default")]
    pub default_for_provider: bool,
}

#[derive(Debug, Args)]
pub struct SecretProviderUpdate {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub auth: Option<String>,
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub vault_url: Option<String>,
    #[arg(long = "static", value_parser = parse_env_pair)]
    pub static_fields: Option<Vec<(String, String)>>,
    /// true or false.
    #[arg(long = "default")]
    pub default_for_provider: Option<bool>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    List,
    Show {
        key: String,
    },
    /// Create a variable: `--value` (with `--secret` to mask and seal it), or `--secret-name` with
    /// `--credential` or `--provider` (the provider's default credential).
    Create(EnvFields),
    /// Change a variable; a blank `--value ''` keeps the stored value.
    Update {
        key: String,
        #[command(flatten)]
        fields: EnvUpdate,
    },
    Delete {
        key: String,
    },
    /// Replace an automation's assigned variables.
    Assign {
        automation: String,
        /// Variable keys (or ids).
        keys: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct EnvFields {
    pub key: String,
    #[arg(long)]
    pub value: Option<String>,
    #[arg(long)]
    pub secret: bool,
    #[arg(long)]
    pub credential: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    /// `name` or `name#json_key`.
    #[arg(long)]
    pub secret_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnvUpdate {
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub value: Option<String>,
    /// true or false.
    #[arg(long)]
    pub secret: Option<bool>,
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub credential: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub secret_name: Option<String>,
}

/// How an administrator reaches Keyward's API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Keyward's URL.
    #[arg(
        long,
        env = "KEYWARD_URL",
        default_value = "https://127.0.0.1:8443",
        global = true
    )]
    pub url: String,
    /// A personal access token (kwp_…). Prefer KEYWARD_TOKEN or --token-file: a flag is
    /// visible in the process list.
    #[arg(long, env = "KEYWARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Read the personal access token from this file (`-`: from stdin).
    #[arg(long, env = "KEYWARD_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// A CA certificate to trust for Keyward's TLS (its generated keyward-data/tls/ca.pem).
    #[arg(long, env = "KEYWARD_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// The organization, when the token's owner belongs to several.
    #[arg(long, env = "KEYWARD_ORG", global = true)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct WiArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: WiCommand,
}

#[derive(Debug, Subcommand)]
pub enum WiCommand {
    /// List the organization's configs.
    List,
    /// Show one config (id or name).
    Show { config: String },
    /// Create a config.
    Create(WiFields),
    /// Change a config's fields (id or name); absent flags keep their value.
    Update {
        config: String,
        #[command(flatten)]
        fields: WiUpdateFields,
    },
    /// Delete a config (id or name).
    Delete { config: String },
}

#[derive(Debug, Args)]
pub struct WiFields {
    #[arg(long)]
    pub name: String,
    /// gcp, azure or aws.
    #[arg(long)]
    pub cloud: String,
    #[command(flatten)]
    pub cloud_fields: WiCloudFields,
    /// Make it the organization's default for its cloud.
    #[arg(long = "default")]
    pub default_for_cloud: bool,
    /// Restrict it to this automation (repeatable); none means every automation.
    #[arg(long = "automation")]
    pub automations: Vec<String>,
    /// The `sub` its tokens carry: organization (default) or automation
    /// (organization:<org>:automation:<id>, for a cloud trust that enforces the restriction).
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct WiCloudFields {
    /// GCP: projects/<PROJECT_NUMBER>/locations/global/workloadIdentityPools/<pool>/providers/<id>
    #[arg(long)]
    pub provider: Option<String>,
    /// Azure: the Directory (tenant) ID.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Azure: the Application (client) ID.
    #[arg(long)]
    pub client_id: Option<String>,
    /// AWS: arn:aws:iam::<account>:role/<name>
    #[arg(long)]
    pub role_arn: Option<String>,
    /// AWS: the region, e.g. us-east-1.
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct WiUpdateFields {
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub cloud_fields: WiCloudFields,
    /// true or false.
    #[arg(long = "default")]
    pub default_for_cloud: Option<bool>,
    /// Replace the restriction (repeatable); `--automation ''` clears it.
    #[arg(long = "automation")]
    pub automations: Option<Vec<String>>,
    /// organization or automation.
    #[arg(long)]
    pub subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct LlmArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: LlmCommand,
}

#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// List the organization's LLM connections.
    List,
    /// Show one connection (id or name).
    Show { connection: String },
    /// Create a connection.
    Create(LlmFields),
    /// Change a connection (id or name); absent flags keep their value, '' clears a text field.
    Update {
        connection: String,
        #[command(flatten)]
        fields: LlmUpdateFields,
    },
    /// Delete a connection (id or name).
    Delete { connection: String },
}

#[derive(Debug, Args)]
pub struct LlmFields {
    #[arg(long)]
    pub name: String,
    /// vertex, azure_openai, bedrock, openai, anthropic, …
    #[arg(long)]
    pub provider: String,
    /// A workload identity config of the provider's cloud (id or name).
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    /// Vertex: the service account to impersonate.
    #[arg(long = "service-account")]
    pub service_account_email: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// KEY=VALUE, repeatable (e.g. GOOGLE_CLOUD_LOCATION=global).
    #[arg(long = "env", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// An automation that uses it (repeatable).
    #[arg(long = "automation")]
    pub automations: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LlmUpdateFields {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long = "wi-config")]
    pub workload_identity_config: Option<String>,
    #[arg(long = "service-account")]
    pub service_account_email: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Replace the env (repeatable KEY=VALUE).
    #[arg(long = "env", value_parser = parse_env_pair)]
    pub env: Option<Vec<(String, String)>>,
    /// Replace the automations (repeatable).
    #[arg(long = "automation")]
    pub automations: Option<Vec<String>>,
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
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

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The automation the token belongs to (checked against the server's answer).
    #[arg(long)]
    pub automation: Option<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

/// How the runtime reaches Keyward as an automation.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// Keyward's URL.
    #[arg(long, env = "KEYWARD_URL", default_value = "https://127.0.0.1:8443")]
    pub url: String,
    /// The automation's token (kwa_…). Prefer KEYWARD_AUTOMATION_TOKEN or --token-file: a flag
    /// is visible in the process list.
    #[arg(long, env = "KEYWARD_AUTOMATION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the automation token from this file (`-`: from stdin).
    #[arg(long, env = "KEYWARD_AUTOMATION_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A CA certificate to trust for Keyward's TLS (its generated keyward-data/tls/ca.pem).
    #[arg(long, env = "KEYWARD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// An endpoints file (`keyward cloudsim --print-json`): the SDKs go there, not to the clouds.
    #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
    pub cloud_endpoints: Option<PathBuf>,
}

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
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Where the data lives; shared by every command that opens the database.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database, the master key file and generated TLS files.
    #[arg(long, env = "KEYWARD_DATA_DIR", default_value = "keyward-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user:pass@host/db); embedded SQLite when unset.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Base64 master key (32 bytes) for encryption at rest; otherwise <data-dir>/master.key.
    #[arg(long, env = "KEYWARD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// The key rotation schedule. Durations take s, m, h or d suffixes (plain numbers are seconds).
#[derive(Debug, Clone, Args)]
pub struct RotationArgs {
    /// Lifetime of minted workload tokens (300-3600 s).
    #[arg(long, env = "KEYWARD_TOKEN_TTL", value_parser = parse_duration)]
    pub token_ttl: Option<i64>,
    /// How long each signing key signs before the next takes over (default 30d).
    #[arg(long, env = "KEYWARD_KEY_ROTATION_INTERVAL", value_parser = parse_duration)]
    pub key_rotation_interval: Option<i64>,
    /// How long a new key is published before it signs (default and minimum 24h).
    #[arg(long, env = "KEYWARD_KEY_PUBLISH_LEAD", value_parser = parse_duration)]
    pub key_publish_lead: Option<i64>,
    /// The longest verifiers may cache the JWKS; caps Cache-Control max-age (default 1h).
    #[arg(long, env = "KEYWARD_JWKS_CACHE_AGE", value_parser = parse_duration)]
    pub jwks_cache_age: Option<i64>,
    /// Set when the server signs with an operator key (OIDC_PRIVATE_KEY): rotation is manual.
    #[arg(long, env = "OIDC_PRIVATE_KEY", hide_env_values = true, hide = true)]
    pub oidc_private_key: Option<String>,
    /// Allow durations below the production minimums (tests and demos only).
    #[arg(long, env = "KEYWARD_ALLOW_SHORT_DURATIONS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub allow_short_durations: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: String,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The URL people and clouds reach this server at (default: https://<listen address>).
    #[arg(long, env = "KEYWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, env = "KEYWARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KEYWARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy).
    #[arg(long, env = "KEYWARD_HTTP", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub http: bool,
    /// Issuer URL in workload tokens and discovery (default: the public URL).
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Headless first start: the organization to create.
    #[arg(long, env = "KEYWARD_BOOTSTRAP_ORG")]
    pub bootstrap_org: Option<String>,
    /// Headless first start: the owner's email.
    #[arg(long, env = "KEYWARD_BOOTSTRAP_ADMIN_EMAIL")]
    pub bootstrap_admin_email: Option<String>,
    /// Headless first start: the owner's personal access token (>= 32 characters), stored hashed.
    #[arg(long, env = "KEYWARD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// An endpoints file (`keyward cloudsim --print-json`): the server's cloud calls go there.
    #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
    pub cloud_endpoints: Option<PathBuf>,
    /// How long a CLI device login waits for approval (default 10m; AUTH_PROVIDER=local).
    #[arg(long, env = "KEYWARD_DEVICE_CODE_TTL", value_parser = parse_duration)]
    pub device_code_ttl: Option<i64>,
    /// The polling interval the device flow asks CLIs for (default 5s).
    #[arg(long, env = "KEYWARD_DEVICE_INTERVAL", value_parser = parse_duration)]
    pub device_interval: Option<i64>,
    /// Proxies whose X-Forwarded-For names the client, as IPs or CIDRs, comma-separated
    /// (default: none, the connecting address is the client).
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// The longest wait repeated failed sign-ins impose on an account or address (default 5m).
    #[arg(long, env = "KEYWARD_LOGIN_BACKOFF_MAX", value_parser = parse_duration)]
    pub login_backoff_max: Option<i64>,
    /// The longest lifetime a personal access token may be given (default 90d).
    #[arg(long, env = "KEYWARD_MAX_PAT_TTL", value_parser = parse_duration)]
    pub max_pat_ttl: Option<i64>,
    /// A file holding seconds to add to the server's clock; end-to-end tests move time with it.
    #[arg(long, env = "KEYWARD_TEST_CLOCK_FILE", hide = true)]
    pub test_clock_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every signing key with its phase.
    List {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        rotation: RotationArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish a successor key now; it signs after the publish lead.
    Rotate {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        rotation: RotationArgs,
        /// Sign with the new key at once (suspected compromise). Verifiers refetch the JWKS on
        /// the unknown kid; tokens of the old key stay valid until they expire.
        #[arg(long)]
        immediate: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; exits 1 and names the first broken event if it was altered.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// `90`, `90s`, `15m`, `24h`, `30d` → seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let value: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 24h or 30d"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}

/// `keyward cloudsim`: serve a simulated cloud side, or change a running one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CloudsimArgs {
    #[command(subcommand)]
    pub command: Option<CloudsimCommand>,
    /// State file (TOML) declaring the cloud side: pools, providers, apps, vaults, roles, secrets.
    #[arg(long, env = "KEYWARD_CLOUDSIM_STATE", conflicts_with = "demo")]
    pub state: Option<PathBuf>,
    /// Build a ready-made world for one organization (needs --issuer and --org).
    #[arg(long, requires_all = ["issuer", "org"])]
    pub demo: bool,
    /// The Keyward issuer URL the demo world trusts (as in its discovery document).
    #[arg(long)]
    pub issuer: Option<String>,
    /// The organization UUID the demo world's conditions and bindings name.
    #[arg(long)]
    pub org: Option<uuid::Uuid>,
    /// Make the demo world trust only this automation's finer subject
    /// (organization:<org>:automation:<uuid>), as for a config with `subject = automation`.
    #[arg(long, requires = "demo")]
    pub automation: Option<uuid::Uuid>,
    /// CA to trust when fetching the issuer's discovery and JWKS (Keyward's self-signed CA).
    #[arg(long, env = "KEYWARD_CLOUDSIM_ISSUER_CA")]
    pub issuer_ca: Option<PathBuf>,
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, env = "KEYWARD_CLOUDSIM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Directory for the simulator's CA (cloudsim-ca.pem; its key is 0600).
    #[arg(
        long,
        env = "KEYWARD_CLOUDSIM_DATA_DIR",
        default_value = "keyward-cloudsim"
    )]
    pub data_dir: PathBuf,
    /// Print the endpoints file (SPEC §10) as JSON on stdout once listening, and nothing else.
    #[arg(long)]
    pub print_json: bool,
    /// Also write the endpoints file here (atomically) once listening.
    #[arg(long)]
    pub write_endpoints: Option<PathBuf>,
    /// Print the simulator's CA certificate (PEM) and exit.
    #[arg(long, conflicts_with_all = ["demo", "state"])]
    pub print_ca: bool,
}

#[derive(Debug, Subcommand)]
pub enum CloudsimCommand {
    /// Change secrets of a running simulator.
    Secret {
        #[command(subcommand)]
        command: CloudsimSecretCommand,
    },
    /// Create a key for a declared GCP service account (the static-credentials path), like
    /// `gcloud iam service-accounts keys create`: writes the key file (0600).
    GcpKey {
        /// The endpoints file the simulator printed (KEYWARD_CLOUD_ENDPOINTS).
        #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
        endpoints: PathBuf,
        /// The service account, as declared in the state file.
        email: String,
        /// Where to write the key file (JSON, created 0600).
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CloudsimSecretCommand {
    /// Add a new version of a secret (creating it if needed); the next read sees it.
    Set {
        /// The endpoints file the simulator printed (KEYWARD_CLOUD_ENDPOINTS).
        #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
        endpoints: PathBuf,
        #[arg(long, value_parser = ["gcp", "azure", "aws"])]
        cloud: String,
        name: String,
        value: String,
    },
}
