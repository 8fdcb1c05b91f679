//! Security headers on every response (the console pages, the API and the issuer endpoints
//! alike), added by one layer around the whole router. A handler that sets one of these itself
//! (the pages' `X-Frame-Options`, say) keeps its own value.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

use crate::config::{ServerConfig, TlsMode};

/// One year: the usual HSTS lifetime, long enough for browsers to remember between visits.
const HSTS: &str = "max-age=31536000";

/// Which headers this server sends; decided once from its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// `Strict-Transport-Security`, only when people reach the server over HTTPS: over plain
    /// HTTP browsers ignore it, and a loopback test server must not pin `localhost` to HTTPS.
    pub hsts: bool,
}

impl HeaderPolicy {
    pub fn for_config(config: &ServerConfig) -> Self {
        let hsts = match config.public_url.as_deref() {
            // A TLS-terminating proxy in front still serves the browser HTTPS.
            Some(url) => url.starts_with("https://"),
            None => config.tls != TlsMode::Plain,
        };
        HeaderPolicy { hsts }
    }
}

/// The layer's function (`axum::middleware::map_response_with_state`).
pub async fn apply(State(policy): State<HeaderPolicy>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    // Browsers must not guess a type: an uploaded or echoed value never runs as script or style.
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Query strings carry user codes and return paths; no other site hears of them.
    set(header::REFERRER_POLICY, "no-referrer");
    if policy.hsts {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_only_when_served_over_https() {
        let dir = std::env::temp_dir();
        let mut config = ServerConfig::for_test(dir);
        assert!(
            !HeaderPolicy::for_config(&config).hsts,
            "http:// public URL"
        );
        config.public_url = Some("https://kw.example.com".into());
        assert!(HeaderPolicy::for_config(&config).hsts);
        config.public_url = None;
        assert!(
            !HeaderPolicy::for_config(&config).hsts,
            "plain HTTP, no URL"
        );
        config.tls = TlsMode::SelfSigned;
        assert!(HeaderPolicy::for_config(&config).hsts);
    }
}
