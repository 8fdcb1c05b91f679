//! The upstream side: pooled hyper clients (rustls with the platform's roots plus a route's
//! extra CA; HTTP/1.1 and h2 by ALPN; a connect timeout), the outgoing request (hop-by-hop
//! headers removed, `Host` from the upstream URL, the path joined onto the upstream's), and the
//! timeout until response headers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

use crate::body::GatewayBody;

type HyperClient = Client<HttpsConnector<HttpConnector>, GatewayBody>;

/// Source of [`UpstreamClient`] ids (thread-local pools are keyed by them).
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// A pooled upstream client of one configuration (extra CA, connect timeout). Each thread that
/// sends through it gets its own pool of the same configuration: a pooled connection is driven
/// by a task on the runtime that opened it, and a request handed to another thread's connection
/// costs two cross-thread wake-ups (the gateway runs one runtime per core).
#[derive(Clone)]
pub struct UpstreamClient {
    id: u64,
    extra_ca: Option<Arc<str>>,
    connect_timeout: Duration,
    /// Built (and so validated) when the route loads; used if a thread's own cannot be built.
    shared: HyperClient,
}

impl UpstreamClient {
    fn request(&self, request: Request<GatewayBody>) -> ResponseFuture {
        thread_local! {
            static LOCAL: RefCell<HashMap<u64, HyperClient>> = RefCell::new(HashMap::new());
        }
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let client = local.entry(self.id).or_insert_with(|| {
                build_client(self.extra_ca.as_deref(), self.connect_timeout)
                    .unwrap_or_else(|_| self.shared.clone())
            });
            client.request(request)
        })
    }
}

/// Headers that describe one connection, not the message: never forwarded either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
/// `transfer-encoding` goes too: hyper frames the body anew for the next hop.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// The platform's trusted roots, read once.
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(error = %error, "a platform CA certificate could not be read; upstream TLS trusts the others");
        }
        found.certs
    })
}

/// Upstream clients shared by routes with the same CA and connect timeout, so a reload keeps
/// their pooled connections.
#[derive(Default)]
pub struct UpstreamClients {
    cache: Mutex<HashMap<(Option<String>, Duration), UpstreamClient>>,
}

impl UpstreamClients {
    /// The pooled client for routes trusting `extra_ca` (PEM text) besides the platform roots.
    pub fn client(
        &self,
        extra_ca: Option<&str>,
        connect_timeout: Duration,
    ) -> Result<UpstreamClient, String> {
        let key = (extra_ca.map(str::to_owned), connect_timeout);
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| "the upstream client cache is poisoned".to_owned())?;
        if let Some(client) = cache.get(&key) {
            return Ok(client.clone());
        }
        let client = UpstreamClient {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            extra_ca: extra_ca.map(Arc::from),
            connect_timeout,
            shared: build_client(extra_ca, connect_timeout)?,
        };
        cache.insert(key, client.clone());
        Ok(client)
    }
}

fn build_client(extra_ca: Option<&str>, connect_timeout: Duration) -> Result<HyperClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    let _ = roots.add_parsable_certificates(platform_roots().iter().cloned());
    if let Some(pem) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("upstream_ca holds no readable PEM certificate: {e}"))?;
        if certs.is_empty() {
            return Err("upstream_ca holds no PEM certificate".into());
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("upstream_ca is not a usable CA certificate: {e}"))?;
        }
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    // Small JSON requests and SSE events must not wait for Nagle.
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}

/// Why the upstream gave no response headers.
#[derive(Debug)]
pub enum UpstreamError {
    /// The connection was refused or could not be made.
    Connect(String),
    /// No connection within the route's `connect_timeout`, or no headers within `timeout`.
    Timeout(String),
    /// The connection broke (reset, closed) before the response headers.
    Failed(String),
}

impl UpstreamError {
    /// The `kind` label of `keyward_gateway_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Failed(_) => "failed",
        }
    }
}

/// A route's upstream: its URL and the pooled client that reaches it.
pub struct Upstream {
    url: Url,
    client: UpstreamClient,
}

impl Upstream {
    pub fn new(url: Url, client: UpstreamClient) -> Upstream {
        Upstream { url, client }
    }

