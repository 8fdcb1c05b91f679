//! The newcomer's first hour (issue 15): a setup link survives a typo, leftover bootstrap
//! variables are named instead of fatal, direct-database commands refuse a wrong directory.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

/// The one-time setup link's secret from the server's banner.
fn setup_secret(server: &Server) -> String {
    server
        .banner
        .iter()
        .find_map(|l| l.split_once("/setup#token=").map(|(_, s)| s.to_owned()))
        .expect("setup link printed")
}

/// An endpoints file sending AWS STS and Secrets Manager to `url`.
fn aws_endpoints(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let endpoints = dir.join("endpoints.json");
    std::fs::write(
        &endpoints,
        json!({"aws": {"sts_url": url, "secrets_manager_url": url}}).to_string(),
    )
    .unwrap();
    endpoints
}

/// A loopback URL nothing listens on: every connection is refused.
fn closed_port_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    format!("https://127.0.0.1:{port}")
}

/// An AWS workload identity config named `aws`.
async fn aws_identity(server: &Server, default: bool) {
    create_as_owner(
        server,
        "/workload-identity-configs",
        json!({"name": "aws", "cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/reader", "region": "us-east-1", "default_for_cloud": default}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_setup_form_keeps_the_link_usable() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, dir.path());
    options.bootstrap = false;
    let server = Server::start(&options);
    let secret = setup_secret(&server);
    let client = server.client();
    let setup = format!("{}/api/v1/setup", server.url);
    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": secret, "org_name": "Acme", "email": "not an email"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": secret, "org_name": "", "email": "me@acme.example"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A wrong link is logged with the client's address as a value, not a Rust debug string.
    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": "kws_wrong", "org_name": "Acme", "email": "me@acme.example"})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": secret, "org_name": "Acme", "email": "me@acme.example"})),
    )
    .await;
    assert_eq!(status, 201, "the link survives a refused form: {body}");
    // The server's stderr is collected by a reader thread: give it a moment to catch up.
    let mut log = server.stderr();
    for _ in 0..50 {
        if log.contains("invalid setup token") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log = server.stderr();
    }
    let line = log
        .lines()
        .find(|l| l.contains("invalid setup token"))
        .unwrap_or_else(|| panic!("the refused link is logged: {log}"));
    assert!(!line.contains("Some("), "{line}");
    // Text logs by default (`address="127.0.0.1"`), JSON with KEYWARD_LOG_FORMAT=json.
    assert!(
        [
            "address=\"127.0.0.1\"",
            "address=127.0.0.1",
            "\"address\":\"127.0.0.1\""
        ]
        .iter()
        .any(|form| line.contains(form)),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_variables_after_setup_are_named_on_the_console_and_a_leftover_is_not_fatal() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&Backend::Sqlite, dir.path());
    let server = Server::start(&options);
    assert!(
        !server.banner.iter().any(|l| l.contains("ignored")),
        "{:?}",
        server.banner
    );
    server.terminate();

    let server = Server::start(&options);
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("KEYWARD_BOOTSTRAP_* ignored"))
        .unwrap_or_else(|| panic!("no console line: {:?}", server.banner));
    assert!(line.contains("already has an owner"), "{line}");
    assert!(line.contains("--data-dir"), "{line}");
    server.terminate();

    // Only the token left in the environment: still starts, and says so.
    let mut lone = ServerOptions::new(&Backend::Sqlite, dir.path())
        .env("KEYWARD_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN);
    lone.bootstrap = false;
    let server = Server::try_start(&lone).expect("a leftover token must not stop the server");
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("KEYWARD_BOOTSTRAP_* ignored")),
        "{:?}",
        server.banner
    );
    server.terminate();

    // On an empty database the partial set is still refused, naming what is missing.
    let empty = tempfile::tempdir().unwrap();
    let mut fresh = ServerOptions::new(&Backend::Sqlite, empty.path())
        .env("KEYWARD_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN);
    fresh.bootstrap = false;
    let failure = Server::try_start(&fresh).err().expect("refused");
    assert!(
        failure.stderr.contains("KEYWARD_BOOTSTRAP_ORG"),
        "{}",
        failure.stderr
    );
}

#[test]
fn direct_database_commands_refuse_a_directory_without_a_database() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["audit", "verify"][..],
        &["keys", "list"][..],
        &["keys", "rotate"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .current_dir(cwd.path())
            .env_remove("KEYWARD_DATA_DIR")
            .env_remove("KEYWARD_DATABASE_URL")
            .env_remove("KEYWARD_MASTER_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("keyward-data"), "{args:?}: {stderr}");
        assert!(stderr.contains("--data-dir"), "{args:?}: {stderr}");
        assert!(stderr.contains("KEYWARD_DATA_DIR"), "{args:?}: {stderr}");
        assert!(
            !cwd.path().join("keyward-data").exists(),
            "{args:?} created a data directory"
        );
    }
    // A directory that exists but holds no database is refused the same way.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["audit", "verify", "--data-dir"])
        .arg(empty.path())
        .env_remove("KEYWARD_DATABASE_URL")
        .env_remove("KEYWARD_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keyward.db"));
    assert!(!empty.path().join("keyward.db").exists());
    assert!(!empty.path().join("master.key").exists());
}

