//! The cookies of people's browser sessions: reading one, setting one, and the console session
//! cookie that ends every sign-in.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use super::html::redirect;
use crate::state::AppState;

/// How long a console session lasts.
pub const SESSION_TTL: i64 = 8 * 3600;
/// How long a console session lasts unused: each request moves its end this far ahead (sliding),
/// never past [`SESSION_TTL`]. An unattended browser stops being a signed-in one.
pub const SESSION_IDLE: i64 = 30 * 60;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "keyward_session";

/// A cookie attribute string: `Secure` when people reach this server over HTTPS.
pub fn secure(app: &AppState) -> &'static str {
    if app
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        "; Secure"
    } else {
        ""
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

pub fn add_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A redirect to `next` that sets the session cookie.
pub fn signed_in(app: &AppState, session: &str, next: &str) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_TTL}{}",
        secure(app)
    );
    let mut response = redirect(next);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
