//! Spawning the real `keyward` binary, talking to it, and reaching its database directly.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

pub const BOOTSTRAP_TOKEN: &str = "kwp_bootstrap-token-for-tests-0123456789abcdef";

/// Where a test server keeps its data.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres { url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// PostgreSQL server URL for tests (a database there is created per test). `scripts/test` sets
/// it; without it only SQLite runs, unless `KEYWARD_REQUIRE_POSTGRES=1` makes that an error.
fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("KEYWARD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("KEYWARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("KEYWARD_REQUIRE_POSTGRES=1 but KEYWARD_TEST_DATABASE_URL is not set");
    }
    url
}

/// A fresh, empty PostgreSQL database, or `None` when no server is configured.
pub async fn fresh_postgres() -> Option<Backend> {
    let admin = postgres_admin_url()?;
    let name = format!("kw_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to KEYWARD_TEST_DATABASE_URL");
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(Backend::Postgres {
        url: format!("{base}/{name}"),
    })
}

/// SQLite, and a fresh PostgreSQL database when one is configured.
pub async fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    all.extend(fresh_postgres().await);
    all
}

pub struct ServerOptions {
    pub backend: Backend,
    pub data_dir: PathBuf,
    pub env: HashMap<String, String>,
    pub args: Vec<String>,
    pub listen: String,
    pub bootstrap: bool,
}

