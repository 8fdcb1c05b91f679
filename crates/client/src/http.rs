//! The connection to Keyward: the TLS policy, the bearer and organization headers, one request
//! and its answer.

use std::path::Path;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// The organization a person's token acts in, when it belongs to several.
const ORG_HEADER: &str = "x-keyward-organization-id";

/// Everything but unreserved characters is encoded: an id or a name must stay one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A path segment from an id or a name the user typed.
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// Which certificates a client trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Keyward's own API: a given CA bundle is the only anchor (the server's own CA; loading and
    /// parsing the system store costs more CPU than a whole kickoff, measured with bench/run.sh);
    /// without a bundle, the platform's roots.
    Keyward,
    /// Sign-in, which also reaches the company's identity provider: the platform's roots plus the
    /// bundle.
    KeywardAndPlatform,
}

/// An HTTPS client for Keyward's API under the crate's TLS policy, following no redirect.
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    http_client_trusting(ca_file, Trust::Keyward)
}

/// An HTTPS client trusting `ca_file` as `trust` says, following no redirect (a bearer token or a
/// device code would go along wherever it points).
pub fn http_client_trusting(
    ca_file: Option<&Path>,
    trust: Trust,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| ClientError::CaFile {
            path: path.to_owned(),
            error,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| ClientError::CaPem {
                path: path.to_owned(),
                error,
            })?;
        builder = match trust {
            Trust::Keyward => builder.tls_certs_only(certs),
            Trust::KeywardAndPlatform => certs
                .into_iter()
                .fold(builder, |b, cert| b.add_root_certificate(cert)),
        };
    }
    builder.build().map_err(ClientError::Build)
}

/// One Keyward server as one caller (a person's or an automation's token) sees it.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    org: Option<String>,
}

impl Client {
    /// A client for the server at `url` (scheme, host and port; a trailing `/` is dropped).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Client, ClientError> {
        Client::with_http(http_client(ca_file)?, url)
    }

    /// A client over an HTTPS client built with [`http_client`] (shared with other calls).
    pub fn with_http(http: reqwest::Client, url: &str) -> Result<Client, ClientError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| ClientError::Url {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Client {
            http,
            url: parsed.as_str().trim_end_matches('/').to_owned(),
            token: None,
            org: None,
        })
    }

    /// Sends `token` as the bearer on every call.
    pub fn token(mut self, token: &str) -> Client {
        self.token = Some(token.trim().to_owned());
        self
    }

    /// Sends the organization header on every call (a person in several organizations).
    pub fn organization(mut self, org: Option<&str>) -> Client {
        self.org = org.map(str::to_owned);
        self
    }

    /// The server's base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying HTTPS client, for documents outside the API (the issuer's JWKS).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `method <path>` (from the server's root); the body of a success as `T`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let (url, text) = self.send(method, path, query, body).await?;
        serde_json::from_str(&text).map_err(|error| ClientError::Decode { url, error })
    }

    /// `method <path>` whose success carries nothing the caller needs (a 204 after a delete).
    pub async fn request_empty(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        self.send(method, path, query, None::<&()>)
            .await
            .map(|_| ())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<(String, String), ClientError> {
        let url = format!("{}{path}", self.url);
        let mut request = self.http.request(method.clone(), &url);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(org) = &self.org {
            request = request.header(ORG_HEADER, org);
        }
        request = match body {
            Some(b) => request.json(b),
            // Some proxies refuse a body-less POST without a length.
            None if method == Method::POST => request.header(reqwest::header::CONTENT_LENGTH, "0"),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::unreachable(&self.url, &e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::unreachable(&self.url, &e))?;
        if !status.is_success() {
            return Err(ClientError::refusal(
                method.as_str(),
                &url,
                status.as_u16(),
                &text,
            ));
        }
        Ok((url, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_everything_but_unreserved_characters() {
        assert_eq!(segment("gcp-prod_1.x"), "gcp-prod_1.x");
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn a_url_that_is_not_one_is_refused_with_a_hint() {
        let e = Client::new("not a url", None).unwrap_err();
        assert!(e.to_string().contains("use the server's address"), "{e}");
    }

    #[tokio::test]
    async fn the_bearer_does_not_follow_a_redirect() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere_url = format!("http://{}", elsewhere.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((_socket, _)) = elsewhere.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let keyward = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let keyward_url = format!("http://{}", keyward.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = keyward.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere_url}/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let client = Client::new(&keyward_url, None).unwrap().token("kwp_test");
        let e = client.tokens().await.unwrap_err();
        assert_eq!(e.status(), Some(307));
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    }
}
