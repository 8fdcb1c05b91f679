//! Token validation the way the clouds do it: the issuer is trusted by URL, its keys are fetched
//! over HTTPS from its discovery document, cached (honouring `Cache-Control: max-age`, at most an
//! hour), and fetched again when a token names a `kid` the cache does not have — at most once per
//! [`REFETCH_INTERVAL`] per issuer, so a stream of forged `kid`s cannot make us hammer the issuer.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use thiserror::Error;
use tokio::sync::Mutex;

pub const REFETCH_INTERVAL: Duration = Duration::from_secs(5);
const MAX_CACHE_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Error)]
pub enum JwtError {
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error("the token is signed with {0}, which this service does not accept")]
    Algorithm(String),
    #[error("the issuer's keys could not be fetched: {0}")]
    Fetch(FetchError),
    #[error("no key with kid '{kid}' is published in the issuer's JWKS")]
    UnknownKid { kid: String },
    #[error("the signature does not verify with the issuer's key '{kid}'")]
    Signature { kid: String },
}

#[derive(Debug, Error)]
pub enum FetchError {
    /// The issuer answered 5xx or timed out: worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// The issuer is unreachable or serves something that is not discovery/JWKS.
    #[error("{0}")]
    Broken(String),
}

/// A JWT split and decoded, not yet trusted.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Value,
    signing_input: String,
    signature: String,
}

impl Unverified {
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        let mut parts = token.trim().split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        let decode = |part: &str, what: &str| -> Result<Value, JwtError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed(format!("the {what} is not base64url")))?;
            serde_json::from_slice(&bytes)
                .map_err(|_| JwtError::Malformed(format!("the {what} is not JSON")))
        };
        let header = decode(h, "header")?;
        let claims = decode(p, "payload")?;
        if !claims.is_object() {
            return Err(JwtError::Malformed(
                "the payload is not a JSON object".into(),
            ));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtError::Malformed("the header has no alg".into()))?
            .to_owned();
        Ok(Unverified {
            alg,
            kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
            claims,
            signing_input: format!("{h}.{p}"),
            signature: s.to_owned(),
        })
    }

    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn num_claim(&self, name: &str) -> Option<i64> {
        self.claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    }

    /// Checks an RS256 signature against a known public key (modulus and exponent, big-endian):
    /// service account keys are looked up by `kid`, not fetched from an issuer.
    pub fn verify_rs256(&self, modulus: &[u8], exponent: &[u8]) -> bool {
        let key = DecodingKey::from_rsa_raw_components(modulus, exponent);
        self.alg == "RS256"
            && matches!(
                jsonwebtoken::crypto::verify(
                    &self.signature,
                    self.signing_input.as_bytes(),
                    &key,
                    Algorithm::RS256,
                ),
                Ok(true)
            )
    }

    /// `aud` as a list, whether the token carries a string or an array.
    pub fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

struct Cached {
    keys: HashMap<String, Jwk>,
    fetched: Instant,
    max_age: Duration,
}

