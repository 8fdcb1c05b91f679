//! Issue 20 point 4: a whole kickoff (`keyward run`) while the clouds are failing, table-driven
//! over GCP (STS, Secret Manager), Azure (Entra token, Key Vault) and AWS (STS, Secrets Manager)
//! with cloudsim's fault knobs. A transient fault is retried within the kickoff's deadline and the
//! command gets the full environment; anything else stops the kickoff with a failure naming the
//! cloud's step, the cause and the fix, and the command never starts — not even when the other
//! clouds' secrets, or the other secret of the same cloud, resolved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cloudsim::server_and_sim;
use crate::cloudsim_env::Sim;
use crate::common::{self, Server};
use crate::run::{configure, run_command};
use crate::secrets_resolution::{assign_secrets_from_every_cloud, expected_values};

/// One cloud of the kickoff: its exchange and secret endpoints (cloudsim's names), how Keyward's
/// errors name those steps, and the variables it backs.
struct Cloud {
    name: &'static str,
    exchange: &'static str,
    exchange_step: &'static str,
    secrets: &'static str,
    secret_step: &'static str,
    keys: [&'static str; 2],
}

const CLOUDS: [Cloud; 3] = [
    Cloud {
        name: "gcp",
        exchange: "gcp.sts",
        exchange_step: "GCP STS token exchange",
        secrets: "gcp.secretmanager",
        secret_step: "GCP Secret Manager access",
        keys: ["GCP_KEY", "GCP_DB_PASSWORD"],
    },
    Cloud {
        name: "azure",
        exchange: "azure.token",
        exchange_step: "Microsoft Entra client-assertion token",
        secrets: "azure.keyvault",
        secret_step: "Azure Key Vault get secret",
        keys: ["AZURE_KEY", "AZURE_DB_USER"],
    },
    Cloud {
        name: "aws",
        exchange: "aws.sts",
        exchange_step: "AWS STS AssumeRoleWithWebIdentity",
        secrets: "aws.secretsmanager",
        secret_step: "AWS Secrets Manager GetSecretValue",
        keys: ["AWS_KEY", "AWS_DB_PORT"],
    },
];

/// The deadline the failing cases give `keyward run` (`--deadline`, seconds).
const SHORT_DEADLINE: u64 = 3;

/// What a kickoff may take beyond its deadline: starting the binary, the plan, the mints, the
/// exec. Less than any step's share of the deadline, so a retry loop that restarted the clock per
/// step would overrun it.
const OVERHEAD: Duration = Duration::from_millis(2_500);

/// A server, the demo world, the three clouds' secrets assigned to `crew`, and where the
/// command writes its environment (which is also the sign that it started).
struct World {
    server: Server,
    sim: Sim,
    token: String,
    env_file: PathBuf,
    expected: BTreeMap<&'static str, String>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let (server, token, sim, dir) = server_and_sim(|_, _| None).await;
    configure(&server, &sim).await;
    assign_secrets_from_every_cloud(&server, &sim).await;
    let expected = expected_values(&sim);
    World {
        env_file: dir.path().join("child-env"),
        server,
        sim,
        token,
        expected,
        _dir: dir,
    }
}

struct Kickoff {
    code: Option<i32>,
    stderr: String,
    /// The child's environment, if it started.
    env: Option<BTreeMap<String, String>>,
    took: Duration,
}

impl World {
    /// One kickoff with only `faults` set, counters reset; the command writes its environment.
    async fn kickoff(&self, faults: &[Value], deadline: Option<u64>) -> Kickoff {
        self.sim.clear_faults().await;
        self.sim.reset_counts().await;
        for fault in faults {
            self.sim.fault(fault.clone()).await;
        }
        if self.env_file.exists() {
            std::fs::remove_file(&self.env_file).unwrap();
        }
        let script = r#"env > "$1""#;
        let out_path = self.env_file.to_str().unwrap();
        let mut cmd = run_command(
            &self.server,
            &self.sim,
            &self.token,
            &["sh", "-c", script, "sh", out_path],
        );
        if let Some(secs) = deadline {
            cmd.env("KEYWARD_KICKOFF_DEADLINE", secs.to_string());
        }
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let env = read_env(&self.env_file);
        for value in self.expected.values() {
            assert!(
                !stderr.contains(value.as_str()) || value == "5432",
                "a secret value reached stderr:\n{stderr}"
            );
        }
        Kickoff {
            code: out.status.code(),
            stderr,
            env,
            took,
        }
    }

    /// The command ran with every variable at its value.
    fn assert_full_environment(&self, what: &str, k: &Kickoff) {
        assert_eq!(k.code, Some(0), "{what}: {}", k.stderr);
        let env = k
            .env
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: the command did not start:\n{}", k.stderr));
        for (key, value) in &self.expected {
            assert_eq!(
                env.get(*key).map(String::as_str),
                Some(value.as_str()),
                "{what}: {key}"
            );
        }
    }

