//! A PostgreSQL server of the test's own (temporary data directory, free port), for tests that
//! crash or restart the database: the machine's shared server on 5432 serves other tests at the
//! same time and is never stopped.
//!
//! Without PostgreSQL binaries in `/usr/lib/postgresql/*/bin` the caller skips, unless
//! `KEYWARD_REQUIRE_POSTGRES=1` makes that a failure.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use crate::common::Backend;

pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    pub port: u16,
    /// `initdb` refuses to run as root: then every server command runs as `postgres`.
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

/// The newest installed version's `bin` directory holding `initdb` and `pg_ctl`.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivatePostgres {
    /// Initialises and starts a server; `None` (after saying why) when PostgreSQL is not
    /// installed and not required.
    pub fn start() -> Option<PrivatePostgres> {
        let Some(bin) = binaries() else {
            assert!(
                !std::env::var("KEYWARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1"),
                "KEYWARD_REQUIRE_POSTGRES=1 but no PostgreSQL binaries in /usr/lib/postgresql/*/bin"
            );
            eprintln!("skipped: no PostgreSQL binaries in /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "chown the PostgreSQL directory to postgres"
            );
        }
        let server = PrivatePostgres {
            bin,
            data: dir.path().join("data"),
            socket_dir: dir.path().to_owned(),
            port: free_port(),
            as_postgres,
            _dir: dir,
        };
        let data = server.data.to_str().unwrap().to_owned();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.start_again();
        Some(server)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&path);
            cmd
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn log_file(&self) -> PathBuf {
        self.socket_dir.join("postgres.log")
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200",
            self.port,
            self.socket_dir.display()
        );
        let (data, log) = (
            self.data.to_str().unwrap().to_owned(),
            self.log_file().to_str().unwrap().to_owned(),
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
    }

    /// Stops the server the way a crash would (`pg_ctl stop -m immediate`: no checkpoint, the
    /// next start replays the WAL) and returns once it is gone.
    pub fn crash(&self) {
        let data = self.data.to_str().unwrap().to_owned();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new empty database on this server.
    pub async fn fresh_database(&self) -> Backend {
        let name = format!("kw_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url())
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        Backend::Postgres {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
        }
    }

    /// The server's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Best effort: a server already stopped makes pg_ctl fail, which is fine here.
        let data = self.data.to_string_lossy().into_owned();
        let path = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&path);
            cmd
        } else {
            Command::new(&path)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}
