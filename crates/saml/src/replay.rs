//! The replay cache: each assertion is accepted once.
//!
//! A bearer assertion is as good as a password until it expires, and the browser (its history,
//! a proxy log) may keep a copy. So the id of every accepted assertion is remembered until the
//! assertion's own expiry (plus skew), after which it would be refused as expired anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

/// A store of used assertion ids. The server provides one backed by its database so that every
/// replica sees the same set (`INSERT … ON CONFLICT DO NOTHING`, then "was a row inserted").
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// Records `assertion_id` as used until `expires_at`. Returns `true` when this is its first
    /// use and `false` when it was already recorded. Must be atomic: of two concurrent calls with
    /// the same id, exactly one sees `true`.
    async fn first_use(
        &self,
        assertion_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, ReplayCacheError>;
}

/// The cache could not answer; the login is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplayCacheError(pub String);

/// An in-process replay cache, for a single replica and for tests.
#[derive(Debug)]
pub struct MemoryReplayCache {
    seen: Mutex<HashMap<String, OffsetDateTime>>,
    max_entries: usize,
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryReplayCache {
    /// A cache holding at most `max_entries` live ids; when full of unexpired ids it refuses
    /// new logins instead of forgetting ids (which would reopen replay).
    pub fn new(max_entries: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(
        &self,
        assertion_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, ReplayCacheError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| ReplayCacheError("the in-memory replay cache lock is poisoned".into()))?;
        if let Some(until) = seen.get(assertion_id)
            && *until > now
        {
            return Ok(false);
        }
        if seen.len() >= self.max_entries {
            seen.retain(|_, until| *until > now);
            if seen.len() >= self.max_entries {
                return Err(ReplayCacheError(format!(
                    "the in-memory replay cache holds {} unexpired assertion ids",
                    self.max_entries
                )));
            }
        }
        seen.insert(assertion_id.to_owned(), expires_at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[tokio::test]
    async fn second_use_is_refused_until_expiry_and_full_cache_fails_closed() {
        let cache = MemoryReplayCache::new(1);
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let until = t0 + Duration::minutes(5);
        assert!(cache.first_use("_a", until, t0).await.unwrap());
        assert!(
            !cache
                .first_use("_a", until, t0 + Duration::minutes(1))
                .await
                .unwrap()
        );
        // Full of a live id: a new id is refused rather than the old one forgotten.
        assert!(cache.first_use("_b", until, t0).await.is_err());
        // Once expired, the slot is reclaimed.
        assert!(
            cache
                .first_use("_b", until + Duration::minutes(5), until)
                .await
                .unwrap()
        );
    }
}
