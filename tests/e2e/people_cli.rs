//! The people's CLI against a `local`-mode server: `keyward configure`, `login` (device flow,
//! approved with a personal access token), the token kept in a 0600 file when no OS keyring
//! answers, `org list` with it, `logout`, and `config set` validation.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::people::local_options;

/// `keyward <args>` as a person at a terminal without a keyring, settings in `config_dir`.
fn people_cli(config_dir: &std::path::Path, server: Option<&Server>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.env("KEYWARD_CONFIG_DIR", config_dir)
        .env("HOME", config_dir)
        .env("XDG_RUNTIME_DIR", config_dir)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("KEYWARD_CREDENTIAL_STORE");
    if let Some(ca) = server.and_then(|s| s.ca_file.as_ref()) {
        cmd.env("KEYWARD_CA_FILE", ca);
    }
    cmd
}

fn run(cmd: &mut Command, args: &[&str]) -> (bool, String, String) {
    let out = cmd.args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn keyward_login_keeps_the_token_in_a_private_file_and_org_list_uses_it() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    let org = org_id(&server);
    let home = tempfile::tempdir().unwrap();

    let (ok, out, err) = run(
        &mut people_cli(home.path(), Some(&server)),
        &["configure", &server.url],
    );
    assert!(ok, "{out}{err}");
    let (ok, listing, err) = run(&mut people_cli(home.path(), None), &["config", "list"]);
    assert!(ok, "{err}");
    assert!(listing.contains("oauth2_provider = workos"), "{listing}");
    assert!(
        listing.contains("oauth2_client_id = keyward-cli"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("enterprise_base_url = {}", server.url)),
        "{listing}"
    );

    let mut login = people_cli(home.path(), Some(&server))
        .arg("login")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(login.stdout.take().unwrap()).lines();
    let mut shown = Vec::new();
    let user_code = loop {
        let line = lines.next().expect("login printed no code").unwrap();
        shown.push(line.clone());
        if let Some(code) = line.strip_prefix("2. Enter the code: ") {
            break code.to_owned();
        }
    };
    assert!(
        shown
            .iter()
            .any(|l| l.contains(&format!("{}/device?user_code=", server.url))),
        "{shown:?}"
    );
    let (status, body) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/device/approve", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"user_code": user_code})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..300 {
            if let Some(status) = login.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = login.kill();
        panic!("keyward login did not finish within 30 s of approval");
    })
    .await
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{shown:?} {rest:?}");
    let text = rest.join("\n");
    assert!(text.contains("(mode 0600)"), "{text}");
    assert!(
        text.contains(&format!("Organization: Acme ({org})")),
        "{text}"
    );

    let file = home.path().join("credentials.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let access = stored["access_token"].as_str().unwrap();
    assert!(stored["expires_at"].as_i64().unwrap() > 0);
    // It is the server's own access token: the API takes it as this person's bearer.
    let (status, _) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/orgs", server.url),
        Some(access),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (ok, out, err) = run(
        &mut people_cli(home.path(), Some(&server)),
        &["org", "list"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("* Acme  {org}"));

    let (ok, _, err) = run(&mut people_cli(home.path(), Some(&server)), &["logout"]);
    assert!(ok, "{err}");
    assert!(!file.exists());
    let (ok, _, err) = run(
        &mut people_cli(home.path(), Some(&server)),
        &["org", "list"],
    );
    assert!(!ok);
    assert!(err.contains("not signed in: run `keyward login`"), "{err}");
}

#[test]
fn config_set_refuses_invalid_values_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    for (key, value, says) in [
        (
            "oauth2_provider",
            "ldap",
            "use one of workos, okta, auth0, entra_id, keycloak",
        ),
        (
            "enterprise_base_url",
            "http://keyward.example.com",
            "must use https://",
        ),
        ("oauth2_domain", "http://acme.okta.com", "is not a domain"),
        ("org_uuid", "42", "is not an organization UUID"),
        ("oauth2_extra", "[1]", "is not a JSON object"),
        ("oauth2_client_id", "two words", "is not a valid client id"),
        (
            "colour",
            "blue",
            "the settings are enterprise_base_url, oauth2_provider",
        ),
    ] {
        let (ok, _, err) = run(
            &mut people_cli(home.path(), None),
            &["config", "set", key, value],
        );
        assert!(!ok, "{key}={value} was accepted");
        assert!(err.contains(says), "{key}={value}: {err}");
    }
    assert!(
        !home.path().join("settings.json").exists(),
        "a refused value was written"
    );
    let (ok, out, err) = run(
        &mut people_cli(home.path(), None),
        &["config", "set", "oauth2_domain", "https://acme.okta.com/"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "oauth2_domain = acme.okta.com");
    let (_, out, _) = run(&mut people_cli(home.path(), None), &["config", "list"]);
    assert!(
        out.contains("oauth2_domain = acme.okta.com") && out.contains("org_uuid = (not set)"),
        "{out}"
    );
    let (ok, _, _) = run(&mut people_cli(home.path(), None), &["config", "reset"]);
    assert!(ok);
    let (_, out, _) = run(&mut people_cli(home.path(), None), &["config", "list"]);
    assert!(out.contains("oauth2_domain = (not set)"), "{out}");
}
