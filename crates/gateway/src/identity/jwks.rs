//! An issuer's published signing keys, parsed once and held in memory: the hot path reads them
//! without a lock. A token naming a key the set does not hold (the issuer rotated) triggers a
//! refetch, but at most once per [`MIN_REFETCH_SECS`], and requests that arrive meanwhile wait
//! for that one fetch instead of starting their own — so a stream of made-up `kid`s cannot turn
//! the gateway into a load generator against the platform or the identity provider.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use url::Url;

use super::IdentityError;

/// Refetch at most this often when a token names an unknown key (or after a failed fetch).
pub const MIN_REFETCH_SECS: i64 = 10;
/// Refetch keys older than this even when they still match (retired keys disappear).
pub const MAX_AGE_SECS: i64 = 3600;
/// A key set that does not answer within this is treated as unreachable.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the keys are found.
#[derive(Clone, Debug)]
pub(crate) enum Locator {
    /// `{base}/.well-known/openid-configuration` names the issuer and `jwks_uri`; when
    /// `expect_issuer` is set the document must name exactly that issuer. `keys_at`, when set,
    /// is where the keys are read instead of `jwks_uri`: Keyward's own platform names its public
    /// URL there, which a gateway inside the cluster may not reach (or reach only through the
    /// ingress), while the platform URL it was given serves the same key set.
    Discovery {
        url: Url,
        expect_issuer: Option<String>,
        keys_at: Option<Url>,
    },
    /// The key set itself, for an issuer given in the settings.
    Jwks { url: Url, issuer: String },
}

/// One usable public key.
pub(crate) struct Key {
    pub kid: Option<String>,
    /// The algorithm the key is published for (`alg` of the JWK, or the curve's for EC keys).
    pub alg: Option<Algorithm>,
    pub family: AlgorithmFamily,
    pub decoding: DecodingKey,
}

/// What the issuer publishes, as last fetched.
pub(crate) struct Published {
    pub issuer: String,
    pub jwks_uri: String,
    pub keys: Vec<Arc<Key>>,
    /// The RSA keys in keyward-jose's form, for Keyward's own access tokens.
    pub jose: keyward_jose::Jwks,
    pub fetched_at: i64,
    /// How long the issuer said the set may be kept (`Cache-Control: max-age`, at most
    /// [`MAX_AGE_SECS`]): Keyward retires a key once caches honouring it have let go, so a
    /// set kept longer would trust a retired key.
    pub max_age: i64,
}

impl Published {
    /// The key a token names; a token without `kid` may use the only key of a one-key set.
    pub fn find(&self, kid: Option<&str>) -> Option<&Arc<Key>> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<i64>,
    last_error: Option<String>,
    /// Issuer and `jwks_uri` from discovery, once read.
    discovered: Option<(String, String)>,
}

/// The keys of one issuer (the platform, or the organization's identity provider).
pub(crate) struct RemoteKeys {
    /// Who publishes them, for messages: "the platform", "the identity provider".
    pub who: &'static str,
    http: keyward_client::Client,
    locator: Locator,
    current: ArcSwapOption<Published>,
    fetch: tokio::sync::Mutex<FetchState>,
    fetches: AtomicU64,
}

