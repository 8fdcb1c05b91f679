//! The console's stylesheet and script, compiled into the binary and served under a path that
//! names their content hash, so browsers may cache them for a year: a new build has new paths.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

/// One embedded file and the versioned path it is served at.
pub struct Asset {
    pub path: String,
    file: String,
    content_type: &'static str,
    body: &'static str,
}

fn asset(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
    let short = hex::encode(&digest.as_ref()[..6]);
    let file = format!("{stem}.{short}.{ext}");
    Asset {
        path: format!("/console/assets/{file}"),
        file,
        content_type,
        body,
    }
}

pub static STYLESHEET: LazyLock<Asset> =
    LazyLock::new(|| asset("console", "css", "text/css; charset=utf-8", CSS));
pub static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| asset("console", "js", "text/javascript; charset=utf-8", JS));

/// `GET /console/assets/{file}`: only the current build's names; anything else is 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(found) = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|a| a.file == file)
    else {
        return (StatusCode::NOT_FOUND, "no such console asset").into_response();
    };
    let mut response = found.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(found.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    super::headers::security_headers(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_name_their_content() {
        assert!(STYLESHEET.path.starts_with("/console/assets/console."));
        assert!(STYLESHEET.path.ends_with(".css"));
        assert_ne!(STYLESHEET.path, asset("console", "css", "", "other").path);
    }
}
