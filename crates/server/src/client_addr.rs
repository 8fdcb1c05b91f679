//! The address a request came from, for per-address limits and audit events.
//!
//! Behind a TLS-terminating proxy every request arrives from the proxy, so all clients would
//! share one bucket. `--trusted-proxies` names the proxies whose `X-Forwarded-For` is believed:
//! only when the connecting peer is one of them, and then the right-most hop that is not itself
//! trusted is the client (every hop to its left could have been written by that client).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::proxies::{limit_key, resolve};
use crate::state::AppState;

/// The client address of a request (`None` only without a socket, as in in-process tests).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    pub fn limit_key(&self) -> String {
        limit_key(self.0)
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| {
                    resolve(peer.ip(), &parts.headers, &app.config.trusted_proxies)
                }),
        ))
    }
}
