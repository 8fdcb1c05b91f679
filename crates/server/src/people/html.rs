//! The sign-in pages' message and error pages (on the console's templates) and the redirect.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, set_retry_after};

/// A sign-in page saying what went wrong (the console's frame and headers).
pub fn notice(status: StatusCode, title: &str, text: &str) -> Response {
    crate::console::render::message(status, title, text, true)
}

/// A sign-in page saying what happened (not an error).
pub fn info(status: StatusCode, title: &str, text: &str) -> Response {
    crate::console::render::message(status, title, text, false)
}

/// [`notice`] with a link onwards.
pub fn notice_with_link(
    status: StatusCode,
    title: &str,
    text: &str,
    href: &str,
    label: &str,
) -> Response {
    crate::console::render::message_page(
        crate::console::render::Layout::bare(title),
        status,
        text,
        true,
        Some((href, label)),
    )
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
    let mut page = notice(status, "Keyward", message);
    if let Some(secs) = retry_after {
        set_retry_after(&mut page, secs);
    }
    page
}

/// A `303 See Other`, with the console's security headers like every sign-in page.
pub fn redirect(location: &str) -> Response {
    crate::console::render::see_other(location)
}