    /// The kickoff stopped before the command started, and said so.
    fn assert_not_started(&self, what: &str, k: &Kickoff) {
        assert_eq!(k.code, Some(1), "{what}: {}", k.stderr);
        assert!(
            k.env.is_none() && !self.env_file.exists(),
            "{what}: the command started with a partial environment:\n{}",
            k.stderr
        );
        assert!(
            k.stderr.contains("the command was not started"),
            "{what}: {}",
            k.stderr
        );
    }
}

fn read_env(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// Asserts every needle is in the haystack, naming the case.
fn says(what: &str, text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            text.contains(needle),
            "{what}: expected {needle:?} in\n{text}"
        );
    }
}

/// Variables that resolved are not among the failures.
fn assert_none_named(what: &str, text: &str, keys: &[&str]) {
    for key in keys {
        assert!(
            !text.contains(&format!("- {key}")) && !text.contains(&format!(", {key}")),
            "{what}: {key} resolved, yet is named:\n{text}"
        );
    }
}

/// A transient case: its name, the faults, the requests each endpoint must have seen, and the
/// least time the fault costs.
type Transient = (&'static str, Vec<Value>, [(&'static str, u64); 2], Duration);

#[tokio::test]
async fn transient_cloud_faults_are_retried_and_the_command_gets_the_full_environment() {
    let w = world().await;
    // No fault: the baseline the faults are compared with.
    let k = w.kickoff(&[], None).await;
    w.assert_full_environment("no fault", &k);
    let baseline = k.took;

    for cloud in &CLOUDS {
        let cases: [Transient; 4] = [
            (
                "429 with Retry-After: 1 on the exchange",
                vec![
                    json!({"endpoint": cloud.exchange, "count": 1, "status": 429, "retry_after": 1}),
                ],
                [(cloud.exchange, 2), (cloud.secrets, 2)],
                Duration::from_secs(1),
            ),
            (
                "500, 502, 503 on the secret reads",
                [500, 502, 503]
                    .map(|status| json!({"endpoint": cloud.secrets, "count": 1, "status": status}))
                    .to_vec(),
                [(cloud.exchange, 1), (cloud.secrets, 2 + 3)],
                Duration::ZERO,
            ),
            (
                "two connections dropped mid-answer on the exchange",
                vec![json!({"endpoint": cloud.exchange, "count": 2, "drop": true})],
                [(cloud.exchange, 3), (cloud.secrets, 2)],
                Duration::ZERO,
            ),
            (
                "2 s latency on every secret read",
                vec![json!({"endpoint": cloud.secrets, "latency_ms": 2000})],
                [(cloud.exchange, 1), (cloud.secrets, 2)],
                Duration::from_secs(2),
            ),
        ];
        for (case, faults, counts, costs) in cases {
            let what = format!("{}: {case}", cloud.name);
            let k = w.kickoff(&faults, None).await;
            w.assert_full_environment(&what, &k);
            for (endpoint, n) in counts {
                assert_eq!(w.sim.count(endpoint).await, n, "{what}: {endpoint}");
            }
            assert!(k.took >= costs, "{what}: took {:?}", k.took);
            // Well within the default 60 s deadline: waits are the cloud's or short backoffs.
            assert!(
                k.took < baseline + costs + Duration::from_secs(5),
                "{what}: took {:?} (baseline {baseline:?})",
                k.took
            );
            eprintln!("{what}: {:?}", k.took);
        }
    }
}