/// Per-issuer JWKS cache shared by every simulated cloud.
pub struct KeyCache {
    http: reqwest::Client,
    issuers: Mutex<HashMap<String, Cached>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl KeyCache {
    pub fn new(http: reqwest::Client) -> Self {
        KeyCache {
            http,
            issuers: Mutex::new(HashMap::new()),
            fetches: Default::default(),
        }
    }

    /// How many discovery+JWKS fetches were made (for tests of the refetch rate limit).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks the signature of `token` with the keys of `issuer` (the URL the cloud side was
    /// configured with, not whatever the token claims). `allowed` filters algorithms first.
    pub async fn verify(
        &self,
        token: &Unverified,
        issuer: &str,
        allowed: &[Algorithm],
    ) -> Result<(), JwtError> {
        let alg =
            Algorithm::from_str(&token.alg).map_err(|_| JwtError::Algorithm(token.alg.clone()))?;
        if !allowed.contains(&alg) {
            return Err(JwtError::Algorithm(token.alg.clone()));
        }
        let kid = token.kid.clone().unwrap_or_default();
        let jwk = self.key(issuer, &kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| {
            JwtError::Fetch(FetchError::Broken(format!(
                "key '{kid}' in the JWKS is unusable: {e}"
            )))
        })?;
        match jsonwebtoken::crypto::verify(
            &token.signature,
            token.signing_input.as_bytes(),
            &key,
            alg,
        ) {
            Ok(true) => Ok(()),
            _ => Err(JwtError::Signature { kid }),
        }
    }

    async fn key(&self, issuer: &str, kid: &str) -> Result<Jwk, JwtError> {
        let mut issuers = self.issuers.lock().await;
        let now = Instant::now();
        let stale = match issuers.get(issuer) {
            None => true,
            Some(c) => now.duration_since(c.fetched) >= c.max_age,
        };
        if !stale && let Some(jwk) = issuers.get(issuer).and_then(|c| c.keys.get(kid)) {
            return Ok(jwk.clone());
        }
        let may_refetch = match issuers.get(issuer) {
            None => true,
            Some(c) => stale || now.duration_since(c.fetched) >= REFETCH_INTERVAL,
        };
        if may_refetch {
            let fetched = self.fetch(issuer).await.map_err(JwtError::Fetch)?;
            issuers.insert(issuer.to_owned(), fetched);
        }
        issuers
            .get(issuer)
            .and_then(|c| c.keys.get(kid))
            .cloned()
            .ok_or_else(|| JwtError::UnknownKid {
                kid: kid.to_owned(),
            })
    }

    async fn fetch(&self, issuer: &str) -> Result<Cached, FetchError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Value = self.get_json(&discovery_url).await?.0;
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(FetchError::Broken(format!(
                "{discovery_url} names issuer {:?}, not {issuer}",
                discovery
                    .get("issuer")
                    .and_then(Value::as_str)
                    .unwrap_or("(none)")
            )));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| FetchError::Broken(format!("{discovery_url} has no jwks_uri")))?
            .to_owned();
        let (jwks, max_age) = self.get_json(&jwks_uri).await?;
        let set: JwkSet = serde_json::from_value(jwks)
            .map_err(|e| FetchError::Broken(format!("{jwks_uri} is not a JWKS: {e}")))?;
        let keys = set
            .keys
            .into_iter()
            .filter_map(|k| k.common.key_id.clone().map(|kid| (kid, k)))
            .collect();
        Ok(Cached {
            keys,
            fetched: Instant::now(),
            max_age: max_age.unwrap_or(MAX_CACHE_AGE).min(MAX_CACHE_AGE),
        })
    }

    async fn get_json(&self, url: &str) -> Result<(Value, Option<Duration>), FetchError> {
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Unavailable(format!("{url} timed out"))
                } else {
                    FetchError::Broken(format!("{url} is unreachable: {}", root_cause(&e)))
                }
            })?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(FetchError::Unavailable(format!("{url} answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Broken(format!("{url} answered {status}")));
        }
        let max_age = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
            })
            .map(Duration::from_secs);
        let body = resp
            .json()
            .await
            .map_err(|e| FetchError::Broken(format!("{url} did not return JSON: {e}")))?;
        Ok((body, max_age))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Time checks with a cloud's tolerance for clock skew.
#[derive(Debug, PartialEq, Eq)]
pub enum TimeError {
    Expired { exp: i64 },
    NotYetValid { nbf: i64 },
    IssuedInFuture { iat: i64 },
    Missing(&'static str),
    TooLong { lifetime: i64 },
}

pub struct TimeRules {
    pub skew: i64,
    pub require_iat: bool,
    /// Longest accepted `exp - iat`, if the cloud limits it.
    pub max_lifetime: Option<i64>,
}

pub fn check_times(token: &Unverified, now: i64, rules: &TimeRules) -> Result<(), TimeError> {
    let exp = token.num_claim("exp").ok_or(TimeError::Missing("exp"))?;
    if now > exp + rules.skew {
        return Err(TimeError::Expired { exp });
    }
    if let Some(nbf) = token.num_claim("nbf")
        && now + rules.skew < nbf
    {
        return Err(TimeError::NotYetValid { nbf });
    }
    match token.num_claim("iat") {
        Some(iat) => {
            if iat > now + rules.skew {
                return Err(TimeError::IssuedInFuture { iat });
            }
            if let Some(max) = rules.max_lifetime
                && exp - iat > max
            {
                return Err(TimeError::TooLong {
                    lifetime: exp - iat,
                });
            }
        }
        None if rules.require_iat => return Err(TimeError::Missing("iat")),
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> Unverified {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        Unverified::parse(&format!("{h}.{p}.c2ln")).unwrap()
    }

    #[test]
    fn malformed_tokens_are_named() {
        assert!(matches!(
            Unverified::parse("a.b"),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            Unverified::parse("!!.b.c"),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn time_rules_allow_exactly_the_skew() {
        let rules = TimeRules {
            skew: 300,
            require_iat: true,
            max_lifetime: Some(3600),
        };
        let t = token(serde_json::json!({"iat": 1000, "nbf": 995, "exp": 2000}));
        assert_eq!(check_times(&t, 2300, &rules), Ok(()));
        assert_eq!(
            check_times(&t, 2301, &rules),
            Err(TimeError::Expired { exp: 2000 })
        );
        assert_eq!(
            check_times(&t, 694, &rules),
            Err(TimeError::NotYetValid { nbf: 995 })
        );
        let long = token(serde_json::json!({"iat": 0, "exp": 7200}));
        assert_eq!(
            check_times(&long, 10, &rules),
            Err(TimeError::TooLong { lifetime: 7200 })
        );
        let no_iat = token(serde_json::json!({"exp": 7200}));
        assert_eq!(
            check_times(&no_iat, 10, &rules),
            Err(TimeError::Missing("iat"))
        );
    }
}
