//! The identity provider's signing keys, cached. A token naming a key the cache does not hold
//! triggers a refetch (the provider rotated its keys), but at most once per
//! [`JwksCache::min_refetch`] seconds, so a stream of tokens with made-up `kid`s cannot turn
//! Keyward into a load generator against the provider.

use serde_json::Value;
use tokio::sync::Mutex;

use crate::SsoError;
use crate::http::Http;

/// Refetch at most this often when a token names an unknown key.
pub const MIN_REFETCH_SECS: i64 = 30;
/// Refetch keys older than this even when they still match.
pub const MAX_AGE_SECS: i64 = 3600;

#[derive(Default)]
struct Cached {
    keys: Option<Value>,
    fetched_at: i64,
    last_attempt: Option<i64>,
}

pub struct JwksCache {
    uri: String,
    http: Http,
    min_refetch: i64,
    max_age: i64,
    state: Mutex<Cached>,
}

impl JwksCache {
    pub fn new(uri: String, http: Http) -> Self {
        Self::with_timing(uri, http, MIN_REFETCH_SECS, MAX_AGE_SECS)
    }

    pub fn with_timing(uri: String, http: Http, min_refetch: i64, max_age: i64) -> Self {
        JwksCache {
            uri,
            http,
            min_refetch,
            max_age,
            state: Mutex::new(Cached::default()),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The key set, holding `kid` when the provider publishes it. Fetches on first use, when
    /// the set is old, or when `kid` is missing — rate-limited; a failed fetch keeps serving
    /// the keys already held.
    pub async fn keys_for(&self, kid: Option<&str>, now: i64) -> Result<Value, SsoError> {
        let mut state = self.state.lock().await;
        let has_kid = |keys: &Value| match kid {
            None => true,
            Some(kid) => keys["keys"]
                .as_array()
                .is_some_and(|all| all.iter().any(|k| k["kid"].as_str() == Some(kid))),
        };
        let fresh = now - state.fetched_at < self.max_age;
        if let Some(keys) = &state.keys
            && fresh
            && has_kid(keys)
        {
            return Ok(keys.clone());
        }
        let may_fetch = state
            .last_attempt
            .is_none_or(|at| now - at >= self.min_refetch);
        if may_fetch {
            state.last_attempt = Some(now);
            match self.fetch().await {
                Ok(keys) => {
                    state.keys = Some(keys);
                    state.fetched_at = now;
                }
                Err(e) if state.keys.is_none() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the identity provider's keys failed; using the keys held")
                }
            }
        }
        match &state.keys {
            Some(keys) if has_kid(keys) => Ok(keys.clone()),
            _ => Err(SsoError::UnknownKey {
                kid: kid.unwrap_or("").to_owned(),
                jwks_uri: self.uri.clone(),
                min_refetch: self.min_refetch,
            }),
        }
    }

    async fn fetch(&self) -> Result<Value, SsoError> {
        let fail = |reason: String| SsoError::Jwks {
            uri: self.uri.clone(),
            reason,
        };
        let res = self
            .http
            .0
            .get(&self.uri)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(format!("cannot reach it: {e}")))?;
        let status = res.status();
        if !status.is_success() {
            return Err(fail(format!("it answered {status}")));
        }
        let keys: Value = res
            .json()
            .await
            .map_err(|e| fail(format!("the answer is not JSON: {e}")))?;
        if !keys["keys"].is_array() {
            return Err(fail("the answer has no \"keys\" array".into()));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A JWKS endpoint (plain HTTP on loopback) that counts how often it is fetched.
    async fn serve(keys: Arc<Mutex<Value>>, hits: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let body = keys.lock().unwrap().to_string();
                hits.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/protocol/openid-connect/certs")
    }

    fn kids(keys: &Value) -> Vec<&str> {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_window() {
        let keys = Arc::new(Mutex::new(json!({"keys": [{"kid": "a"}]})));
        let hits = Arc::new(AtomicUsize::new(0));
        let uri = serve(keys.clone(), hits.clone()).await;
        let cache = JwksCache::with_timing(uri, Http::new(&[]).unwrap(), 30, 3600);
        let fetched = || hits.load(Ordering::SeqCst);

        assert_eq!(kids(&cache.keys_for(Some("a"), 100).await.unwrap()), ["a"]);
        assert_eq!(kids(&cache.keys_for(Some("a"), 110).await.unwrap()), ["a"]);
        assert_eq!(fetched(), 1, "a known key is served from the cache");

        // The provider rotates: "b" appears. Within the window a token naming it waits.
        *keys.lock().unwrap() = json!({"keys": [{"kid": "a"}, {"kid": "b"}]});
        assert!(matches!(
            cache.keys_for(Some("b"), 120).await,
            Err(SsoError::UnknownKey { .. })
        ));
        assert_eq!(fetched(), 1);
        assert_eq!(
            kids(&cache.keys_for(Some("b"), 130).await.unwrap()),
            ["a", "b"]
        );
        assert_eq!(fetched(), 2, "refetched once the window passed");

        // Made-up kids cannot make Keyward hammer the provider.
        for now in 131..159 {
            assert!(cache.keys_for(Some("made-up"), now).await.is_err());
        }
        assert_eq!(fetched(), 2);

        // Keys older than the maximum age are fetched again even when they match.
        cache.keys_for(Some("a"), 130 + 3600).await.unwrap();
        assert_eq!(fetched(), 3);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_keys_held() {
        let keys = Arc::new(Mutex::new(json!({"keys": [{"kid": "a"}]})));
        let hits = Arc::new(AtomicUsize::new(0));
        let uri = serve(keys.clone(), hits.clone()).await;
        let cache = JwksCache::with_timing(uri, Http::new(&[]).unwrap(), 30, 60);
        cache.keys_for(Some("a"), 100).await.unwrap();
        *keys.lock().unwrap() = json!({"not": "a jwks"});
        assert_eq!(kids(&cache.keys_for(Some("a"), 200).await.unwrap()), ["a"]);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
