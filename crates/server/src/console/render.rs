//! The page frame every console page shares — the layout's data, rendering a template, and the
//! security headers of every console response — plus the plain message and error pages.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::assets::{SCRIPT, STYLESHEET};
pub use super::headers::{CSP, security_headers};
use crate::error::ApiError;

/// An organization in the switcher.
pub struct OrgChoice {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// A navigation link, shown only for pages the person's role opens (the page checks again).
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The signed-in part of the header.
pub struct Who {
    pub email: String,
    pub csrf: String,
    pub org: Option<String>,
    pub role: Option<String>,
    pub orgs: Vec<OrgChoice>,
    pub nav: Vec<NavItem>,
}

/// A message above the page's content.
pub struct Flash {
    /// `ok` or `error`: the CSS class.
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Option<Flash> {
        Some(Flash {
            kind: "ok",
            text: text.into(),
        })
    }

    pub fn error(text: impl Into<String>) -> Option<Flash> {
        Some(Flash {
            kind: "error",
            text: text.into(),
        })
    }
}

/// What `base.html` needs from every page.
pub struct Layout {
    pub title: String,
    pub css: &'static str,
    pub js: &'static str,
    pub who: Option<Who>,
    pub flash: Option<Flash>,
    /// Narrow single-column pages (sign-in, device, messages).
    pub narrow: bool,
}

impl Layout {
    /// The frame of a page shown before (or without) signing in.
    pub fn bare(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            css: STYLESHEET.path.as_str(),
            js: SCRIPT.path.as_str(),
            who: None,
            flash: None,
            narrow: true,
        }
    }

    pub fn with_flash(mut self, flash: Option<Flash>) -> Layout {
        self.flash = flash;
        self
    }
}

/// Renders a template into a response with `status` and the console's headers.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    let mut response = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered; the server log has the details.",
            )
                .into_response()
        }
    };
    security_headers(&mut response);
    response
}

/// A page with a title, a message, and an optional link onwards.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct Message {
    pub layout: Layout,
    pub text: String,
    pub error: bool,
    pub link: Option<(String, String)>,
}

/// A page saying what went wrong (`error` true) or what happened.
pub fn message(status: StatusCode, title: &str, text: &str, error: bool) -> Response {
    message_page(Layout::bare(title), status, text, error, None)
}

pub fn message_page(
    layout: Layout,
    status: StatusCode,
    text: &str,
    error: bool,
    link: Option<(&str, &str)>,
) -> Response {
    render(
        status,
        &Message {
            layout,
            text: text.to_owned(),
            error,
            link: link.map(|(href, label)| (href.to_owned(), label.to_owned())),
        },
    )
}

/// The page of a failed request: its status, and the message the API would have answered.
pub fn error_page(layout: Option<Layout>, e: ApiError) -> Response {
    let retry_after = e.retry_after();
    let (status, text) = e.status_and_message();
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => "Check the form",
        _ => "Something went wrong",
    };
    let mut layout = layout.unwrap_or_else(|| Layout::bare(title));
    layout.title = title.to_owned();
    let mut response = message_page(layout, status, &text, true, None);
    if let Some(secs) = retry_after {
        crate::error::set_retry_after(&mut response, secs);
    }
    response
}

/// A `303 See Other` to `location` (after a form: reloading the next page sends nothing again).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    security_headers(&mut response);
    response
}
