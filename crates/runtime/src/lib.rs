//! The kickoff runtime (SPEC §5), shared by `keyward run` and `keyward agent`: ask Keyward for the
//! automation's kickoff plan, mint one token per cloud identity into a private directory, point
//! each cloud's SDK at it, run the command, keep the tokens fresh, and leave nothing behind.

pub mod doctor;
mod doctor_env;
mod doctor_report;
mod env;
mod exec;
mod files;
mod platform;
pub mod secrets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::api::v1::{KickoffIdentity, KickoffPlan};
use keyward_core::endpoints::EndpointsFile;
use tokio::task::JoinSet;

pub use env::{Paths, adc_json, child_env, token_file_name};
pub use files::TokenDir;
pub use platform::Platform;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Keyward's URL, the token or the CA file cannot be used.
    #[error("{0}")]
    Config(String),
    /// `KEYWARD_CLOUD_ENDPOINTS` or the clients built from it.
    #[error("{0}")]
    Clouds(keyward_cloud::CloudError),
    #[error(
        "the automation token belongs to automation '{token_for}', not '{expected}'; use that automation's token"
    )]
    WrongAutomation { token_for: String, expected: String },
    #[error("no command given: keyward run --automation <name> -- <command> [args…]")]
    NoCommand,
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    /// A task of ours panicked or was cancelled.
    #[error("{task} failed to run: {detail}")]
    TaskFailed { task: &'static str, detail: String },
    /// Values the agent's `KEY=VALUE` env file cannot hold.
    #[error(
        "cannot write the env file: the value of {} contains a line break or NUL byte, which a KEY=VALUE line cannot hold; make it a single line (the LLM connection's env)",
        .keys.join(", ")
    )]
    EnvFileLine { keys: Vec<String> },
    #[error("{url}: {}{message}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
    Platform {
        url: String,
        status: Option<u16>,
        message: String,
    },
    #[error("{}: {detail}", path.display())]
    Files { path: PathBuf, detail: String },
    #[error("cannot run `{program}`: {detail}")]
    Spawn { program: String, detail: String },
    /// Variables that did not resolve, a line per failure (one exchange that failed names all
    /// the variables of its identity); the command was not started.
    #[error(
        "the command was not started: these environment variables did not resolve:{}",
        .0.iter().map(|p| format!("\n  - {p}")).collect::<String>()
    )]
    Secrets(Vec<String>),
}

impl RuntimeError {
    /// The exit code a shell would give: 127 when the command cannot be started.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Spawn { .. } => 127,
            _ => 1,
        }
    }
}

pub struct RunOptions {
    /// When given, the automation the token must belong to.
    pub automation: Option<String>,
    pub command: Vec<String>,
    /// Rewrite token files at half their life while the command runs.
    pub refresh: bool,
    /// `KEYWARD_CLOUD_ENDPOINTS`: where the child's SDKs go instead of the real clouds.
    pub endpoints: Option<EndpointsFile>,
    /// How long the kickoff waits for the clouds, retries included
    /// ([`secrets::DEFAULT_DEADLINE`] unless `--deadline` says otherwise).
    pub deadline: Duration,
}

/// The clients' fix for a deadline that passed says "allow a longer deadline"; `keyward run`
/// says how, under the last variable that ran out of time.
fn with_deadline_hint(e: RuntimeError, deadline: Duration) -> RuntimeError {
    match e {
        RuntimeError::Secrets(mut problems) => {
            if let Some(last) = problems
                .iter_mut()
                .rev()
                .find(|p| p.contains(secrets::DEADLINE_PASSED))
            {
                last.push_str(&format!(
                    "\n  the clouds had {}s for this kickoff, retries included; to wait longer, pass `keyward run --deadline <seconds>` or set KEYWARD_KICKOFF_DEADLINE",
                    deadline.as_secs()
                ));
            }
            RuntimeError::Secrets(problems)
        }
        other => other,
    }
}

