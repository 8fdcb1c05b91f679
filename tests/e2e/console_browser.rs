//! The web console in a real browser: a fresh `keyward serve` (no bootstrap, so the first-login
//! link is printed) driven by interop/console/run.mjs through playwright-core and Debian's
//! chromium. The runner creates the owner on the setup page and then runs every flow in
//! interop/console/flows/; screenshots of every page go to target/console-screenshots/ (or
//! `KEYWARD_SCREENSHOT_DIR`). Needs node, `npm ci --prefix interop/console` and chromium;
//! required under `KEYWARD_REQUIRE_INTEROP=1` (scripts/test), skipped otherwise.
//!
//! A second server is bootstrapped here instead (its organization id is known before the browser
//! starts), with `keyward cloudsim` behind its secret providers and a `keyward gateway` holding
//! POSTs for approval; the flows that declare `server = "bootstrapped"` run against it, the
//! owner signing in with a password.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::json;

use crate::cloudsim_env::{Sim, SimWorld, world};
use crate::common::*;
use crate::gateway_common::Upstream;
use crate::people::{PASSWORD, local_options, set_owner_password};
use crate::rbac::{open_store, person};

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/console")
}

fn chromium() -> PathBuf {
    std::env::var_os("KEYWARD_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether node, the runner's packages and chromium are here; without them the test fails
/// under `KEYWARD_REQUIRE_INTEROP=1` and is skipped otherwise.
fn browser_ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = console_dir()
        .join("node_modules/playwright-core/package.json")
        .exists();
    let browser = chromium().exists();
    if node && installed && browser {
        return true;
    }
    assert!(
        std::env::var_os("KEYWARD_REQUIRE_INTEROP").is_none(),
        "the console browser test needs node (found: {node}), `npm ci --prefix interop/console` \
         (done: {installed}) and Debian's chromium at {} (found: {browser}); scripts/test installs all three",
        chromium().display()
    );
    eprintln!(
        "skipping: node, interop/console/node_modules or chromium missing (apt-get install chromium; npm ci --prefix interop/console)"
    );
    false
}

/// Where the screenshots go: `KEYWARD_SCREENSHOT_DIR`, else the workspace's target directory.
fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEYWARD_SCREENSHOT_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

/// Runs `node interop/console/run.mjs` with `env` (plus chromium and the screenshot directory)
/// off the async runtime, so the test's own servers (the upstream) keep answering meanwhile.
async fn run_flows(env: Vec<(&'static str, String)>) -> Output {
    let runner = console_dir().join("run.mjs");
    let shots = screenshot_dir();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg(runner)
            .env("KEYWARD_SCREENSHOT_DIR", &shots)
            .env("KEYWARD_CHROMIUM", chromium());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run node interop/console/run.mjs")
    })
    .await
    .unwrap()
}

/// Asserts the runner passed and ran each of `flows`; returns its stdout.
fn passed(out: &Output, flows: &[&str], logs: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the console browser flows failed ({}):\n{stdout}\n{stderr}\n{logs}",
        out.status,
    );
    for flow in flows {
        assert!(
            stdout.contains(&format!("ok   {flow} ")),
            "the runner did not run {flow}: {stdout}"
        );
    }
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn console_browser_flows_pass_in_chromium() {
    if !browser_ready() {
        return;
    }
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, dir.path());
    // Fresh: the runner creates the owner through the setup page, as a person would.
    options.bootstrap = false;
    let server = Server::start(&options);
    let setup_link = server
        .banner
        .iter()
        .find_map(|l| l.split_once("First login (one-time setup link, valid 24 h): "))
        .map(|(_, link)| link.to_owned())
        .unwrap_or_else(|| panic!("no setup link in the banner: {:#?}", server.banner));
    let ca = server.ca_file.clone().expect("the server's CA file");
    let out = run_flows(vec![
        ("KEYWARD_CONSOLE_URL", server.url.clone()),
        ("KEYWARD_SETUP_LINK", setup_link),
        ("NODE_EXTRA_CA_CERTS", ca.display().to_string()),
    ])
    .await;
    let stdout = passed(
        &out,
        &["members", "tokens"],
        &format!("--- server log ---\n{}", server.stderr()),
    );
    // The bootstrapped server's flows need its cloudsim and gateway: not run here.
    assert!(!stdout.contains("gateway-approval"), "{stdout}");
}

/// GETs pass; POSTs need approval (held 20 s). The answer echoes the request (the upstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_browser_cloud_and_gateway_flows() {
    if !browser_ready() {
        return;
    }
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("server-endpoints.json");
    let options = local_options(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    let org = org_id(&server);
    let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
    std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
    set_owner_password(&server).await;

    // Alice, a member, sends the held request; the owner approves it (nobody decides their own).
    let store = open_store(&Backend::Sqlite, &options.data_dir).await;
    let (_, alice) = person(store.as_ref(), "alice@acme.example").await;
    let (status, body) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/members", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"email": "alice@acme.example", "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let upstream = Upstream::start().await;
    let gw_dir = tempfile::tempdir().unwrap();
    let gw = crate::console_gateway::approval_gateway(&options, &server, &upstream, gw_dir.path());

    // node takes one extra CA file: the server's and the gateway's, one after the other.
    let mut cas = std::fs::read_to_string(server.ca_file.as_ref().expect("server CA")).unwrap();
    if let Some(ca) = &gw.ca_file {
        cas.push('\n');
        cas.push_str(&std::fs::read_to_string(ca).unwrap());
    }
    let ca_file = dir.path().join("cas.pem");
    std::fs::write(&ca_file, cas).unwrap();

    let flows = ["cloudsim-secrets", "gateway-approval", "nav-crawl"];
    let out = run_flows(vec![
        ("KEYWARD_CONSOLE_URL", server.url.clone()),
        ("KEYWARD_OWNER_EMAIL", "owner@acme.example".to_owned()),
        ("KEYWARD_OWNER_PASSWORD", PASSWORD.to_owned()),
        ("KEYWARD_OWNER_TOKEN", BOOTSTRAP_TOKEN.to_owned()),
        ("KEYWARD_GATEWAY_URL", gw.url.clone()),
        ("KEYWARD_GATEWAY_TOKEN", alice.clone()),
        ("NODE_EXTRA_CA_CERTS", ca_file.display().to_string()),
    ])
    .await;
    passed(
        &out,
        &flows,
        &format!(
            "--- server log ---\n{}\n--- gateway log ---\n{}",
            server.stderr(),
            gw.stderr()
        ),
    );
    // The held request reached the upstream once, after the approval.
    assert_eq!(upstream.seen.lock().unwrap().len(), 1);
    drop(sim);
}
