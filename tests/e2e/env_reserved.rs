//! Security review H4 / newcomer trial B1-B3: reserved environment keys, Keyward's own secrets in
//! `keyward run`'s environment, and values no process environment (or env-file line) can hold.
//! Each test performs the attack and asserts the refusal; `env_run.rs` has the rest.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use keyward_core::{EnvVarId, OrgId};
use keyward_store::{EnvVarRow, Store};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{Sim, SimWorld};
use crate::common::{self, BOOTSTRAP_TOKEN, Server, ServerOptions};
use crate::rbac::{self, Api};
use crate::run;

/// The keys the review and the trial planted, in the case they used and in lower case.
const ATTACK_KEYS: &[&str] = &[
    "AWS_ENDPOINT_URL_STS",
    "AZURE_AUTHORITY_HOST",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ACCESS_KEY_ID",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_API_KEY",
    "REQUESTS_CA_BUNDLE",
    "HTTPS_PROXY",
    "https_proxy",
    "PATH",
    "LD_PRELOAD",
    "BASH_ENV",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PERL5OPT",
    "JAVA_TOOL_OPTIONS",
    "KEYWARD_AUTOMATION_TOKEN",
];

pub(crate) fn refused(what: &str, (status, body): (u16, Value), field: &str, words: &[&str]) {
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some(field)),
        "{what}: {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    for w in words {
        assert!(message.contains(w), "{what}: expected {w:?} in {message:?}");
    }
}

/// A person added to the organization with the predefined Member role; their personal token.
pub(crate) async fn member(api: &Api<'_>, store: &dyn Store, email: &str) -> String {
    let (_, token) = rbac::person(store, email).await;
    let added = api
        .owner(
            Method::POST,
            "/api/v1/members",
            Some(json!({"email": email, "role": "member"})),
            201,
        )
        .await;
    assert_eq!(added["role"], "member", "{added}");
    token
}