impl ServerOptions {
    pub fn new(backend: &Backend, data_dir: &Path) -> Self {
        Self {
            backend: backend.clone(),
            data_dir: data_dir.to_owned(),
            env: HashMap::new(),
            args: Vec::new(),
            listen: "127.0.0.1:0".into(),
            bootstrap: true,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Seconds the server's clock runs ahead of the wall clock, beside the data directory.
    pub fn clock_file(&self) -> PathBuf {
        let mut name = self.data_dir.as_os_str().to_owned();
        name.push(".clock");
        PathBuf::from(name)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir);
        cmd.args(&self.args);
        cmd.env_remove("KEYWARD_DATABASE_URL")
            .env("KEYWARD_LOG", "info");
        if let Backend::Postgres { url } = &self.backend {
            cmd.env("KEYWARD_DATABASE_URL", url);
        }
        // Tests move the server's time with `Server::advance_clock` instead of sleeping.
        cmd.env("KEYWARD_TEST_CLOCK_FILE", self.clock_file());
        if self.bootstrap {
            cmd.env("KEYWARD_BOOTSTRAP_ORG", "Acme")
                .env("KEYWARD_BOOTSTRAP_ADMIN_EMAIL", "owner@acme.example")
                .env("KEYWARD_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// A running server; killed when dropped.
pub struct Server {
    pub url: String,
    /// `KEYWARD_TEST_CLOCK_FILE` of this server.
    pub clock_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub banner: Vec<String>,
    pub child: Child,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a failed start printed.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<std::process::ExitStatus>,
    #[allow(dead_code)] // shown through Debug when a start fails
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Server {
    pub fn start(options: &ServerOptions) -> Server {
        match Self::try_start(options) {
            Ok(server) => server,
            Err(failure) => panic!("keyward serve did not start: {failure:#?}"),
        }
    }

    pub fn try_start(options: &ServerOptions) -> Result<Server, StartFailure> {
        let mut child = options.command().spawn().expect("spawn keyward");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let err_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = err_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("stderr lock").push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(remaining.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let done = line == "Ready.";
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(200));
                        let stderr = err_lines.lock().expect("stderr lock").join("\n");
                        return Err(StartFailure {
                            status: Some(status),
                            stdout: banner,
                            stderr,
                        });
                    }
                    if remaining.is_zero() {
                        let _ = child.kill();
                        let stderr = err_lines.lock().expect("stderr lock").join("\n");
                        return Err(StartFailure {
                            status: None,
                            stdout: banner,
                            stderr,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    std::thread::sleep(Duration::from_millis(200));
                    let stderr = err_lines.lock().expect("stderr lock").join("\n");
                    return Err(StartFailure {
                        status,
                        stdout: banner,
                        stderr,
                    });
                }
            }
        }
        let url = banner
            .iter()
            .find_map(|l| l.strip_prefix("Keyward is listening on "))
            .expect("banner names the URL")
            .to_owned();
        let ca_file = banner
            .iter()
            .find_map(|l| l.strip_prefix("TLS CA certificate: "))
            .map(PathBuf::from);
        Ok(Server {
            clock_file: options.clock_file(),
            url,
            ca_file,
            banner,
            child,
            stderr: err_lines,
        })
    }

    /// Lets `secs` seconds pass for the running server (and any restart with the same options).
    pub fn advance_clock(&self, secs: i64) {
        let now: i64 = std::fs::read_to_string(&self.clock_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        std::fs::write(&self.clock_file, (now + secs).to_string()).expect("write the clock file");
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").join("\n")
    }

    pub fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).expect("read CA");
            builder =
                builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"));
        }
        builder.build().expect("client")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .expect("kill -TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A JSON API call; returns status and body (Null for empty bodies).
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Creates an automation and a token for it; returns (automation id, token).
pub async fn automation_with_token(server: &Server, name: &str) -> (String, String) {
    let client = server.client();
    let (status, automation) = call(
        &client,
        reqwest::Method::POST,
        &format!("{}/api/v1/automations", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{automation}");
    let (status, token) = call(
        &client,
        reqwest::Method::POST,
        &format!("{}/api/v1/automations/{name}/tokens", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    (
        automation["id"].as_str().expect("id").to_owned(),
        token["token"].as_str().expect("token").to_owned(),
    )
}

pub async fn mint(server: &Server, token: &str, audience: &str) -> (u16, Value) {
    call(
        &server.client(),
        reqwest::Method::POST,
        &format!("{}/api/v1/workload-identity/token", server.url),
        Some(token),
        Some(json!({"audience": audience})),
    )
    .await
}

pub async fn jwks(server: &Server) -> Value {
    let (status, body) = call(
        &server.client(),
        reqwest::Method::GET,
        &format!("{}/oauth2/jwks", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Verifies `token` against `jwks` as a cloud would: kid lookup, RS256, issuer and audience.
pub fn verify(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or(""),
        jwk["e"].as_str().unwrap_or(""),
    )
    .map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}

pub fn org_id(server: &Server) -> String {
    server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("Bootstrapped organization: "))
        .expect("bootstrapped org in banner")
        .to_owned()
}

/// Runs `keyward <args>` against the same storage as `options`; returns (success, stdout, stderr).
pub fn keyward_cli(options: &ServerOptions, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(&options.data_dir)
        .env_remove("KEYWARD_DATABASE_URL");
    if let Backend::Postgres { url } = &options.backend {
        cmd.env("KEYWARD_DATABASE_URL", url);
    }
    for (k, v) in &options.env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run keyward");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Executes one SQL statement on the backend's database directly (to tamper, or to inspect).
pub async fn exec_sql(options: &ServerOptions, sql: &str) -> u64 {
    match &options.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", options.data_dir.join("keyward.db").display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .expect("open sqlite");
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql.to_owned()))
                .await
                .expect("sql")
                .rows_affected()
        }
        Backend::Postgres { url } => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .expect("open pg");
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql.to_owned()))
                .await
                .expect("sql")
                .rows_affected()
        }
    }
}

/// `POST /api/v1<path>` as the bootstrap owner; it must answer 201.
pub async fn create_as_owner(server: &Server, path: &str, body: Value) -> Value {
    let (status, answer) = call(
        &server.client(),
        reqwest::Method::POST,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{path}: {answer}");
    answer
}

/// Every byte of the database: the SQLite files, or every PostgreSQL row as text and binary.
pub async fn raw_database(options: &ServerOptions) -> Vec<u8> {
    match &options.backend {
        Backend::Sqlite => {
            let mut all = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = format!("{}{suffix}", options.data_dir.join("keyward.db").display());
                if let Ok(bytes) = std::fs::read(path) {
                    all.extend(bytes);
                }
            }
            all
        }
        Backend::Postgres { url } => {
            use sqlx::Row;
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            let tables: Vec<String> =
                sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
            assert!(tables.contains(&"signing_keys".to_owned()));
            let mut all = Vec::new();
            for table in tables {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT row_to_json(t)::text FROM {table} t"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for row in rows {
                    let text: String = row.get(0);
                    all.extend(text.into_bytes());
                }
            }
            // Binary columns raw as well (row_to_json shows bytea as hex text).
            for row in
                sqlx::query("SELECT private_key FROM signing_keys WHERE private_key IS NOT NULL")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            {
                all.extend(row.get::<Vec<u8>, _>(0));
            }
            all
        }
    }
}

/// `keyward <args>` as the bootstrap owner against `server` (KEYWARD_URL, KEYWARD_TOKEN, KEYWARD_CA_FILE).
pub fn admin_cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_TOKEN", BOOTSTRAP_TOKEN)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`admin_cli`] on a blocking thread, so the test's runtime keeps serving (held requests,
/// waiters) while the other process runs.
pub async fn admin_cli_async(server: &Server, args: &[&str]) -> (bool, String, String) {
    let url = server.url.clone();
    let ca = server.ca_file.clone().unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(&args)
            .env("KEYWARD_URL", url)
            .env("KEYWARD_TOKEN", BOOTSTRAP_TOKEN)
            .env("KEYWARD_CA_FILE", ca)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}