/// `keyward <args>` as the bootstrap owner, with its own settings directory.
fn owner_cli(server: &Server, config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_TOKEN", BOOTSTRAP_TOKEN)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_CONFIG_DIR", config)
        .env_remove("KEYWARD_ORG")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn with_several_organizations_the_error_lists_them_and_a_default_can_be_set() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let first = org_id(&server);
    let second = create_as_owner(&server, "/orgs", json!({"name": "Second"})).await;
    let second = second["uuid"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/automations", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "organization_required");
    let message = body["message"].as_str().unwrap();
    for part in [
        "\"Acme\"",
        first.as_str(),
        "\"Second\"",
        second.as_str(),
        "X-Keyward-Organization-Id",
        "--org",
        "KEYWARD_ORG",
    ] {
        assert!(message.contains(part), "{part} missing: {message}");
    }

    let config = tempfile::tempdir().unwrap();
    let (ok, out) = owner_cli(&server, config.path(), &["automation", "list"]);
    assert!(!ok);
    assert!(out.contains(&second), "the CLI passes the list on: {out}");
    let (ok, out) = owner_cli(
        &server,
        config.path(),
        &["config", "set", "org_uuid", &second],
    );
    assert!(ok, "{out}");
    let (ok, out) = owner_cli(&server, config.path(), &["automation", "list"]);
    assert!(ok, "the default organization is used: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_names_an_unreachable_endpoint_and_says_which_endpoints_it_used() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = aws_endpoints(dir.path(), "https://nonexistent.invalid");
    let options = ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    aws_identity(&server, false).await;
    create_as_owner(
        &server,
        "/secret-providers",
        json!({"name": "aws", "provider": "aws_secrets_manager", "auth": "workload_identity", "workload_identity_config": "aws", "region": "us-east-1"}),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, result) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/secret-providers/aws/test", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "no retries on DNS"
    );
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["endpoints"], "simulated", "{result}");
    let failed = result["steps"].as_array().unwrap().last().unwrap().clone();
    let cause = failed["cause"].as_str().unwrap();
    assert!(cause.contains("could not be reached"), "{failed}");
    assert!(!cause.contains("throttling"), "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("DNS"), "{failed}");
    assert!(!message.contains("cause:"), "cause and fix once: {failed}");
}

fn runtime_cli(
    server: &Server,
    token: &str,
    endpoints: Option<&std::path::Path>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env_remove("KEYWARD_LOG")
        .env_remove("KEYWARD_CLOUD_ENDPOINTS");
    if let Some(path) = endpoints {
        cmd.env("KEYWARD_CLOUD_ENDPOINTS", path);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_an_unresolvable_endpoint_once_and_says_when_it_uses_the_real_clouds() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(
        &Backend::Sqlite,
        &dir.path().join("kw"),
    ));
    let (_, token) = automation_with_token(&server, "crew").await;
    aws_identity(&server, true).await;
    let endpoints = aws_endpoints(dir.path(), "https://nonexistent.invalid");
    let out = runtime_cli(&server, &token, Some(&endpoints), &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("could not be reached"), "{stdout}");
    assert!(stdout.contains("DNS"), "{stdout}");
    assert!(!stdout.contains("throttling"), "{stdout}");
    assert_eq!(stdout.matches("cause:").count(), 1, "cause once: {stdout}");
    assert_eq!(stdout.matches("fix:").count(), 1, "fix once: {stdout}");
    assert!(!stdout.contains("real clouds"), "{stdout}");
}