/// System CA bundles, so a combined bundle still trusts the real internet.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The token must belong to the automation the caller named, if it named one.
fn check_automation(plan: &KickoffPlan, expected: Option<&str>) -> Result<(), RuntimeError> {
    match expected {
        Some(expected) if expected != plan.automation.name => Err(RuntimeError::WrongAutomation {
            token_for: plan.automation.name.clone(),
            expected: expected.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// One kickoff: plan, tokens, environment, the command, cleanup. Returns the command's exit code.
pub async fn run(platform: &Platform, options: RunOptions) -> Result<i32, RuntimeError> {
    let plan = platform.kickoff().await?;
    check_automation(&plan, options.automation.as_deref())?;
    warn_withheld(&plan);
    // Every variable resolves before anything is written or started: no partial environment.
    let clouds = match &options.endpoints {
        Some(file) => keyward_cloud::Clouds::new(file.clone()),
        None => keyward_cloud::Clouds::real(),
    }
    .map_err(RuntimeError::Clouds)?;
    let values = secrets::resolve_within(platform, &clouds, &plan, options.deadline)
        .await
        .map_err(|e| with_deadline_hint(e, options.deadline))?;
    let dir = Arc::new(TokenDir::create()?);
    let (_, env) = prepare(
        platform,
        &plan,
        &dir,
        options.endpoints.as_ref(),
        std::env::vars().collect(),
        values
            .into_iter()
            .map(|(key, value)| (key, value.expose().to_owned()))
            .collect(),
    )
    .await?;
    nul_free(&env)?;
    let mut refreshers = if options.refresh {
        keep_fresh(platform, &dir, &plan)
    } else {
        JoinSet::new()
    };
    let code = exec::run_child(&options.command, env).await;
    refreshers.shutdown().await;
    drop(dir);
    code
}

pub struct AgentOptions {
    pub automation: Option<String>,
    /// Where token files go; created 0700, must not exist yet. A fresh tmpfs directory if absent.
    pub dir: Option<PathBuf>,
    /// Where to write the variables a worker should export for its kickoffs (KEY=VALUE lines).
    pub env_file: Option<PathBuf>,
    pub endpoints: Option<EndpointsFile>,
}

/// `keyward agent`: the runtime as a sidecar. Writes the token files, the ADC file and an env file
/// once, keeps the tokens fresh at half their life, and removes everything on SIGTERM or SIGINT.
pub async fn agent(platform: &Platform, options: AgentOptions) -> Result<(), RuntimeError> {
    let plan = platform.kickoff().await?;
    check_automation(&plan, options.automation.as_deref())?;
    warn_withheld(&plan);
    let dir = Arc::new(match &options.dir {
        Some(path) => TokenDir::create_at(path)?,
        None => TokenDir::create()?,
    });
    let (tokens, env) = prepare(
        platform,
        &plan,
        &dir,
        options.endpoints.as_ref(),
        Vec::new(),
        Vec::new(),
    )
    .await?;
    let lines = env_file_lines(&env)?;
    let env_path = match &options.env_file {
        Some(path) => {
            write_private(path, lines.as_bytes())?;
            path.clone()
        }
        None => dir.write("env", lines.as_bytes())?,
    };
    tracing::info!(
        "keyward agent ready: {} identit{} in {}; env in {}",
        tokens.len(),
        if tokens.len() == 1 { "y" } else { "ies" },
        dir.path().display(),
        env_path.display()
    );
    println!("Ready. env file: {}", env_path.display());
    let mut refreshers = keep_fresh(platform, &dir, &plan);
    wait_for_stop().await?;
    refreshers.shutdown().await;
    if options.env_file.is_some() {
        let _ = std::fs::remove_file(&env_path);
    }
    drop(dir);
    Ok(())
}

async fn wait_for_stop() -> Result<(), RuntimeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind| signal(kind).map_err(RuntimeError::Signals);
    let mut term = listen(SignalKind::terminate())?;
    let mut int = listen(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The reserved keys the server left out of the plan (H4), each named once per kickoff.
fn warn_withheld(plan: &KickoffPlan) {
    for line in &plan.withheld {
        tracing::warn!("{line}");
    }
}

/// No process environment can hold a NUL byte: say which variable has one rather than the
/// spawn's opaque `nul byte found in provided data` (trial B3).
fn nul_free(env: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
    let bad: Vec<String> = env
        .iter()
        .filter(|(_, v)| v.contains('\0'))
        .map(|(k, _)| {
            format!(
                "{k}: the value contains a NUL byte, which no process environment can hold; remove it from the variable, its secret or the LLM connection's env"
            )
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(RuntimeError::Secrets(bad))
    }
}

/// The agent's env file: `KEY=VALUE` lines. A value with a line break (or NUL) would add a line
/// of its own, setting another variable for the worker, so such a value is refused by name.
fn env_file_lines(env: &BTreeMap<String, String>) -> Result<String, RuntimeError> {
    let bad: Vec<String> = env
        .iter()
        .filter(|(k, v)| k.contains(['\0', '\n', '\r', '=']) || v.contains(['\0', '\n', '\r']))
        .map(|(k, _)| k.clone())
        .collect();
    if !bad.is_empty() {
        return Err(RuntimeError::EnvFileLine { keys: bad });
    }
    Ok(env.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
}

/// A 0600 file replaced atomically, outside the token directory (the worker's env file).
fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<(), RuntimeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("keyward-tmp");
    let fail = |detail: String| RuntimeError::Files {
        path: path.to_owned(),
        detail,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| fail(format!("cannot create: {e}")))?;
    file.write_all(contents)
        .map_err(|e| fail(format!("cannot write: {e}")))?;
    std::fs::rename(&temp, path).map_err(|e| fail(format!("cannot move into place: {e}")))
}

/// Tokens, the ADC file and the CA bundle in `dir`; the environment for `parent`.
async fn prepare(
    platform: &Platform,
    plan: &KickoffPlan,
    dir: &TokenDir,
    endpoints: Option<&EndpointsFile>,
    parent: Vec<(String, String)>,
    assigned: Vec<(String, String)>,
) -> Result<(BTreeMap<String, PathBuf>, BTreeMap<String, String>), RuntimeError> {
    let urls = endpoints.cloned().unwrap_or_default();
    let tokens = mint_all(platform, plan, dir).await?;
    let mut adc = None;
    if let Some(gcp) = plan.identities.iter().find(|i| i.cloud == "gcp")
        && let Some(token) = tokens.get("gcp")
    {
        let json = adc_json(gcp, token, &urls);
        adc = Some(dir.write("adc.json", json.to_string().as_bytes())?);
    }
    let ca_bundle = match (&urls.ca_file, endpoints) {
        (Some(ca), Some(_)) => Some(combined_bundle(dir, ca)?),
        _ => None,
    };
    let env = child_env(
        parent,
        plan,
        assigned,
        &Paths {
            tokens: &tokens,
            adc: adc.as_deref(),
            ca_bundle: ca_bundle.as_deref(),
        },
        endpoints,
    );
    Ok((tokens, env))
}

/// Mints every identity's token at once and writes each file.
async fn mint_all(
    platform: &Platform,
    plan: &KickoffPlan,
    dir: &TokenDir,
) -> Result<BTreeMap<String, PathBuf>, RuntimeError> {
    let mut minting = JoinSet::new();
    for identity in plan.identities.clone() {
        let platform = platform.clone();
        let kickoff = plan.kickoff_id.clone();
        minting.spawn(async move {
            let minted = platform.mint_once(identity.config_id, &kickoff).await;
            (identity, minted)
        });
    }
    let mut tokens = BTreeMap::new();
    while let Some(done) = minting.join_next().await {
        let (identity, minted) = done.map_err(|e| RuntimeError::TaskFailed {
            task: "a token mint",
            detail: e.to_string(),
        })?;
        let minted = minted.map_err(|e| match e {
            RuntimeError::Platform {
                url,
                status,
                message,
            } => RuntimeError::Platform {
                url,
                status,
                message: format!(
                    "minting a token for workload identity config '{}' ({}): {message}",
                    identity.config, identity.cloud
                ),
            },
            other => other,
        })?;
        let path = dir.write(&token_file_name(&identity), minted.token.as_bytes())?;
        tracing::info!(
            "Workload identity config '{}' ({}): token written for audience {}",
            identity.config,
            identity.cloud,
            minted.audience
        );
        tokens.insert(identity.cloud.clone(), path);
    }
    Ok(tokens)
}

/// One task per identity of the plan, rewriting its token file at half its life until shut down.
fn keep_fresh(platform: &Platform, dir: &Arc<TokenDir>, plan: &KickoffPlan) -> JoinSet<()> {
    let mut refreshers = JoinSet::new();
    for identity in plan.identities.clone() {
        refreshers.spawn(refresh(
            platform.clone(),
            dir.clone(),
            identity,
            plan.kickoff_id.clone(),
            plan.token_ttl,
        ));
    }
    refreshers
}

/// Rewrites one identity's token file at half its life, for as long as the command runs.
async fn refresh(
    platform: Platform,
    dir: Arc<TokenDir>,
    identity: KickoffIdentity,
    kickoff_id: String,
    ttl: i64,
) {
    let half = Duration::from_secs((ttl.max(2) / 2) as u64);
    let mut wait = half;
    loop {
        tokio::time::sleep(wait).await;
        let result = match platform.mint(identity.config_id, &kickoff_id).await {
            Ok(minted) => dir
                .write(&token_file_name(&identity), minted.token.as_bytes())
                .map(|_| ()),
            Err(e) => Err(e),
        };
        wait = match result {
            Ok(()) => {
                tracing::debug!(config = %identity.config, "token refreshed");
                half
            }
            Err(e) => {
                // The old token still has half its life: try again well before it ends.
                tracing::warn!(config = %identity.config, error = %e, "token refresh failed; retrying");
                (half / 8).max(Duration::from_secs(1))
            }
        };
    }
}

/// The system roots plus the simulator's CA, for SDKs that take a single bundle.
fn combined_bundle(dir: &TokenDir, ca_file: &str) -> Result<PathBuf, RuntimeError> {
    let extra = std::fs::read(ca_file).map_err(|e| RuntimeError::Files {
        path: PathBuf::from(ca_file),
        detail: format!("cannot read the endpoints file's ca_file: {e}"),
    })?;
    let mut bundle = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(&extra);
    dir.write("ca-bundle.pem", &bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_value_is_named_instead_of_failing_at_exec() {
        let env: BTreeMap<String, String> = [("OK", "fine"), ("NULVAL", "a\0b")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let err = nul_free(&env).unwrap_err().to_string();
        assert!(
            err.contains("NULVAL: the value contains a NUL byte"),
            "{err}"
        );
        assert!(!err.contains("OK"), "{err}");
        assert!(!err.contains("a\0b"), "the value stays out of the message");
        let pem: BTreeMap<String, String> =
            [("PEM".to_owned(), "-----BEGIN-----\nx\n".to_owned())].into();
        assert!(
            nul_free(&pem).is_ok(),
            "line breaks are fine in a process environment"
        );
    }

    #[test]
    fn each_failure_keeps_the_sentence_users_know() {
        let cases = [
            (
                RuntimeError::WrongAutomation {
                    token_for: "crew".into(),
                    expected: "other".into(),
                },
                "the automation token belongs to automation 'crew', not 'other'; use that automation's token",
            ),
            (
                RuntimeError::NoCommand,
                "no command given: keyward run --automation <name> -- <command> [args…]",
            ),
            (
                RuntimeError::Signals(std::io::Error::other("boom")),
                "cannot listen for signals: boom",
            ),
            (
                RuntimeError::TaskFailed {
                    task: "a token mint",
                    detail: "task 7 panicked".into(),
                },
                "a token mint failed to run: task 7 panicked",
            ),
        ];
        for (error, sentence) in cases {
            assert_eq!(error.to_string(), sentence);
            assert_eq!(error.exit_code(), 1);
        }
        let plan: KickoffPlan = serde_json::from_value(serde_json::json!({
            "kickoff_id": "k",
            "automation": {"id": "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b", "name": "crew"},
            "identities": [], "llm_connections": [], "token_ttl": 600
        }))
        .unwrap();
        assert!(check_automation(&plan, Some("crew")).is_ok());
        assert!(matches!(
            check_automation(&plan, Some("other")),
            Err(RuntimeError::WrongAutomation { .. })
        ));
    }

    #[test]
    fn a_line_break_cannot_add_a_line_to_the_agents_env_file() {
        let env: BTreeMap<String, String> = [
            ("AWS_REGION", "eu-west-1"),
            ("GOOGLE_CLOUD_LOCATION", "global\nLD_PRELOAD=/tmp/evil.so"),
            ("OTHER", "a\rb"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let err = env_file_lines(&env).unwrap_err().to_string();
        assert!(
            err.contains("GOOGLE_CLOUD_LOCATION")
                && err.contains("OTHER")
                && !err.contains("AWS_REGION"),
            "{err}"
        );
        assert!(
            !err.contains("evil"),
            "the value stays out of the message: {err}"
        );
        let clean: BTreeMap<String, String> = [
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "x y".to_owned()),
        ]
        .into();
        assert_eq!(env_file_lines(&clean).unwrap(), "A=1\nB=x y\n");
    }
}