    /// `host:port` of the upstream, as errors name it.
    pub fn host_port(&self) -> String {
        let host = self.url.host_str().unwrap_or("?");
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The upstream URI for `path` (already stripped of the route prefix) and the caller's query.
    pub fn uri_for(&self, path: &str, query: Option<&str>) -> Result<Uri, String> {
        let base = self.url.path().trim_end_matches('/');
        let mut target = format!(
            "{}://{}{}{}",
            self.url.scheme(),
            self.authority(),
            base,
            if path.starts_with('/') { "" } else { "/" }
        );
        target.push_str(path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        target
            .parse()
            .map_err(|e| format!("the upstream URL for {path} is not valid: {e}"))
    }

    fn authority(&self) -> String {
        let host = match self.url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            Some(host) => host.to_string(),
            None => String::new(),
        };
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// Sends `request` (its URI already the upstream's) and waits for the response headers at
    /// most `timeout`. Dropping the returned future, or later the response body, closes the
    /// upstream connection instead of returning it to the pool mid-message.
    pub async fn send(
        &self,
        mut request: Request<GatewayBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let target = self.host_port();
        remove_hop_by_hop(request.headers_mut());
        // The client writes `Host` (HTTP/1.1) or `:authority` (h2) from the URI.
        request.headers_mut().remove(header::HOST);
        // The caller's `Expect: 100-continue` was answered by the listener when the body was
        // read; the upstream gets the body without waiting for a 100 of its own.
        request.headers_mut().remove(header::EXPECT);
        // The client picks HTTP/1.1 or h2 by ALPN; a caller's h2 must not force it.
        *request.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout(format!(
                "the upstream {target} sent no response within the route's timeout of {}",
                show_duration(timeout)
            ))),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(classify(&target, &error)),
        }
    }
}

fn classify(target: &str, error: &hyper_util::client::legacy::Error) -> UpstreamError {
    let detail = error_chain(error);
    if error.is_connect() {
        // The connector's errors arrive boxed, where a downcast may not see them: the words too.
        if has_tls_error(error) || detail.contains("certificate") {
            return UpstreamError::Connect(format!(
                "the upstream {target} failed the TLS handshake ({detail}); if its certificate is signed by a private CA, name that CA's PEM file in the route's upstream_ca"
            ));
        }
        if io_kind(error) == Some(std::io::ErrorKind::TimedOut) || detail.contains("timed out") {
            return UpstreamError::Timeout(format!(
                "the upstream {target} did not accept a connection within the route's connect_timeout ({detail})"
            ));
        }
        return UpstreamError::Connect(format!(
            "the upstream {target} refused the connection or could not be reached ({detail}); check that it is running and the route's upstream URL"
        ));
    }
    UpstreamError::Failed(format!(
        "the upstream {target} closed or reset the connection before answering ({detail})"
    ))
}

fn has_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = e.source();
    }
    false
}

fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

pub fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        Upstream::new(
            Url::parse(url).unwrap(),
            UpstreamClients::default()
                .client(None, Duration::from_secs(1))
                .unwrap(),
        )
    }

    #[test]
    fn the_path_joins_onto_the_upstream_path_and_keeps_the_query() {
        let up = upstream("http://127.0.0.1:9000/v1");
        assert_eq!(
            up.uri_for("/chat/completions", Some("a=1&b=2")).unwrap(),
            "http://127.0.0.1:9000/v1/chat/completions?a=1&b=2"
        );
        let root = upstream("https://api.example.com/");
        assert_eq!(
            root.uri_for("/x", None).unwrap(),
            "https://api.example.com/x"
        );
        assert_eq!(root.host_port(), "api.example.com:443");
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("upgrade", "h2c".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_upstream() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let up = upstream(&format!("http://127.0.0.1:{port}/"));
        let mut request = Request::new(GatewayBody::empty());
        *request.uri_mut() = up.uri_for("/x", None).unwrap();
        let error = up.send(request, Duration::from_secs(2)).await.unwrap_err();
        let UpstreamError::Connect(message) = error else {
            panic!("{error:?}")
        };
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    }

    /// A TLS upstream whose certificate chains to a CA only the route trusts: reached over h2
    /// (ALPN) with `upstream_ca`, refused without it.
    #[tokio::test]
    async fn a_tls_upstream_is_reached_through_the_routes_extra_ca_over_h2() {
        use hyper_util::rt::TokioIo;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let files = keyward_server::tls::ensure_self_signed_named(
            dir.path(),
            "upstream",
            &[],
            keyward_server::clock::Clock::system().now(),
        )
        .unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(keyward_server::tls::server_config(&files).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(|request: Request<Incoming>| async move {
                            let version = format!("{:?}", request.version());
                            Ok::<_, std::convert::Infallible>(Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(version)),
                            ))
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let ca = std::fs::read_to_string(files.ca.unwrap()).unwrap();
        let url = Url::parse(&format!("https://localhost:{}/v1", addr.port())).unwrap();
        let clients = UpstreamClients::default();
        let trusted = Upstream::new(
            url.clone(),
            clients.client(Some(&ca), Duration::from_secs(2)).unwrap(),
        );
        let mut request = Request::new(GatewayBody::empty());
        *request.uri_mut() = trusted.uri_for("/x", None).unwrap();
        let response = trusted.send(request, Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), Version::HTTP_2);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"HTTP/2.0");

        let untrusted = Upstream::new(url, clients.client(None, Duration::from_secs(2)).unwrap());
        let mut request = Request::new(GatewayBody::empty());
        *request.uri_mut() = untrusted.uri_for("/x", None).unwrap();
        let error = untrusted
            .send(request, Duration::from_secs(5))
            .await
            .unwrap_err();
        let UpstreamError::Connect(message) = error else {
            panic!("{error:?}")
        };
        assert!(message.contains("upstream_ca"), "{message}");
    }
}
