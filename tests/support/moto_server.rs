//! Starting the third-party `moto_server` (PyPI `moto[server]`, installed into interop/.venv by
//! scripts/test) for tests of two crates: the e2e binary's AWS client check (tests/e2e/moto.rs)
//! and the recording's S3 round trip (crates/recording/tests/s3.rs). Dev-only: each includes this
//! file with `#[path]`, since the two test targets share no crate.
//! Both manifests sit two levels below the workspace root, so the venv path is the same.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `moto_server`; killed when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KEYWARD_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/.venv/bin/moto_server");
    path.exists().then_some(path)
}

/// Starts moto on a free port and waits until it answers; `None` (with the reason on stderr)
/// when it is not installed, unless KEYWARD_REQUIRE_INTEROP is set, which makes that a failure.
pub async fn start_moto() -> Option<Moto> {
    let Some(bin) = moto_server_path() else {
        assert!(
            std::env::var_os("KEYWARD_REQUIRE_INTEROP").is_none(),
            "moto_server is required but not installed: run `bash scripts/test` (it installs interop/requirements.txt) or set KEYWARD_MOTO_SERVER"
        );
        eprintln!("skipping: moto_server not installed (interop/.venv); scripts/test installs it");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{}/moto-api/", moto.url))
            .send()
            .await
            .is_ok()
        {
            return Some(moto);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not answer on {} within 20 s", moto.url);
}
