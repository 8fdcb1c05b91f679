//! The headers every console response carries (pages, assets, refusals, redirects).

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The console's content security policy: only this server's own script and style, no inline
/// code, forms post only here, and nobody frames a page. `connect-src 'self'` lets console.js
/// fetch the secret-name autocomplete list from this server (nothing else is reachable).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers of every console response (pages, assets, refusals).
pub fn security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
