//! One HTTPS client for every cloud call, with the retry rule of docs/cloud-wire.md: transient
//! failures (429, 500/502/503/504, `IDPCommunicationError`, `ThrottlingException`, connection
//! errors, timeouts) are retried with full-jitter exponential backoff, honouring `Retry-After`,
//! until the caller's deadline; everything else is returned at once.

use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::error::{Cause, CloudError, Refusal, Step};
use keyward_core::error_chain::root_cause;

/// When the caller stops waiting for a call, retries included.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn total(&self) -> Duration {
        self.total
    }
}

/// Backoff between retries: a random wait in `[0, cap]`, the cap doubling from `first` to `max`.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

/// A cloud's answer, read whole.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub url: String,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn unexpected(&self, step: Step, detail: impl Into<String>) -> CloudError {
        CloudError::UnexpectedResponse {
            step,
            url: self.url.clone(),
            status: self.status,
            detail: detail.into(),
        }
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, step: Step) -> Result<T, CloudError> {
        serde_json::from_slice(&self.body).map_err(|e| self.unexpected(step, e.to_string()))
    }
}

#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// Codes that mean "try again" even under a 4xx status.
const TRANSIENT_CODES: &[&str] = &["IDPCommunicationError", "ThrottlingException", "Throttling"];

fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

pub(crate) fn is_transient(status: u16, code: &str) -> bool {
    transient_status(status) || TRANSIENT_CODES.contains(&code)
}

impl Transport {
    /// `ca_pem` adds a trusted root (cloudsim's own CA) to the system roots.
    pub fn new(ca_pem: Option<&[u8]>, retry: RetryPolicy) -> Result<Transport, CloudError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A redirect would carry a bearer or a signed request to wherever a cloud (or a
            // host posing as one) points; no cloud API Keyward calls redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                CloudError::Config(format!(
                    "the CA bundle is not PEM certificates ({e}); point ca_file at the simulator's CA (`keyward cloudsim --print-ca`)"
                ))
            })?;
            if certs.is_empty() {
                return Err(CloudError::Config(
                    "the CA bundle holds no certificate; point ca_file at the simulator's CA (`keyward cloudsim --print-ca`)".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CloudError::Config(format!("could not build the HTTPS client: {e}")))?;
        Ok(Transport { http, retry })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends the request `build` makes (anew for each attempt, so signatures stay fresh) until it
    /// succeeds, fails permanently, or the deadline passes. `refuse` reads a cloud's error answer.
    pub async fn call(
        &self,
        step: Step,
        deadline: &Deadline,
        build: impl Fn() -> Result<reqwest::RequestBuilder, CloudError>,
        refuse: impl Fn(&Answer) -> Refusal,
    ) -> Result<Answer, CloudError> {
        let started = std::time::Instant::now();
        let result = self.attempts(step, deadline, build, refuse).await;
        crate::metrics::call_took(step, started.elapsed());
        result
    }

    async fn attempts(
        &self,
        step: Step,
        deadline: &Deadline,
        build: impl Fn() -> Result<reqwest::RequestBuilder, CloudError>,
        refuse: impl Fn(&Answer) -> Refusal,
    ) -> Result<Answer, CloudError> {
        let mut attempts = 0u32;
        let mut cap = self.retry.first;
        loop {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(CloudError::DeadlineExceeded {
                    step,
                    attempts,
                    deadline: deadline.total(),
                    last: "no attempt fitted in the time left".into(),
                    cause: Cause::Unavailable,
                });
            }
            attempts += 1;
            let mut asked_wait = None;
            let mut cause = Cause::Unavailable;
            let last = match build()?.timeout(remaining).send().await {
                Err(e) if e.is_builder() => {
                    return Err(CloudError::InvalidArgument {
                        step,
                        detail: format!("the request could not be built: {e}"),
                    });
                }
                Err(e) if is_dns_failure(&e) => {
                    return Err(CloudError::Unresolvable {
                        step,
                        detail: describe_send_error(&e),
                    });
                }
                Err(e) => {
                    if e.is_connect() {
                        cause = Cause::Unreachable;
                    }
                    describe_send_error(&e)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let url = response.url().to_string();
                    match response.bytes().await {
                        Err(e) => format!("the answer from {url} broke off: {}", root_cause(&e)),
                        Ok(body) => {
                            let answer = Answer {
                                status,
                                headers,
                                body,
                                url,
                            };
                            if (200..300).contains(&status) {
                                return Ok(answer);
                            }
                            let mut refusal = refuse(&answer);
                            refusal.attempts = attempts;
                            if !is_transient(status, &refusal.code) {
                                return Err(CloudError::Refused(Box::new(refusal)));
                            }
                            if transient_status(status) {
                                refusal.cause = Cause::Unavailable;
                            }
                            asked_wait = retry_after(&answer.headers);
                            format!("HTTP {status} {}: {}", refusal.code, refusal.message)
                        }
                    }
                }
            };
            let jitter = Duration::from_millis(
                rand::rng().random_range(0..=cap.as_millis().min(u64::MAX as u128) as u64),
            );
            cap = (cap * 2).min(self.retry.max);
            let wait = asked_wait.map_or(jitter, |asked| asked.max(jitter));
            if wait >= deadline.remaining() {
                let last = match asked_wait {
                    Some(asked) => format!(
                        "{last} (the cloud asked to wait {}s before retrying, longer than the time left)",
                        asked.as_secs()
                    ),
                    None => last,
                };
                return Err(CloudError::DeadlineExceeded {
                    step,
                    attempts,
                    deadline: deadline.total(),
                    last,
                    cause,
                });
            }
            // Shown by the doctor (a line per retry), so a slow failure is not a silent one.
            tracing::info!(%step, attempts, wait_ms = wait.as_millis() as u64, %last, "transient cloud failure; retrying");
            crate::metrics::retried(step);
            tokio::time::sleep(wait).await;
        }
    }
}

