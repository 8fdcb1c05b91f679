//! Spawning `keyward cloudsim` beside a `keyward serve`, reading its endpoints file, and the
//! state file with one broken setup per refusal the clouds give.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keyward_core::endpoints::EndpointsFile;
use serde_json::Value;

use crate::common::Server;

pub const PROJECT_NUMBER: &str = "123456789012";
pub const POOL: &str = "keyward-pool";

/// The audience for one provider of [`world`].
pub fn gcp_audience(provider: &str) -> String {
    format!(
        "//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{POOL}/providers/{provider}"
    )
}

pub fn sa(name: &str) -> String {
    format!("{name}@keyward-demo.iam.gserviceaccount.com")
}

pub const TENANT: &str = "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00";
pub const APP: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
pub const APP_CASE: &str = "9b2d3c4e-5f60-4a71-8b92-a3b4c5d6e7f8";

/// A world with the good setup and, beside it, one broken setup per refusal the tests check
/// (tests/fixtures/cloudsim-broken-world.toml, shared with the interop tests).
pub fn world(issuer: &str, org: &str) -> String {
    include_str!("../fixtures/cloudsim-broken-world.toml")
        .replace("${ISSUER}", issuer)
        .replace("${HOST}", issuer.trim_start_matches("https://"))
        .replace("${ORG}", org)
}

/// A running simulator; killed when dropped.
pub struct Sim {
    pub endpoints: EndpointsFile,
    pub endpoints_path: PathBuf,
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub enum SimWorld<'a> {
    Demo,
    /// The demo world trusting only this automation's finer subject (`--automation`).
    DemoFor(&'a str),
    State(&'a str),
}

impl Sim {
    /// Starts cloudsim trusting `server`'s CA for its issuer, for the server's organization.
    pub fn start(server: &Server, org: &str, world: SimWorld) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let endpoints_path = dir.path().join("endpoints.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.arg("cloudsim")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--write-endpoints")
            .arg(&endpoints_path)
            .env("KEYWARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(ca) = &server.ca_file {
            cmd.arg("--issuer-ca").arg(ca);
        }
        match world {
            SimWorld::Demo => {
                cmd.args(["--demo", "--issuer", &server.url, "--org", org]);
            }
            SimWorld::DemoFor(automation) => {
                cmd.args(["--demo", "--issuer", &server.url, "--org", org])
                    .args(["--automation", automation]);
            }
            SimWorld::State(text) => {
                let path = dir.path().join("state.toml");
                std::fs::write(&path, text).expect("write state");
                cmd.arg("--state").arg(path);
            }
        }
        let mut child = cmd.spawn().expect("spawn cloudsim");
        let stdout = child.stdout.take().expect("stdout");
        let mut ready = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "Ready." {
                ready = true;
                break;
            }
        }
        assert!(
            ready,
            "cloudsim exited before it was ready: {:?}",
            child.wait()
        );
        let endpoints = EndpointsFile::from_json(
            &std::fs::read_to_string(&endpoints_path).expect("endpoints file"),
        )
        .expect("endpoints JSON");
        let base = endpoints.gcp_sts();
        let pem = std::fs::read(endpoints.ca_file.as_deref().expect("ca_file"))
            .expect("read cloudsim CA");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Sim {
            endpoints,
            endpoints_path,
            base,
            child,
            _dir: dir,
            http,
        }
    }

    /// A client that trusts the simulator's CA.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/_cloudsim/{path}", self.base))
            .bearer_auth(self.endpoints.admin_token.as_deref().expect("admin_token"));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("admin call");
        assert!(
            resp.status().is_success(),
            "admin {path}: {}",
            resp.status()
        );
        resp.json().await.expect("admin JSON")
    }

    /// A Key Vault's URL (each vault has an origin of its own).
    pub async fn vault_url(&self, name: &str) -> String {
        let vaults = self.admin(reqwest::Method::GET, "vaults", None).await;
        vaults["vaults"][name]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no vault {name} in {vaults}"))
            .to_owned()
    }

    /// Requests seen per simulated endpoint since the last reset.
    pub async fn count(&self, endpoint: &str) -> u64 {
        let counts = self.admin(reqwest::Method::GET, "requests", None).await;
        counts["counts"][endpoint].as_u64().unwrap_or(0)
    }

    pub async fn reset_counts(&self) {
        self.admin(reqwest::Method::DELETE, "requests", None).await;
    }

    pub async fn fault(&self, fault: Value) {
        self.admin(reqwest::Method::POST, "faults", Some(fault))
            .await;
    }

    pub async fn clear_faults(&self) {
        self.admin(reqwest::Method::DELETE, "faults", None).await;
    }

    pub async fn clock_offset(&self, secs: i64) {
        self.admin(
            reqwest::Method::POST,
            "clock",
            Some(serde_json::json!({"offset_secs": secs})),
        )
        .await;
    }
}
