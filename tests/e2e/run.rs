//! `keyward run` (SPEC §5) against `keyward serve` and the demo cloudsim world: the child's
//! environment, the private token directory and its files, exit codes, signals, and cleanup.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::cloudsim::server_and_sim;
use crate::cloudsim_env::Sim;
use crate::common::{self, Server};

/// The demo world's three identities as default configs, and a Vertex connection for `crew`.
pub async fn configure(server: &Server, sim: &Sim) {
    let gcp = sim.endpoints.gcp.clone().unwrap();
    let azure = sim.endpoints.azure.clone().unwrap();
    let aws = sim.endpoints.aws.clone().unwrap();
    common::create_as_owner(
        server,
        "/workload-identity-configs",
        json!({"name": "gcp", "cloud": "gcp",
        "provider": gcp.provider, "default_for_cloud": true}),
    )
    .await;
    common::create_as_owner(
        server,
        "/workload-identity-configs",
        json!({"name": "azure", "cloud": "azure",
        "tenant_id": azure.tenant_id, "client_id": azure.client_id, "default_for_cloud": true}),
    )
    .await;
    common::create_as_owner(
        server,
        "/workload-identity-configs",
        json!({"name": "aws", "cloud": "aws",
        "role_arn": aws.role_arn, "region": aws.region, "default_for_cloud": true}),
    )
    .await;
    common::create_as_owner(
        server,
        "/llm-connections",
        json!({"name": "vertex", "provider": "vertex",
        "workload_identity_config": "gcp", "service_account_email": gcp.service_account,
        "model": "google/gemini-2.0-flash", "env": {"GOOGLE_CLOUD_LOCATION": "global"},
        "automations": ["crew"]}),
    )
    .await;
}

