//! Gateway test harness: spawn `keyward gateway` beside a spawned `keyward serve` (same data
//! directory and database), parse its ready line, and test upstreams written here on plain
//! tokio (an echo recording what it received, SSE 20 events 200 ms apart, a slow one, a
//! refusing port, one that notices its caller leave).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Backend, ServerOptions};

/// A running `keyward gateway`; killed when dropped.
pub struct GatewayProcess {
    pub url: String,
    pub admin_url: String,
    pub ca_file: Option<PathBuf>,
    pub child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a gateway for a platform started with `server_options`.
pub struct GatewayOptions {
    pub backend: Backend,
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub platform_url: Option<String>,
    pub platform_ca: Option<PathBuf>,
    pub env: HashMap<String, String>,
    pub args: Vec<String>,
}

impl GatewayOptions {
    pub fn new(server: &ServerOptions, platform: &crate::common::Server, config: &Path) -> Self {
        Self {
            backend: server.backend.clone(),
            data_dir: server.data_dir.clone(),
            config: Some(config.to_owned()),
            platform_url: Some(platform.url.clone()),
            platform_ca: platform.ca_file.clone(),
            env: HashMap::new(),
            args: Vec::new(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.arg("gateway")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(url) = &self.platform_url {
            cmd.arg("--platform-url").arg(url);
        }
        if let Some(ca) = &self.platform_ca {
            cmd.arg("--platform-ca").arg(ca);
        }
        cmd.args(&self.args);
        cmd.env_remove("KEYWARD_DATABASE_URL")
            .env("KEYWARD_LOG", "info");
        if let Backend::Postgres { url } = &self.backend {
            cmd.env("KEYWARD_DATABASE_URL", url);
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

impl GatewayProcess {
    pub fn start(options: &GatewayOptions) -> GatewayProcess {
        let mut child = options.command().spawn().expect("spawn keyward gateway");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
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
        let mut seen = Vec::new();
        let (url, admin_url) = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    // keyward gateway listening on https://127.0.0.1:PORT (admin http://127.0.0.1:PORT)
                    if let Some(rest) = line.strip_prefix("keyward gateway listening on ") {
                        let (url, admin) = rest.split_once(" (admin ").expect("ready line");
                        break (url.to_owned(), admin.trim_end_matches(')').to_owned());
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "keyward gateway did not start: stdout {seen:?}\nstderr:\n{}",
                        lines.lock().unwrap().join("\n")
                    );
                }
            }
        };
        // The CA line follows the ready line when TLS is self-signed.
        let ca_file = if url.starts_with("https://") {
            rx.recv_timeout(Duration::from_secs(5))
                .ok()
                .and_then(|l| l.strip_prefix("TLS CA certificate: ").map(PathBuf::from))
        } else {
            None
        };
        GatewayProcess {
            url,
            admin_url,
            ca_file,
            child,
            stderr: lines,
        }
    }

    /// Sends a signal (`TERM`, `HUP`) to the gateway.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (after SIGTERM).
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until a stderr line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line with {needle:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client trusting the gateway's CA; `http1_only` or HTTP/2 by ALPN.
    pub fn client(&self, http1_only: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).expect("read gateway CA");
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        if http1_only {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    }

    pub async fn healthz(&self) -> Value {
        reqwest::get(format!("{}/healthz", self.admin_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `/readyz` on the admin listener: its status code and body.
    pub async fn readyz(&self) -> (u16, Value) {
        let res = reqwest::get(format!("{}/readyz", self.admin_url))
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Writes `keyward gateway`'s route file (and a policy file beside it) into `dir`.
/// Reads from a test upstream's socket until the request head is complete; what was read (head,
/// and any body bytes that came with it), or `None` when the peer went away first.
pub async fn read_request_head(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(buf)
}

pub fn write_routes(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("routes.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// What the test upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A tiny HTTP/1.1 upstream (keep-alive). Paths: `/v1/sse` (20 events 200 ms apart),
/// `/v1/slow` (answers after 5 s), `/v1/endless` (an event every 50 ms until the connection is
/// gone, then `closed` is set); anything else echoes what it received as JSON.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub closed: Arc<AtomicBool>,
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            seen: Arc::new(Mutex::new(Vec::new())),
            closed: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let (seen, closed, connections) = (
            upstream.seen.clone(),
            upstream.closed.clone(),
            upstream.connections.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (seen, closed) = (seen.clone(), closed.clone());
                tokio::spawn(async move {
                    let _ = serve_connection(stream, seen, closed).await;
                });
            }
        });
        upstream
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Seen> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    buffer.drain(..head_end);
    let body = if chunked {
        read_chunked(stream, buffer).await?
    } else {
        while buffer.len() < length {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        buffer.drain(..length).collect()
    };
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

async fn read_chunked(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        while !buffer.windows(2).any(|w| w == b"\r\n") {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let line_end = buffer.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        while buffer.len() < line_end + 2 + size + 2 {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
        buffer.drain(..line_end + 2 + size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    closed: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        seen.lock().unwrap().push(request.clone());
        match request.path.split('?').next().unwrap_or("") {
            "/v1/sse" | "/v1/endless" => {
                let endless = request.path.starts_with("/v1/endless");
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await?;
                for i in 0.. {
                    if !endless && i == 20 {
                        break;
                    }
                    let event = format!("data: {{\"n\":{i}}}\n\n");
                    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        closed.store(true, Ordering::SeqCst);
                        return Ok(());
                    }
                    let gap = if endless { 50 } else { 200 };
                    tokio::time::sleep(Duration::from_millis(gap)).await;
                }
                stream.write_all(b"0\r\n\r\n").await?;
            }
            path => {
                if path == "/v1/slow" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let body = json!({
                    "method": request.method,
                    "path": request.path,
                    "headers": request.headers,
                    "body": String::from_utf8_lossy(&request.body),
                })
                .to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await?;
            }
        }
    }
    Ok(())
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
