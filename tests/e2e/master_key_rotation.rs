//! Master-key rotation (issue 19, SPEC §11): `keyward admin master-key rotate` re-seals every
//! sealed value under a new key. Killed with SIGKILL between two batches, it resumes and
//! finishes; afterwards every secret opens with the new key, the old key is refused at start,
//! and the audit chain written before the rotation still verifies.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use keyward_core::{AutomationId, EnvVarId, UserId};
use keyward_store::crypto::{Aad, MasterKey};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, Backend, Server, ServerOptions};

const SECRETS: usize = 7;

fn secret_value(i: usize) -> String {
    format!("rotation-secret-{i}-3f9c1a")
}

/// One column of one row, as text, on the backend's database.
async fn fetch_one(options: &ServerOptions, sql: &str) -> Option<Vec<u8>> {
    use sqlx::Row;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match &options.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", options.data_dir.join("keyward.db").display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query(sql)
                .fetch_optional(&mut conn)
                .await
                .unwrap()
                .map(|r| r.get::<Vec<u8>, _>(0))
        }
        Backend::Postgres { url } => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            sqlx::query(sql)
                .fetch_optional(&mut conn)
                .await
                .unwrap()
                .map(|r| r.get::<Vec<u8>, _>(0))
        }
    }
}

async fn fetch_text(options: &ServerOptions, sql: &str) -> String {
    let cast = match options.backend {
        Backend::Sqlite => format!("SELECT CAST(({sql}) AS BLOB)"),
        Backend::Postgres { .. } => format!("SELECT convert_to(({sql}), 'UTF8')"),
    };
    String::from_utf8(fetch_one(options, &cast).await.expect(sql)).unwrap()
}

fn blob_literal(backend: &Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres { .. } => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

fn rotate_command(options: &ServerOptions) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(["admin", "master-key", "rotate", "--batch-size", "2"])
        .arg("--data-dir")
        .arg(&options.data_dir)
        .env_remove("KEYWARD_DATABASE_URL")
        .env_remove("KEYWARD_MASTER_KEY");
    if let Backend::Postgres { url } = &options.backend {
        cmd.env("KEYWARD_DATABASE_URL", url);
    }
    cmd
}

