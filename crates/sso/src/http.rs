//! The HTTP client `openidconnect` calls, over our reqwest 0.13 (its own reqwest feature would
//! bring reqwest 0.12 and ring into the build).

use std::future::Future;
use std::pin::Pin;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Why a request to the identity provider failed (transport level; status codes are the
/// caller's to judge).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// A reqwest client that never follows redirects: the OpenID client must not be led to
/// another host by a redirect (SSRF), and no endpoint it calls answers with one.
#[derive(Clone, Debug)]
pub struct Http(pub(crate) reqwest::Client);

impl Http {
    pub fn new(extra_roots: &[reqwest::Certificate]) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15));
        for cert in extra_roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        Ok(Http(builder.build()?))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            let res = self
                .0
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(format!("cannot reach {}: {e}", without_query(&url))))?;
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.bytes().await.map_err(|e| {
                HttpError(format!(
                    "reading the answer of {}: {e}",
                    without_query(&url)
                ))
            })?;
            let mut response = http::Response::new(body.to_vec());
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}

/// A URL for messages: the query may hold codes or tokens, so it is left out.
pub(crate) fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}