#[tokio::test]
async fn a_cloud_that_keeps_failing_stops_the_kickoff_by_its_deadline_naming_step_cause_and_fix() {
    let w = world().await;
    let deadline = Duration::from_secs(SHORT_DEADLINE);
    for cloud in &CLOUDS {
        let others: Vec<&str> = CLOUDS
            .iter()
            .filter(|c| c.name != cloud.name)
            .flat_map(|c| c.keys)
            .collect();

        // The exchange hangs past the deadline: the one attempt is cut off at the deadline.
        let what = format!("{}: exchange hangs 20 s", cloud.name);
        let k = w
            .kickoff(
                &[json!({"endpoint": cloud.exchange, "latency_ms": 20_000})],
                Some(SHORT_DEADLINE),
            )
            .await;
        w.assert_not_started(&what, &k);
        says(
            &what,
            &k.stderr,
            &[
                &format!("workload identity config '{0}' ({0})", cloud.name),
                cloud.keys[0],
                cloud.keys[1],
                cloud.exchange_step,
                "did not answer in time",
                &format!("the deadline of {SHORT_DEADLINE}s left no time for another"),
                "cause: the cloud kept throttling or failing",
                "fix: check the cloud's status and the network path",
                "keyward run --deadline <seconds>",
                "KEYWARD_KICKOFF_DEADLINE",
            ],
        );
        assert_none_named(&what, &k.stderr, &others);
        assert!(
            k.took >= deadline && k.took < deadline + OVERHEAD,
            "{what}: took {:?}",
            k.took
        );
        assert_eq!(w.sim.count(cloud.secrets).await, 0, "{what}");

        // A slow exchange, then secret reads that always fail: one deadline for the whole
        // kickoff, not one per step.
        let what = format!("{}: slow exchange, secret reads always 503", cloud.name);
        let k = w
            .kickoff(
                &[
                    json!({"endpoint": cloud.exchange, "latency_ms": 1500}),
                    json!({"endpoint": cloud.secrets, "status": 503, "error_rate": 1.0}),
                ],
                Some(SHORT_DEADLINE),
            )
            .await;
        w.assert_not_started(&what, &k);
        says(
            &what,
            &k.stderr,
            &[
                cloud.keys[0],
                cloud.keys[1],
                cloud.secret_step,
                "HTTP 503",
                &format!("the deadline of {SHORT_DEADLINE}s left no time for another"),
                "cause: the cloud kept throttling or failing",
                "fix: ",
                "keyward run --deadline <seconds>",
            ],
        );
        assert_none_named(&what, &k.stderr, &others);
        assert!(
            w.sim.count(cloud.secrets).await > 2,
            "{what}: the reads were retried"
        );
        assert!(k.took < deadline + OVERHEAD, "{what}: took {:?}", k.took);

        // Throttled with a Retry-After longer than the deadline, on one of the cloud's two
        // secrets while the other (and the other clouds') resolve: no retry that cannot fit,
        // no partial environment.
        let what = format!("{}: one read throttled for 30 s", cloud.name);
        let k = w
            .kickoff(
                &[json!({"endpoint": cloud.secrets, "count": 1, "status": 429, "retry_after": 30})],
                Some(SHORT_DEADLINE),
            )
            .await;
        w.assert_not_started(&what, &k);
        says(
            &what,
            &k.stderr,
            &[
                cloud.secret_step,
                "HTTP 429",
                "the cloud asked to wait 30s before retrying, longer than the time left",
                "keyward run --deadline <seconds>",
            ],
        );
        let named = cloud
            .keys
            .iter()
            .filter(|key| k.stderr.contains(**key))
            .count();
        assert_eq!(named, 1, "{what}: only the throttled one:\n{}", k.stderr);
        assert_eq!(w.sim.count(cloud.secrets).await, 2, "{what}: no retry");
        assert!(k.took < deadline, "{what}: gave up at once: {:?}", k.took);
    }
    // The clouds recovered: the next kickoff has everything.
    let k = w.kickoff(&[], Some(SHORT_DEADLINE)).await;
    w.assert_full_environment("after the faults", &k);
}

#[tokio::test]
async fn a_permanent_refusal_is_never_retried_and_stops_the_kickoff_at_once() {
    let w = world().await;
    // A missing secret beside each cloud's two good ones.
    let mut keys: Vec<String> = crate::secrets_resolution::KEYS.map(String::from).to_vec();
    for cloud in &CLOUDS {
        let key = format!("{}_MISSING", cloud.name.to_uppercase());
        let credential = match cloud.name {
            "gcp" => "gcp-sm",
            "azure" => "azure-kv",
            _ => "aws-sm",
        };
        common::create_as_owner(
            &w.server,
            "/environment-variables",
            json!({"key": key, "credential": credential, "secret_name": "no-such-secret"}),
        )
        .await;
        keys.push(key);
    }
    let (status, body) = common::call(
        &w.server.client(),
        reqwest::Method::PUT,
        &format!(
            "{}/api/v1/automations/crew/environment-variables",
            w.server.url
        ),
        Some(common::BOOTSTRAP_TOKEN),
        Some(json!({"environment_variables": keys})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Transient faults on the way do not turn the refusal into a retry loop either.
    let faults: Vec<Value> = CLOUDS
        .iter()
        .map(|c| json!({"endpoint": c.exchange, "count": 1, "status": 503}))
        .collect();
    let k = w.kickoff(&faults, None).await;
    w.assert_not_started("missing secrets", &k);
    says(
        "missing secrets",
        &k.stderr,
        &[
            "secret not found: GCP_MISSING",
            "secret not found: AZURE_MISSING",
            "secret not found: AWS_MISSING",
        ],
    );
    assert_none_named(
        "missing secrets",
        &k.stderr,
        &crate::secrets_resolution::KEYS,
    );
    assert!(
        !k.stderr.contains("--deadline"),
        "no deadline hint for a refusal:\n{}",
        k.stderr
    );
    for cloud in &CLOUDS {
        assert_eq!(w.sim.count(cloud.exchange).await, 2, "{}", cloud.name);
        assert_eq!(
            w.sim.count(cloud.secrets).await,
            3,
            "{}: one request per secret, the refusal not retried",
            cloud.name
        );
    }
    assert!(
        k.took < Duration::from_secs(10),
        "at once, not at the 60 s deadline: {:?}",
        k.took
    );
}