async fn kickoff(server: &Server, token: &str) -> Value {
    let (status, plan) = common::call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/runtime/kickoff", server.url),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    plan
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_killed_mid_way_resumes_and_retires_the_old_key() {
    common::install_crypto();
    for backend in common::backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let (automation, token) = common::automation_with_token(&server, "crew").await;
        let (status, _) = common::mint(&server, &token, "sts.amazonaws.com").await;
        assert_eq!(status, 200);
        // Static provider credentials, and secret direct values: one row each, sealed.
        let provider = common::create_as_owner(&server, "/secret-providers", json!({
            "name": "aws-static", "provider": "aws_secrets_manager", "auth": "static", "region": "us-east-1",
            "static": {"access_key_id": "AKIAROTATION", "secret_access_key": "rotation-static-secret"}})).await;
        let mut vars = Vec::new();
        for i in 0..SECRETS {
            let var = common::create_as_owner(
                &server,
                "/environment-variables",
                json!({"key": format!("ROTATION_SECRET_{i}"), "value": secret_value(i), "secret": true}),
            )
            .await;
            vars.push(var["id"].as_str().unwrap().to_owned());
        }
        let (status, body) = common::call(
            &server.client(),
            Method::PUT,
            &format!(
                "{}/api/v1/automations/crew/environment-variables",
                server.url
            ),
            Some(common::BOOTSTRAP_TOKEN),
            Some(json!({"environment_variables": vars})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let plan = kickoff(&server, &token).await.to_string();
        for i in 0..SECRETS {
            assert!(plan.contains(&secret_value(i)), "{name}: {plan}");
        }
        drop(server);

        // A resolved static value and a TOTP secret, sealed under the old key like the server
        // seals them (their flows need a cloud and a browser; their rows are what matters).
        let old_text = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
        let old = MasterKey::from_base64(&old_text).unwrap();
        let automation_id: AutomationId = AutomationId(automation.parse().unwrap());
        let var_id = EnvVarId(vars[0].parse().unwrap());
        let resolved_aad = Aad::Resolved {
            automation: automation_id,
            var: var_id,
        }
        .bytes();
        let sealed = old.seal(&resolved_aad, b"resolved-value-71b2").unwrap();
        common::exec_sql(&options, &format!(
            "INSERT INTO resolved_static_values (automation_id, env_var_id, sealed_value, resolved_at) VALUES ('{automation}', '{}', {}, 0)",
            vars[0], blob_literal(&backend, &sealed))).await;
        let user = fetch_text(&options, "SELECT id FROM users LIMIT 1").await;
        let totp_aad = Aad::Totp {
            user: UserId(user.parse().unwrap()),
        }
        .bytes();
        let sealed = old.seal(&totp_aad, b"totp-secret-5e0d").unwrap();
        common::exec_sql(&options, &format!(
            "INSERT INTO local_credentials (user_id, password_hash, sealed_totp, updated_at) VALUES ('{user}', 'unused', {}, 0)",
            blob_literal(&backend, &sealed))).await;

        // Rotate, and kill -9 it between batches 2 and 3.
        let mut child = rotate_command(&options)
            .env("KEYWARD_TEST_ROTATE_PAUSE_AFTER", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            let line = lines.next().expect("the rotation paused").unwrap();
            seen.push(line.clone());
            if line == "paused after batch 2" {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen[0].starts_with("rotating master key"), "{seen:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("master.key")).unwrap(),
            old_text,
            "{name}: the key file changes only at the end"
        );
        let pending = dir.path().join("master.key.new");
        assert_eq!(
            std::fs::metadata(&pending).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Half-way, no server starts, with either key.
        let failure = Server::try_start(&options)
            .err()
            .expect("refused mid-rotation");
        assert!(failure.stderr.contains("unfinished"), "{name}: {failure:?}");

        // Run again: it finishes, skipping what the first run re-sealed.
        let out = rotate_command(&options).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let already: u64 = stdout
            .lines()
            .find(|l| l.contains("were already under the new key"))
            .and_then(|l| l.split('(').nth(1))
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            already >= 2,
            "{name}: two batches were done before: {stdout}"
        );
        assert!(!pending.exists());
        let key_path = dir.path().join("master.key");
        assert_eq!(
            std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let new_text = std::fs::read_to_string(&key_path).unwrap();
        let new = MasterKey::from_base64(&new_text).unwrap();
        assert_ne!(new.id_hex(), old.id_hex());

        // Every sealed column is under the new key only.
        for sql in [
            "SELECT private_key FROM signing_keys WHERE private_key IS NOT NULL",
            "SELECT sealed_static FROM secret_providers",
            "SELECT sealed_value FROM environment_variables WHERE sealed_value IS NOT NULL",
            "SELECT sealed_value FROM resolved_static_values",
            "SELECT sealed_totp FROM local_credentials",
            "SELECT sealed FROM sealed_keys",
        ] {
            let sealed = fetch_one(&options, sql).await.expect(sql);
            assert_eq!(
                MasterKey::sealed_key_id(&sealed),
                Some(new.id_hex()),
                "{name}: {sql}"
            );
        }
        let sealed = fetch_one(&options, "SELECT sealed_value FROM resolved_static_values")
            .await
            .unwrap();
        assert_eq!(
            &new.open(&resolved_aad, &sealed).unwrap()[..],
            b"resolved-value-71b2"
        );
        let sealed = fetch_one(&options, "SELECT sealed_totp FROM local_credentials")
            .await
            .unwrap();
        assert_eq!(
            &new.open(&totp_aad, &sealed).unwrap()[..],
            b"totp-secret-5e0d"
        );
        let sealed = fetch_one(
            &options,
            &format!(
                "SELECT sealed_static FROM secret_providers WHERE id = '{}'",
                provider["id"].as_str().unwrap()
            ),
        )
        .await
        .unwrap();
        assert!(old.open(b"x", &sealed).is_err());

        // The server starts with the new key: tokens are signed, secrets hand over.
        let server = Server::start(&options);
        let (status, minted) = common::mint(&server, &token, "sts.amazonaws.com").await;
        assert_eq!(status, 200, "{minted}");
        let set = common::jwks(&server).await;
        common::verify(
            minted["token"].as_str().unwrap(),
            &set,
            &server.url,
            "sts.amazonaws.com",
        )
        .unwrap();
        let plan = kickoff(&server, &token).await.to_string();
        for i in 0..SECRETS {
            assert!(plan.contains(&secret_value(i)), "{name}: {plan}");
        }
        drop(server);

        // The old key is refused, naming the rotation.
        let with_old =
            ServerOptions::new(&backend, dir.path()).env("KEYWARD_MASTER_KEY", old_text.trim());
        let failure = Server::try_start(&with_old)
            .err()
            .expect("the old key is refused");
        assert!(failure.stderr.contains("retired"), "{name}: {failure:?}");
        assert!(
            failure.stderr.contains(&new.id_hex()),
            "{name}: {failure:?}"
        );

        // The chain from before the rotation verifies, and the rotation is in it, by ids only.
        let (ok, out, err) = common::keyward_cli(&options, &["audit", "verify"]);
        assert!(ok, "{name}: {out}{err}");
        let (ok, out, err) = common::keyward_cli(&options, &["audit", "export", "--since", "1h"]);
        assert!(ok, "{name}: {err}");
        let rotated: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["kind"] == "master_key.rotated")
            .collect();
        assert_eq!(rotated.len(), 1, "{name}: {out}");
        assert_eq!(rotated[0]["data"]["old_key_id"], old.id_hex().as_str());
        assert_eq!(rotated[0]["data"]["new_key_id"], new.id_hex().as_str());
        assert!(!out.contains(old_text.trim()) && !out.contains(new_text.trim()));
    }
}
