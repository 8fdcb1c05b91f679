//! The server-rendered HTML of the sign-in and device pages: escaping, one page frame with its
//! security headers, the error page and the redirect.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::{ApiError, set_retry_after};

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_csp(
        status,
        title,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    )
}

pub fn page_with_csp(status: StatusCode, title: &str, body: &str, csp: &'static str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Keyward</title>\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}\
         input,button{{font:inherit;padding:.4rem;margin:.2rem 0}}input{{width:100%}}\
         .error{{color:#a00}}code{{font-size:1.3rem;letter-spacing:.1rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

pub fn error_page(e: ApiError) -> Response {
    let retry_after = e.retry_after();
    let response = e.into_response();
    let status = response.status();
    let message = match status {
        _ if retry_after.is_some() => {
            "The server is busy with other sign-ins; wait a few seconds and try again."
        }
        StatusCode::FORBIDDEN => {
            "Keyward is not the identity provider on this server: sign in through your company's identity provider."
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            "The server is not fully configured (KEYWARD_PUBLIC_URL); ask its operator."
        }
        _ => "Something went wrong on the server; its log has the details.",
    };
    let mut page = page(
        status,
        "Keyward",
        &format!("<p class=\"error\">{message}</p>"),
    );
    if let Some(secs) = retry_after {
        set_retry_after(&mut page, secs);
    }
    page
}

pub fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
