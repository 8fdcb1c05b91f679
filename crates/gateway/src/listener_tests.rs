//! The listener end to end in one process: TLS with the installation's local CA, HTTP/1.1 and
//! HTTP/2 by ALPN, SSE passing event by event, and a caller's disconnect closing the upstream
//! connection. The phases are the pipeline tests' stand-ins; the upstream is a real server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

use crate::pipeline::Gateway;
use crate::pipeline::tests::{AllowAll, test_gateway};
use crate::table::tests::entry;
use crate::upstream::{Upstream, UpstreamClients};

/// A response body fed by a channel, as a streaming upstream writes it.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// `/v1/sse`: 20 SSE events 200 ms apart. `/v1/endless`: an event every 50 ms until the
/// connection is gone, then `closed` is set.
async fn streaming_upstream(closed: Arc<AtomicBool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let closed = closed.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let closed = closed.clone();
                    async move {
                        let (tx, rx) = mpsc::channel(1);
                        let endless = request.uri().path() == "/v1/endless";
                        tokio::spawn(async move {
                            for i in 0.. {
                                if !endless && i == 20 {
                                    break;
                                }
                                let event = Bytes::from(format!("data: {{\"n\":{i}}}\n\n"));
                                if tx.send(event).await.is_err() {
                                    closed.store(true, Ordering::SeqCst);
                                    return;
                                }
                                let gap = if endless { 50 } else { 200 };
                                tokio::time::sleep(Duration::from_millis(gap)).await;
                            }
                        });
                        let mut response = Response::new(ChannelBody(rx));
                        response
                            .headers_mut()
                            .insert("content-type", "text/event-stream".parse().unwrap());
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A TLS gateway with one allow-all route to `upstream`; returns its URL and a client.
async fn tls_gateway(upstream: SocketAddr, http1_only: bool) -> (String, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let files = keyward_server::tls::ensure_self_signed_named(
        dir.path(),
        "gateway",
        &[],
        keyward_server::clock::Clock::system().now(),
    )
    .unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = keyward_server::tls::server_config(&files).unwrap();
    let mut route = entry("stream", None, Some("/stream"));
    route.upstream = Upstream::new(
        url::Url::parse(&format!("http://{upstream}/v1")).unwrap(),
        UpstreamClients::default()
            .client(None, Duration::from_secs(1))
            .unwrap(),
    );
    route.policy = Arc::new(AllowAll);
    let (gateway, mut rx) = test_gateway(vec![route]);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let gateway: Arc<Gateway> = Arc::new(gateway);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::listener::serve(
        listener,
        Some(config),
        gateway,
        std::future::pending(),
    ));
    let ca = std::fs::read(files.ca.unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    if http1_only {
        builder = builder.http1_only();
    }
    // The temporary directory may go: the certificates are loaded.
    drop(dir);
    (
        format!("https://localhost:{}", addr.port()),
        builder.build().unwrap(),
    )
}

async fn events_arrive_at_their_spacing(http1_only: bool) {
    let upstream = streaming_upstream(Arc::new(AtomicBool::new(false))).await;
    let (url, client) = tls_gateway(upstream, http1_only).await;
    let mut response = client
        .get(format!("{url}/stream/sse"))
        .header("authorization", "Bearer good")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let expected = if http1_only {
        http::Version::HTTP_11
    } else {
        http::Version::HTTP_2
    };
    assert_eq!(response.version(), expected);
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        // One arrival per complete event received so far.
        while arrivals.len() < text.matches("\n\n").count() {
            arrivals.push(Instant::now());
        }
    }
    assert_eq!(arrivals.len(), 20, "{text}");
    for i in 0..20 {
        assert!(text.contains(&format!("data: {{\"n\":{i}}}")), "{text}");
    }
    // Each event left when the upstream sent it, not all at the end.
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(100) && gap < Duration::from_millis(400),
            "events arrived {gap:?} apart; the upstream sends them 200 ms apart"
        );
    }
}

#[tokio::test]
async fn sse_events_pass_one_by_one_over_http1() {
    events_arrive_at_their_spacing(true).await;
}

#[tokio::test]
async fn sse_events_pass_one_by_one_over_http2() {
    events_arrive_at_their_spacing(false).await;
}

#[tokio::test]
async fn a_caller_that_disconnects_closes_the_upstream_connection() {
    for http1_only in [true, false] {
        let closed = Arc::new(AtomicBool::new(false));
        let upstream = streaming_upstream(closed.clone()).await;
        let (url, client) = tls_gateway(upstream, http1_only).await;
        let mut response = client
            .get(format!("{url}/stream/endless"))
            .header("authorization", "Bearer good")
            .send()
            .await
            .unwrap();
        assert!(response.chunk().await.unwrap().is_some());
        assert!(!closed.load(Ordering::SeqCst));
        drop(response);
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !closed.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the upstream kept streaming 5 s after the caller left (http1_only: {http1_only})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