#[test]
fn doctor_without_endpoints_says_it_uses_the_real_clouds() {
    // Nothing listens on the URL: doctor fails at its first step, after naming the endpoints.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["doctor"])
        .env("KEYWARD_URL", "https://127.0.0.1:9")
        .env("KEYWARD_AUTOMATION_TOKEN", "kwa_x")
        .env_remove("KEYWARD_CLOUD_ENDPOINTS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("real clouds") && stdout.contains("set KEYWARD_CLOUD_ENDPOINTS"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_is_quiet_by_default_and_never_colours_a_pipe() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(
        &Backend::Sqlite,
        &dir.path().join("kw"),
    ));
    let (_, token) = automation_with_token(&server, "crew").await;
    // A default identity: run mints and writes its token, which it used to log at INFO.
    aws_identity(&server, true).await;
    let out = runtime_cli(&server, &token, None, &["run", "--", "sh", "-c", "echo hi"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(!out.stderr.contains(&0x1b), "no ANSI escapes: {stderr:?}");
    assert!(!stderr.contains("INFO"), "quiet by default: {stderr}");

    let out = runtime_cli(&server, &token, None, &["run", "-v", "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("INFO"), "-v shows the steps: {stderr}");
    assert!(!out.stderr.contains(&0x1b), "no ANSI escapes: {stderr:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_names_the_ca_file_once() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(
        &Backend::Sqlite,
        &dir.path().join("kw"),
    ));
    let (_, token) = automation_with_token(&server, "crew").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["run", "--", "true"])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", &token)
        .env_remove("KEYWARD_CA_FILE")
        .env_remove("KEYWARD_LOG")
        .env("SSL_CERT_FILE", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("tls/ca.pem"), "{stderr}");
    assert_eq!(
        stderr.matches("KEYWARD_CA_FILE").count(),
        1,
        "once: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_shows_progress_while_it_retries_an_endpoint_that_refuses_connections() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(
        &Backend::Sqlite,
        &dir.path().join("kw"),
    ));
    let (_, token) = automation_with_token(&server, "crew").await;
    aws_identity(&server, true).await;
    // A port nothing listens on: every attempt is refused, so doctor retries until its deadline.
    let endpoints = aws_endpoints(dir.path(), &closed_port_url());
    let out = runtime_cli(&server, &token, Some(&endpoints), &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.matches("retrying").count() >= 2,
        "a line per retry while it waits: {stderr}"
    );
    assert!(!stdout.contains("throttling"), "{stdout}");
    assert_eq!(stdout.matches("cause:").count(), 1, "cause once: {stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_setup_that_fails_in_the_database_keeps_the_link_usable() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, dir.path());
    options.bootstrap = false;
    let server = Server::start(&options);
    let secret = setup_secret(&server);
    let client = server.client();
    let setup = format!("{}/api/v1/setup", server.url);
    let form = json!({"setup_token": secret, "org_name": "Acme", "email": "me@acme.example"});
    // The owner's row cannot be written (after the link was consumed): the setup fails…
    exec_sql(
        &options,
        "CREATE TRIGGER no_users BEFORE INSERT ON users BEGIN SELECT RAISE(ABORT, 'disk trouble'); END",
    )
    .await;
    let (status, body) = call(&client, Method::POST, &setup, None, Some(form.clone())).await;
    assert_eq!(status, 500, "{body}");
    // …and once the database is fine again, the same link still works.
    exec_sql(&options, "DROP TRIGGER no_users").await;
    let (status, body) = call(&client, Method::POST, &setup, None, Some(form)).await;
    assert_eq!(status, 201, "the link survives a failed setup: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_variable_value_comes_from_stdin_or_a_file_instead_of_the_command_line() {
    use std::io::Write;
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(
        &Backend::Sqlite,
        &dir.path().join("kw"),
    ));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["env", "create", "FROM_STDIN", "--value-file", "-"])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_TOKEN", BOOTSTRAP_TOKEN)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped value\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "file value\n").unwrap();
    let (ok, _, err) = admin_cli(
        &server,
        &[
            "env",
            "create",
            "FROM_FILE",
            "--value-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let (ok, listing, err) = admin_cli(&server, &["env", "list", "--output", "json"]);
    assert!(ok, "{err}");
    let vars: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let value_of = |key: &str| {
        vars.as_array()
            .and_then(|all| all.iter().find(|v| v["key"] == key))
            .map(|v| v["value"].clone())
    };
    assert_eq!(
        value_of("FROM_STDIN"),
        Some(json!("piped value")),
        "{listing}"
    );
    assert_eq!(
        value_of("FROM_FILE"),
        Some(json!("file value")),
        "{listing}"
    );
    // Both at once is refused before any request.
    let (ok, _, err) = admin_cli(
        &server,
        &["env", "create", "BOTH", "--value", "x", "--value-file", "-"],
    );
    assert!(!ok && !err.is_empty(), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_shows_progress_while_test_connection_retries_a_refusing_endpoint() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the server retries each refused connection until its deadline.
    let endpoints = aws_endpoints(dir.path(), &closed_port_url());
    let options = ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    aws_identity(&server, false).await;
    create_as_owner(
        &server,
        "/secret-providers",
        json!({"name": "aws", "provider": "aws_secrets_manager", "auth": "workload_identity", "workload_identity_config": "aws", "region": "us-east-1"}),
    )
    .await;
    let (ok, out, err) = admin_cli(&server, &["secret-provider", "test", "aws"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("still testing 'aws'"),
        "progress while the server retries: {err}"
    );
    assert!(!out.contains("throttling"), "{out}");
}
