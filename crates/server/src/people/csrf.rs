//! Cross-site form posts to the sign-in pages (login CSRF): `POST /login`, `POST /logout` and
//! `POST /invite` run only when the browser says the form came from this server's own origin.
//!
//! `SameSite=Lax` does not cover these: before signing in there is no session to bind a token
//! to, and a cross-site top-level POST can sign the victim in as the attacker, or sign them out.
//! The check reads what browsers state about where a request comes from, in order:
//! `Sec-Fetch-Site` (cross-site and same-site are refused), then `Origin`, then `Referer`; each
//! must name this server's public origin, and `Origin: null` (a sandboxed or privacy-stripped
//! page) is refused.
//!
//! A request with none of the three is let through. Every browser released since 2020 sends
//! `Origin` on every POST, form submissions included, and a page cannot remove it — at most turn
//! it into `null`, which is refused. A request without it comes from a non-browser client
//! (curl, a script), which carries no victim's cookies and so cannot be used for login CSRF. A
//! pre-session cookie with a hidden form field would also cover browsers from before 2020, but
//! it breaks every scripted sign-in and invitation acceptance and adds state for no browser that
//! is still supported. This is the rule of Go's `http.CrossOriginProtection` and of the OWASP
//! Fetch Metadata guidance.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use url::Url;

use super::html::notice;
use crate::config::TlsMode;
use crate::state::AppState;

/// The console forms this guard covers. `/device` is not here: its form already carries a
/// token bound to the session.
pub const FORM_PATHS: [&str; 3] = ["/login", "/logout", "/invite"];

/// Why a form post was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSite {
    /// What the browser named as the form's origin.
    pub from: String,
    /// The origin forms must come from.
    pub expected: String,
}

/// `scheme://host[:port]` of a URL, default ports left out.
fn origin_of(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The origin people's browsers use for this server: from the public URL, or, when that is not
/// known, the `Host` the browser itself addressed.
fn expected_origin(app: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(public) = app.config.public_url.as_deref() {
        return origin_of(public);
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if app.config.tls == TlsMode::Plain {
        "http"
    } else {
        "https"
    };
    origin_of(&format!("{scheme}://{host}/"))
}

/// Whether the request's browser headers place it on `expected`.
pub fn check(headers: &HeaderMap, expected: Option<&str>) -> Result<(), CrossSite> {
    let refuse = |from: &str| CrossSite {
        from: from.to_owned(),
        expected: expected.unwrap_or("(unknown)").to_owned(),
    };
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)"))
    };
    if let Some(site) = text("sec-fetch-site") {
        match site {
            "same-origin" | "none" => return Ok(()),
            other => return Err(refuse(&format!("a {other} page"))),
        }
    }
    let named = match (text("origin"), text("referer")) {
        (Some(origin), _) => origin,
        (None, Some(referer)) => referer,
        (None, None) => return Ok(()),
    };
    match (origin_of(named), expected) {
        (Some(from), Some(expected)) if from == expected => Ok(()),
        (Some(from), _) => Err(refuse(&from)),
        (None, _) => Err(refuse(named)),
    }
}

/// The layer in front of every route; acts only on POSTs to [`FORM_PATHS`].
pub async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !FORM_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let expected = expected_origin(&app, req.headers());
    match check(req.headers(), expected.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(refused) => {
            tracing::warn!(path = %req.uri().path(), from = %refused.from, "refused a cross-site form post");
            refusal_page(&refused)
        }
    }
}

fn refusal_page(refused: &CrossSite) -> Response {
    let text = format!(
        "This form was sent from {}, not from this server ({}). Keyward accepts sign-in, sign-out and invitation forms only from its own pages: open this server's address yourself and try again there.",
        refused.from, refused.expected
    );
    notice(axum::http::StatusCode::FORBIDDEN, "Form refused", &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    const HOME: Option<&str> = Some("https://kw.example.com");

    #[test]
    fn forms_from_this_origin_pass() {
        for ok in [
            headers(&[("origin", "https://kw.example.com")]),
            headers(&[("origin", "https://kw.example.com:443")]),
            headers(&[("referer", "https://kw.example.com/login?next=/device")]),
            headers(&[("sec-fetch-site", "same-origin")]),
            headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://kw.example.com"),
            ]),
            // No browser headers at all: curl or a script, with no victim's cookies.
            headers(&[]),
        ] {
            assert_eq!(check(&ok, HOME), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn cross_site_forms_are_refused() {
        for bad in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://kw.example.com")]),
            headers(&[("origin", "https://kw.example.com:8443")]),
            headers(&[("origin", "https://kw.example.com.evil.example")]),
            headers(&[("referer", "https://evil.example/kw.example.com")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://kw.example.com"),
            ]),
            headers(&[
                ("origin", "https://evil.example"),
                ("referer", "https://kw.example.com/login"),
            ]),
        ] {
            assert!(check(&bad, HOME).is_err(), "{bad:?} was accepted");
        }
        let refused = check(&headers(&[("origin", "https://evil.example")]), HOME).unwrap_err();
        assert_eq!(refused.from, "https://evil.example");
        assert_eq!(refused.expected, "https://kw.example.com");
    }
}
