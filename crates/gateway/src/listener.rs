//! The data-path listener: TCP (no Nagle), TLS with ALPN `h2`/`http/1.1` unless `--http`, then
//! hyper's auto connection (HTTP/1.1 or HTTP/2) calling [`Gateway::handle`]. On shutdown it stops
//! accepting and lets open connections finish (up to [`DRAIN`]).
//!
//! [`serve_per_core`] runs one single-threaded runtime per worker thread, all accepting on the
//! same socket, like nginx's workers: a connection, its requests and their pooled upstream
//! connections stay on one thread, so a request costs no cross-thread wake-ups (on a work-stealing
//! runtime they were a quarter of the gateway's CPU time under load).

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

/// Serves on `workers` threads, each with its own single-threaded runtime accepting from
/// `listener`, until `shutdown` resolves; then every thread drains its connections.
pub async fn serve_per_core(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
    workers: usize,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut done = Vec::with_capacity(workers);
    for worker in 0..workers.max(1) {
        let listener = listener.try_clone()?;
        let (tls, gateway, mut stopped) = (tls.clone(), gateway.clone(), stopped.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (finished, finished_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("keyward-gateway-{worker}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            serve(listener, tls, gateway, async move {
                                let _ = stopped.wait_for(|stop| *stop).await;
                            })
                            .await
                        }
                        Err(e) => {
                            tracing::error!(worker, error = %e, "a gateway worker could not use the listening socket");
                        }
                    }
                });
                let _ = finished.send(());
            })?;
        done.push(finished_rx);
    }
    drop(listener);
    shutdown.await;
    let _ = stop.send(true);
    for finished in done {
        let _ = finished.await;
    }
    Ok(())
}

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