impl RemoteKeys {
    pub fn new(who: &'static str, http: keyward_client::Client, locator: Locator) -> Self {
        RemoteKeys {
            who,
            http,
            locator,
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the key set was fetched (metrics, tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The published keys, fetched on first use and when old.
    pub async fn published(&self, now: i64) -> Result<Arc<Published>, IdentityError> {
        self.get(now, |_| true).await
    }

    /// The published keys together with the key `kid` names, refetching (rate-limited) when
    /// the set does not hold it.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        now: i64,
    ) -> Result<(Arc<Published>, Arc<Key>), IdentityError> {
        let published = self.get(now, |p| p.find(kid).is_some()).await?;
        match published.find(kid) {
            Some(key) => {
                let key = key.clone();
                Ok((published, key))
            }
            None => Err(IdentityError::Refused {
                check: match kid {
                    Some(kid) => format!(
                        "unknown signing key kid {kid:?}: {} does not publish it at {} (the key set is refetched at most every {MIN_REFETCH_SECS} s)",
                        self.who, published.jwks_uri
                    ),
                    None => format!(
                        "the token names no signing key (kid) and {} publishes {} keys",
                        self.who,
                        published.keys.len()
                    ),
                },
            }),
        }
    }

    async fn get(
        &self,
        now: i64,
        wanted: impl Fn(&Published) -> bool,
    ) -> Result<Arc<Published>, IdentityError> {
        let usable = |p: &Published| now - p.fetched_at < p.max_age && wanted(p);
        // The hot path: no lock, no I/O.
        if let Some(p) = self.current.load_full()
            && usable(&p)
        {
            return Ok(p);
        }
        let mut state = self.fetch.lock().await;
        // Someone else may have fetched while this request waited for the lock.
        let held = self.current.load_full();
        if let Some(p) = &held
            && usable(p)
        {
            return Ok(p.clone());
        }
        let may_fetch = state
            .last_attempt
            .is_none_or(|at| now - at >= MIN_REFETCH_SECS);
        if may_fetch {
            state.last_attempt = Some(now);
            match self.fetch_now(&mut state, now).await {
                Ok(fresh) => {
                    let fresh = Arc::new(fresh);
                    self.current.store(Some(fresh.clone()));
                    state.last_error = None;
                    return Ok(fresh);
                }
                Err(reason) => {
                    tracing::warn!(who = self.who, error = %reason, "fetching signing keys failed");
                    state.last_error = Some(reason);
                }
            }
        }
        match held {
            // Stale or without the wanted key: the caller decides what that means.
            Some(p) => Ok(p),
            None => Err(IdentityError::Unavailable(format!(
                "the signing keys of {} could not be fetched: {}; retrying at most every {MIN_REFETCH_SECS} s",
                self.who,
                state
                    .last_error
                    .as_deref()
                    .unwrap_or("an earlier attempt failed moments ago")
            ))),
        }
    }

    async fn fetch_now(&self, state: &mut FetchState, now: i64) -> Result<Published, String> {
        let (issuer, jwks_uri) = match (&self.locator, &state.discovered) {
            (_, Some(found)) => found.clone(),
            (Locator::Jwks { url, issuer }, None) => (issuer.clone(), url.to_string()),
            (
                Locator::Discovery {
                    url,
                    expect_issuer,
                    keys_at,
                },
                None,
            ) => {
                let (doc, _) = self.get_json(url.as_str()).await?;
                let issuer = doc["issuer"]
                    .as_str()
                    .ok_or_else(|| format!("the discovery document at {url} names no issuer"))?
                    .to_owned();
                if let Some(expected) = expect_issuer
                    && expected != &issuer
                {
                    return Err(format!(
                        "the discovery document at {url} names issuer {issuer:?}, not the configured {expected:?}"
                    ));
                }
                let jwks_uri = match keys_at {
                    Some(keys_at) => keys_at.to_string(),
                    None => doc["jwks_uri"]
                        .as_str()
                        .ok_or_else(|| {
                            format!("the discovery document at {url} names no jwks_uri")
                        })?
                        .to_owned(),
                };
                state.discovered = Some((issuer.clone(), jwks_uri.clone()));
                (issuer, jwks_uri)
            }
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (set, max_age) = self.get_json(&jwks_uri).await?;
        let listed = set["keys"]
            .as_array()
            .ok_or_else(|| format!("the key set at {jwks_uri} has no \"keys\" array"))?;
        let keys: Vec<Arc<Key>> = listed.iter().filter_map(parse_key).map(Arc::new).collect();
        let jose = keyward_jose::Jwks {
            keys: listed
                .iter()
                .filter_map(|k| serde_json::from_value::<keyward_jose::Jwk>(k.clone()).ok())
                .filter(|k| k.kty == "RSA")
                .collect(),
        };
        Ok(Published {
            issuer,
            jwks_uri,
            keys,
            jose,
            fetched_at: now,
            max_age: max_age.map_or(MAX_AGE_SECS, |a| a.min(MAX_AGE_SECS)),
        })
    }

    /// The JSON at `url`, and the `max-age` its `Cache-Control` gives.
    async fn get_json(&self, url: &str) -> Result<(Value, Option<i64>), String> {
        let send = self
            .http
            .http()
            .get(url)
            .header("accept", "application/json")
            .send();
        let res = tokio::time::timeout(FETCH_TIMEOUT, send)
            .await
            .map_err(|_| format!("{url} did not answer within {} s", FETCH_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = res.status();
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        let max_age = res
            .headers()
            .get_all("cache-control")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let value = res
            .json::<Value>()
            .await
            .map_err(|e| format!("the answer of {url} is not JSON: {e}"))?;
        Ok((value, max_age))
    }
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn max_age(value: &str) -> Option<i64> {
    value.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        let (name, secs) = d.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        secs.trim()
            .trim_matches('"')
            .parse::<i64>()
            .ok()
            .map(|s| s.max(0))
    })
}

/// A JWK this gateway can verify with: RSA, or EC on P-256/P-384. Symmetric (`oct`) keys and
/// encryption keys are never used, whatever the set contains.
fn parse_key(jwk: &Value) -> Option<Key> {
    if jwk["use"].as_str().is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk["kid"].as_str().map(str::to_owned);
    let alg = match jwk["alg"].as_str() {
        Some(name) => Some(name.parse::<Algorithm>().ok()?),
        None => None,
    };
    let (family, decoding, alg) = match jwk["kty"].as_str()? {
        "RSA" => {
            let key =
                DecodingKey::from_rsa_components(jwk["n"].as_str()?, jwk["e"].as_str()?).ok()?;
            (AlgorithmFamily::Rsa, key, alg)
        }
        "EC" => {
            let curve_alg = match jwk["crv"].as_str()? {
                "P-256" => Algorithm::ES256,
                "P-384" => Algorithm::ES384,
                _ => return None,
            };
            if alg.is_some_and(|a| a != curve_alg) {
                return None;
            }
            let key =
                DecodingKey::from_ec_components(jwk["x"].as_str()?, jwk["y"].as_str()?).ok()?;
            (AlgorithmFamily::Ec, key, Some(curve_alg))
        }
        _ => return None,
    };
    if alg.is_some_and(|a| a.family() != family) {
        return None;
    }
    Some(Key {
        kid,
        alg,
        family,
        decoding,
    })
}

#[cfg(test)]
mod max_age_tests {
    use super::max_age;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=120"), Some(120));
        assert_eq!(max_age("Max-Age=\"7\""), Some(7));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("max-age=-5"), Some(0));
        assert_eq!(max_age("public"), None);
    }
}
