//! The data-path listener: TCP (no Nagle), TLS with ALPN `h2`/`http/1.1` unless `--http`, then
//! hyper's auto connection (HTTP/1.1 or HTTP/2) calling [`Gateway::handle`]. On shutdown it stops
//! accepting and lets open connections finish (up to [`DRAIN`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pipeline::Gateway;

/// How long open connections (a long stream) may run after shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(10);
/// A TLS handshake that takes longer is abandoned.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "the gateway could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let service = service_fn(move |request| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(gateway.handle(request).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result = match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let connection = builder
                        .serve_connection(TokioIo::new(tls), service)
                        .into_owned();
                    watcher.watch(connection).await
                }
                None => {
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "a gateway connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining gateway connections");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("connections still open after the drain period were closed");
        }
    }
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
