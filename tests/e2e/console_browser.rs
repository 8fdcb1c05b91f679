//! The web console in a real browser: a fresh `keyward serve` (no bootstrap, so the first-login
//! link is printed) driven by interop/console/run.mjs through playwright-core and Debian's
//! chromium. The runner creates the owner on the setup page and then runs every flow in
//! interop/console/flows/; screenshots of every page go to target/console-screenshots/ (or
//! `KEYWARD_SCREENSHOT_DIR`). Needs node, `npm ci --prefix interop/console` and chromium;
//! required under `KEYWARD_REQUIRE_INTEROP=1` (scripts/test), skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

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
    let shots = screenshot_dir();

    let runner = console_dir().join("run.mjs");
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(runner)
            .env("KEYWARD_CONSOLE_URL", url)
            .env("KEYWARD_SETUP_LINK", setup_link)
            .env("NODE_EXTRA_CA_CERTS", ca)
            .env("KEYWARD_SCREENSHOT_DIR", &shots)
            .env("KEYWARD_CHROMIUM", chromium())
            .output()
            .map(|out| (out, server))
    })
    .await
    .unwrap();
    let (out, server) = out.expect("run node interop/console/run.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the console browser flows failed ({}):\n{stdout}\n{stderr}\n--- server log ---\n{}",
        out.status,
        server.stderr()
    );
    assert!(
        stdout.contains("ok   members") && stdout.contains("ok   tokens"),
        "the runner did not run the flows: {stdout}"
    );
}