impl Transport {
    /// A bearer-authenticated GET of `url`, retried like [`Transport::call`].
    pub async fn get_with_bearer(
        &self,
        step: Step,
        deadline: &Deadline,
        url: &str,
        bearer: &str,
        refuse: impl Fn(&Answer) -> Refusal,
    ) -> Result<Answer, CloudError> {
        self.call(
            step,
            deadline,
            || Ok(self.http.get(url).bearer_auth(bearer)),
            refuse,
        )
        .await
    }
}

/// `Retry-After` in seconds (the clouds do not send HTTP dates on these APIs).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The host name did not resolve: a typo or an unknown host, which no retry fixes.
fn is_dns_failure(e: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return true;
        }
        current = err.source();
    }
    false
}

fn describe_send_error(e: &reqwest::Error) -> String {
    let url = e.url().map(|u| u.as_str()).unwrap_or("the endpoint");
    if e.is_timeout() {
        format!("{url} did not answer in time")
    } else if is_dns_failure(e) {
        format!(
            "the host name of {url} does not resolve (DNS): {}",
            root_cause(e)
        )
    } else if e.is_connect() {
        format!("could not connect to {url}: {}", root_cause(e))
    } else {
        format!("the connection to {url} failed: {}", root_cause(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every connection with a redirect to `to`; counts connections on `hits`.
    async fn redirector(to: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, hits)
    }

    fn refuse(_: &Answer) -> Refusal {
        unreachable!("nothing answers")
    }

    #[tokio::test]
    async fn an_unresolvable_host_fails_at_once_as_unreachable() {
        let transport = Transport::new(None, RetryPolicy::default()).unwrap();
        let deadline = Deadline::after(Duration::from_secs(20));
        let started = std::time::Instant::now();
        let err = transport
            .call(
                Step::AwsCallerIdentity,
                &deadline,
                || Ok(transport.http().get("https://nonexistent.invalid/")),
                refuse,
            )
            .await
            .err()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "no retries");
        assert_eq!(err.cause(), Some(Cause::Unreachable));
        let text = err.to_string();
        assert!(text.contains("DNS"), "{text}");
        assert!(!text.contains("throttling"), "{text}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_named_unreachable_at_the_deadline() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let transport = Transport::new(None, RetryPolicy::default()).unwrap();
        let deadline = Deadline::after(Duration::from_millis(800));
        let url = format!("http://127.0.0.1:{port}/");
        let err = transport
            .call(
                Step::AwsCallerIdentity,
                &deadline,
                || Ok(transport.http().get(&url)),
                refuse,
            )
            .await
            .err()
            .unwrap();
        assert_eq!(err.cause(), Some(Cause::Unreachable), "{err}");
        assert!(err.to_string().contains("could not connect"), "{err}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed_so_bearers_stay_where_they_were_sent() {
        let (elsewhere, elsewhere_hits) = redirector("http://127.0.0.1:9/".into()).await;
        let (cloud, _) = redirector(format!("{elsewhere}/steal")).await;
        let transport = Transport::new(None, RetryPolicy::default()).unwrap();
        let answer = transport
            .http()
            .post(&cloud)
            .bearer_auth("a-vault-token")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 307);
        assert_eq!(
            elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
    }

    #[test]
    fn transient_means_throttled_unavailable_or_idp_unreachable() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_transient(status, ""), "{status}");
        }
        assert!(is_transient(400, "IDPCommunicationError"));
        assert!(is_transient(400, "ThrottlingException"));
        for (status, code) in [
            (400, "invalid_grant"),
            (401, "AADSTS70021"),
            (403, "AccessDenied"),
            (404, "SecretNotFound"),
            (400, "InvalidIdentityToken"),
        ] {
            assert!(!is_transient(status, code), "{status} {code}");
        }
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