/// `keyward run` for `token`, pointed at the simulator.
pub fn run_command(server: &Server, sim: &Sim, token: &str, child: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["run", "--automation", "crew", "--"])
        .args(child)
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_CLOUD_ENDPOINTS", &sim.endpoints_path)
        .env("KEYWARD_LOG", "warn")
        .env("GOOGLE_API_KEY", "AIza-from-the-parent")
        .env("AWS_ACCESS_KEY_ID", "AKIA-from-the-parent");
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn run_gives_the_child_private_token_files_and_the_sdk_environment_then_cleans_up() {
    let (server, token, sim, _dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;

    // The child reports what it sees, then exits 7.
    let out = run_command(&server, &sim, &token, &["sh", "-c", "env; exit 7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the child's exit code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env: std::collections::BTreeMap<&str, &str> =
        stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let gcp = sim.endpoints.gcp.as_ref().unwrap();
    assert_eq!(
        env.get("GOOGLE_CLOUD_PROJECT").copied(),
        gcp.project_number.as_deref()
    );
    assert_eq!(env.get("GOOGLE_CLOUD_LOCATION"), Some(&"global"));
    assert!(
        !env.contains_key("GOOGLE_API_KEY"),
        "no API key reaches the child"
    );
    assert!(
        !env.contains_key("AWS_ACCESS_KEY_ID"),
        "no static AWS key reaches the child"
    );
    assert!(
        !env.contains_key("KEYWARD_AUTOMATION_TOKEN"),
        "the automation token stays with keyward run"
    );
    assert_eq!(
        env.get("AWS_ROLE_ARN").copied(),
        sim.endpoints.aws.as_ref().unwrap().role_arn.as_deref()
    );
    assert_eq!(
        env.get("AWS_ENDPOINT_URL_STS").copied(),
        Some(sim.base.as_str())
    );
    assert_eq!(
        env.get("AZURE_AUTHORITY_HOST").copied(),
        Some(sim.base.as_str())
    );
    assert!(env["SSL_CERT_FILE"].ends_with("ca-bundle.pem"));
    let token_dir = Path::new(env["AWS_WEB_IDENTITY_TOKEN_FILE"])
        .parent()
        .unwrap()
        .to_owned();
    assert!(
        !token_dir.exists(),
        "the token directory is removed after a normal exit"
    );
    drop(server);
}

#[tokio::test]
async fn files_are_0600_raw_jwts_in_a_0700_directory_and_go_away_on_sigterm_and_on_a_crash() {
    let (server, token, sim, _dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;

    // A child that prints where its files are and waits to be signalled.
    let script = r#"echo "$AWS_WEB_IDENTITY_TOKEN_FILE"; echo "$AZURE_FEDERATED_TOKEN_FILE"; echo "$GOOGLE_APPLICATION_CREDENTIALS"; exec sleep 60"#;
    let mut child = run_command(&server, &sim, &token, &["sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let files: Vec<PathBuf> = (0..3)
        .map(|_| PathBuf::from(lines.next().unwrap().unwrap()))
        .collect();
    let dir = files[0].parent().unwrap().to_owned();
    assert_eq!(mode(&dir), 0o700);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert_eq!(file.parent(), Some(dir.as_path()));
    }
    for jwt in &files[..2] {
        let bytes = std::fs::read(jwt).unwrap();
        assert_eq!(bytes.iter().filter(|&&b| b == b'.').count(), 2, "a JWT");
        assert!(
            !bytes.ends_with(b"\n") && bytes.starts_with(b"eyJ"),
            "raw, no trailing newline"
        );
    }
    let adc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[2]).unwrap()).unwrap();
    assert_eq!(adc["type"], json!("external_account"));
    assert_eq!(adc["token_url"], json!(format!("{}/v1/token", sim.base)));
    assert_eq!(adc["credential_source"]["format"]["type"], json!("text"));
    assert!(
        adc["service_account_impersonation_url"]
            .as_str()
            .unwrap()
            .ends_with(":generateAccessToken")
    );

    // SIGTERM to keyward run reaches the child; keyward run exits with its status and cleans up.
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    assert!(!dir.exists(), "removed after SIGTERM");

    // A child that crashes.
    let mut crashing = run_command(
        &server,
        &sim,
        &token,
        &[
            "sh",
            "-c",
            r#"echo "$AWS_WEB_IDENTITY_TOKEN_FILE"; kill -SEGV $$"#,
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(crashing.stdout.take().unwrap()).lines();
    let file = PathBuf::from(lines.next().unwrap().unwrap());
    let status = crashing.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGSEGV), "{status:?}");
    assert!(
        !file.parent().unwrap().exists(),
        "removed after the child crashed"
    );

    // A command that does not exist: 127, like a shell, and nothing left behind.
    let out = run_command(&server, &sim, &token, &["/nonexistent/crew"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run `/nonexistent/crew`"));

    // The token of another automation is named.
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["run", "--automation", "someone-else", "--", "true"])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", &token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("belongs to automation 'crew', not 'someone-else'")
    );
    drop(server);
}

/// A server minting 4-second tokens, an automation `crew` and a default AWS config.
async fn short_lived() -> (Server, String, tempfile::TempDir) {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = common::ServerOptions::new(&common::Backend::Sqlite, dir.path())
        .env("KEYWARD_ALLOW_SHORT_DURATIONS", "1")
        .env("KEYWARD_TOKEN_TTL", "4");
    let server = Server::start(&options);
    let (_, token) = common::automation_with_token(&server, "crew").await;
    common::create_as_owner(
        &server,
        "/workload-identity-configs",
        json!({"name": "aws", "cloud": "aws", "default_for_cloud": true,
        "role_arn": "arn:aws:iam::123456789012:role/crew", "region": "us-east-1"}),
    )
    .await;
    (server, token, dir)
}

fn runtime(server: &Server, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_LOG", "warn");
    cmd
}

#[tokio::test]
async fn token_files_are_rewritten_at_half_life_unless_refresh_is_off() {
    let (server, token, _dir) = short_lived().await;
    let read_twice = r#"cat "$AWS_WEB_IDENTITY_TOKEN_FILE"; echo; sleep 3; cat "$AWS_WEB_IDENTITY_TOKEN_FILE"; echo"#;
    for (flags, refreshed) in [
        (&["run", "--"][..], true),
        (&["run", "--no-refresh", "--"][..], false),
    ] {
        let out = runtime(&server, &token, flags)
            .args(["sh", "-c", read_twice])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tokens: Vec<&str> = stdout.lines().collect();
        assert_eq!(tokens.len(), 2, "{stdout}");
        assert!(tokens.iter().all(|t| t.starts_with("eyJ")), "{stdout}");
        assert_eq!(tokens[0] != tokens[1], refreshed, "{flags:?}: {stdout}");
    }
}

#[tokio::test]
async fn the_agent_keeps_token_and_env_files_fresh_and_removes_them_on_sigterm() {
    let (server, token, dir) = short_lived().await;
    let token_dir = dir.path().join("agent-tokens");
    let env_file = dir.path().join("crew.env");
    let mut agent = runtime(&server, &token, &["agent", "--automation", "crew"])
        .arg("--dir")
        .arg(&token_dir)
        .arg("--env-file")
        .arg(&env_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("Ready."), "{ready}");
    assert_eq!(mode(&token_dir), 0o700);
    assert_eq!(mode(&env_file), 0o600);
    let env = std::fs::read_to_string(&env_file).unwrap();
    let file = env
        .lines()
        .find_map(|l| l.strip_prefix("AWS_WEB_IDENTITY_TOKEN_FILE="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{env}"));
    assert!(
        env.contains("AWS_ROLE_ARN=arn:aws:iam::123456789012:role/crew\n"),
        "{env}"
    );
    assert!(!env.contains("KEYWARD_AUTOMATION_TOKEN"), "{env}");
    assert_eq!(file.parent(), Some(token_dir.as_path()));
    let first = std::fs::read(&file).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_ne!(
        std::fs::read(&file).unwrap(),
        first,
        "rewritten at half its 4 s life"
    );
    assert_eq!(mode(&file), 0o600);

    // SAFETY: signalling our own child process.
    unsafe { libc::kill(i32::try_from(agent.id()).unwrap(), libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    assert!(
        !token_dir.exists() && !env_file.exists(),
        "everything removed on SIGTERM"
    );

    // An existing directory is never taken over.
    std::fs::create_dir(&token_dir).unwrap();
    let out = runtime(&server, &token, &["agent"])
        .arg("--dir")
        .arg(&token_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create the private token directory")
    );
}