#[tokio::test]
async fn a_member_cannot_plant_reserved_keys_or_nul_bytes_in_variables_or_connections() {
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&ServerOptions::new(&backend, dir.path()));
        common::automation_with_token(&server, "crew").await;
        let store = rbac::open_store(&backend, dir.path()).await;
        let api = Api {
            server: &server,
            client: server.client(),
            org: common::org_id(&server),
        };
        let mallory = member(&api, store.as_ref(), "mallory@acme.example").await;
        let as_member = |method: Method, path: &'static str, body: Value| {
            let (api, mallory) = (&api, &mallory);
            async move { api.call(mallory, method, path, Some(body)).await }
        };

        // The Member role may create and assign variables and connections: the refusals below
        // are about the keys, not the role.
        let (status, body) = as_member(
            Method::POST,
            "/api/v1/environment-variables",
            json!({"key": "LOG_LEVEL", "value": "debug"}),
        )
        .await;
        assert_eq!(status, 201, "{}: {body}", backend.name());
        let (status, body) = as_member(
            Method::PUT,
            "/api/v1/automations/crew/environment-variables",
            json!({"environment_variables": ["LOG_LEVEL"]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = as_member(
            Method::POST,
            "/api/v1/llm-connections",
            json!({"name": "mal", "provider": "openai", "automations": ["crew"],
                   "env": {"OPENAI_BASE_URL": "https://api.openai.com/v1"}}),
        )
        .await;
        assert_eq!(status, 201, "{body}");

        for key in ATTACK_KEYS {
            let what = format!("{}: variable {key}", backend.name());
            refused(
                &what,
                as_member(
                    Method::POST,
                    "/api/v1/environment-variables",
                    json!({"key": key, "value": "https://attacker.example"}),
                )
                .await,
                "key",
                &[key, "reserved"],
            );
            refused(
                &format!("{what} by rename"),
                as_member(
                    Method::PATCH,
                    "/api/v1/environment-variables/LOG_LEVEL",
                    json!({"key": key}),
                )
                .await,
                "key",
                &[key, "reserved"],
            );
            let what = format!("{}: connection env {key}", backend.name());
            refused(
                &what,
                as_member(
                    Method::PATCH,
                    "/api/v1/llm-connections/mal",
                    json!({"env": {*key: "https://attacker.example"}}),
                )
                .await,
                "env",
                &[key, "reserved"],
            );
            refused(
                &what,
                as_member(
                    Method::POST,
                    "/api/v1/llm-connections",
                    json!({"name": "mal2", "provider": "openai", "env": {*key: "x"}}),
                )
                .await,
                "env",
                &[key, "reserved"],
            );
        }
        // The refusal says what to use instead.
        refused(
            "GOOGLE_API_KEY",
            as_member(
                Method::POST,
                "/api/v1/environment-variables",
                json!({"key": "GOOGLE_API_KEY", "value": "AIza"}),
            )
            .await,
            "key",
            &["GEMINI_API_KEY"],
        );
        refused(
            "AWS_ROLE_ARN",
            as_member(
                Method::POST,
                "/api/v1/environment-variables",
                json!({"key": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/x"}),
            )
            .await,
            "key",
            &["workload identity config"],
        );

        // B3: a NUL byte, in a new value or an edited one; a line break in a connection setting.
        refused(
            "NUL value",
            as_member(
                Method::POST,
                "/api/v1/environment-variables",
                json!({"key": "NULVAL", "value": "a\u{0}b"}),
            )
            .await,
            "value",
            &["NUL"],
        );
        refused(
            "NUL value by edit",
            as_member(
                Method::PATCH,
                "/api/v1/environment-variables/LOG_LEVEL",
                json!({"value": "a\u{0}b"}),
            )
            .await,
            "value",
            &["NUL"],
        );
        refused(
            "NUL key",
            as_member(
                Method::POST,
                "/api/v1/environment-variables",
                json!({"key": "NUL\u{0}KEY", "value": "x"}),
            )
            .await,
            "key",
            &[],
        );
        for value in ["global\u{0}", "global\nLD_PRELOAD=/tmp/evil.so", "a\rb"] {
            refused(
                &format!("connection value {value:?}"),
                as_member(
                    Method::PATCH,
                    "/api/v1/llm-connections/mal",
                    json!({"env": {"GOOGLE_CLOUD_LOCATION": value}}),
                )
                .await,
                "env",
                &["GOOGLE_CLOUD_LOCATION"],
            );
        }

        // Nothing of the above was stored.
        let vars = api
            .owner(Method::GET, "/api/v1/environment-variables", None, 200)
            .await;
        let keys: Vec<&str> = vars
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["key"].as_str())
            .collect();
        assert_eq!(keys, ["LOG_LEVEL"], "{}", backend.name());
        let connection = api
            .owner(Method::GET, "/api/v1/llm-connections/mal", None, 200)
            .await;
        assert_eq!(
            connection["env"],
            json!({"OPENAI_BASE_URL": "https://api.openai.com/v1"})
        );
        assert_eq!(
            api.owner(
                Method::GET,
                "/api/v1/environment-variables/LOG_LEVEL",
                None,
                200
            )
            .await["value"],
            "debug"
        );
    }
}

/// `keyward <args>` as the automation, pointed at the simulator.
pub(crate) fn runtime(server: &Server, sim: &Sim, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_CLOUD_ENDPOINTS", &sim.endpoints_path)
        .env("KEYWARD_LOG", "warn");
    cmd
}

pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `env` output as a map; multi-line values keep only their first line.
pub(crate) fn env_of(stdout: &str) -> BTreeMap<&str, &str> {
    stdout.lines().filter_map(|l| l.split_once('=')).collect()
}

pub(crate) fn direct_row(org: OrgId, key: &str, value: &str) -> EnvVarRow {
    EnvVarRow {
        id: EnvVarId::new_random(),
        org_id: org,
        key: key.into(),
        source: "direct".into(),
        provider: None,
        credential_id: None,
        secret_name: None,
        secret: false,
        value: Some(value.into()),
        sealed_value: None,
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn reserved_keys_stored_before_the_fix_never_reach_the_child_and_are_reported() {
    common::install_crypto();
    for backend in common::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let (automation, token) = common::automation_with_token(&server, "crew").await;
        let org_text = common::org_id(&server);
        let sim = Sim::start(&server, &org_text, SimWorld::Demo);
        run::configure(&server, &sim).await;
        common::create_as_owner(
            &server,
            "/environment-variables",
            json!({"key": "LOG_LEVEL", "value": "debug"}),
        )
        .await;

        // Rows as an older Keyward accepted them (the trial's attack), written to the store.
        let store = rbac::open_store(&backend, dir.path()).await;
        let org: OrgId = org_text.parse().unwrap();
        let mut ids = vec![
            store
                .find_env_var_by_key(org, "LOG_LEVEL")
                .await
                .unwrap()
                .unwrap()
                .id,
        ];
        let planted = [
            ("AWS_ENDPOINT_URL_STS", "https://attacker.example"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/tmp/attacker-token"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/shadow"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("KEYWARD_AUTOMATION_TOKEN", "kwa_planted"),
        ];
        for (key, value) in planted {
            let row = direct_row(org, key, value);
            store.create_env_var(&row).await.unwrap();
            ids.push(row.id);
        }
        store
            .assign_env_vars(org, automation.parse().unwrap(), &ids)
            .await
            .unwrap();
        let mut vertex = store
            .find_llm_connection_by_name(org, "vertex")
            .await
            .unwrap()
            .unwrap();
        vertex.env = json!({"GOOGLE_CLOUD_LOCATION": "global",
            "HTTPS_PROXY": "http://attacker.example:3128",
            "AZURE_AUTHORITY_HOST": "https://attacker.example"})
        .to_string();
        store.update_llm_connection(&vertex).await.unwrap();

        // The child sees the runtime's values and the ordinary variable, none of the planted.
        let out = runtime(&server, &sim, &token, &["run", "--", "env"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{}: {stderr}", backend.name());
        let env = env_of(&stdout);
        assert_eq!(env.get("LOG_LEVEL"), Some(&"debug"), "{stdout}");
        assert_eq!(env.get("GOOGLE_CLOUD_LOCATION"), Some(&"global"));
        assert_eq!(env.get("AWS_ENDPOINT_URL_STS"), Some(&sim.base.as_str()));
        assert_eq!(env.get("AZURE_AUTHORITY_HOST"), Some(&sim.base.as_str()));
        assert!(env["AWS_WEB_IDENTITY_TOKEN_FILE"].ends_with("aws-token.jwt"));
        assert!(env["GOOGLE_APPLICATION_CREDENTIALS"].ends_with("adc.json"));
        assert_ne!(
            env.get("HTTPS_PROXY"),
            Some(&"http://attacker.example:3128")
        );
        assert_ne!(env.get("LD_PRELOAD"), Some(&"/tmp/evil.so"));
        assert!(!env.contains_key("KEYWARD_AUTOMATION_TOKEN"));
        assert!(!stdout.contains("attacker"), "{stdout}");
        // Each left-out key is named in a warning.
        for key in [
            "AWS_ENDPOINT_URL_STS",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "LD_PRELOAD",
            "KEYWARD_AUTOMATION_TOKEN",
            "HTTPS_PROXY",
            "AZURE_AUTHORITY_HOST",
        ] {
            assert!(
                stderr.contains(&format!("{key} (")) && stderr.contains("reserved"),
                "{key} named in\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("attacker.example"),
            "values stay out of the log"
        );

        // doctor names them too.
        let out = runtime(&server, &sim, &token, &["doctor", "--automation", "crew"])
            .output()
            .unwrap();
        let (report, _) = text(&out);
        assert!(!out.status.success(), "{report}");
        for key in ["AWS_ENDPOINT_URL_STS", "LD_PRELOAD", "HTTPS_PROXY"] {
            assert!(
                report.contains(&format!("[FAIL] reserved key {key}")),
                "{key} in\n{report}"
            );
        }

        // They cannot be assigned again.
        let (status, body) = common::call(
            &server.client(),
            Method::PUT,
            &format!(
                "{}/api/v1/automations/crew/environment-variables",
                server.url
            ),
            Some(BOOTSTRAP_TOKEN),
            Some(json!({"environment_variables": ["LOG_LEVEL", "LD_PRELOAD"]})),
        )
        .await;
        refused(
            "assign",
            (status, body),
            "environment_variables",
            &["LD_PRELOAD", "reserved"],
        );

        // B3, agent: a line break in a connection value would add a line (a variable) to the
        // env file; `run` passes the multi-line value intact.
        vertex.env =
            json!({"GOOGLE_CLOUD_LOCATION": "global\nLD_PRELOAD=/tmp/evil.so"}).to_string();
        store.update_llm_connection(&vertex).await.unwrap();
        let agent_dir = dir.path().join("agent");
        let env_file = dir.path().join("crew.env");
        let out = runtime(&server, &sim, &token, &["agent", "--automation", "crew"])
            .arg("--dir")
            .arg(&agent_dir)
            .arg("--env-file")
            .arg(&env_file)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "the agent must refuse: {stderr}");
        assert!(
            stderr.contains("GOOGLE_CLOUD_LOCATION") && stderr.contains("line break"),
            "{stderr}"
        );
        assert!(!env_file.exists(), "no env file is written");
        let out = runtime(
            &server,
            &sim,
            &token,
            &[
                "run",
                "--",
                "sh",
                "-c",
                r#"printf '%s|%s' "$GOOGLE_CLOUD_LOCATION" "$LD_PRELOAD""#,
            ],
        )
        .output()
        .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout, "global\nLD_PRELOAD=/tmp/evil.so|");

        // At startup, one warning per stored row, naming organization, key and what to do.
        drop(sim);
        let _ = server.terminate();
        let server = Server::start(&options);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let wanted = [
            "organization 'Acme'",
            "environment variable AWS_ENDPOINT_URL_STS holds a reserved key",
            "keyward env delete AWS_ENDPOINT_URL_STS",
            "environment variable LD_PRELOAD holds a reserved key",
        ];
        loop {
            let log = server.stderr();
            if wanted.iter().all(|w| log.contains(w)) {
                assert!(!log.contains("attacker.example"), "values stay out: {log}");
                assert!(!log.contains("environment variable LOG_LEVEL"), "{log}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: startup warnings missing from\n{log}",
                backend.name()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
