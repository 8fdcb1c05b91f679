//! One route's cached credential: its expiry, the refresh rule, one refresh at a time, and the
//! old credential kept while a refresh fails.
//!
//! The refresh rule: a credential is refreshed once less than a quarter of its life remains, but
//! never more than five minutes ahead. The quarter gives short credentials (a 60 s test token, a
//! 15-minute session) room for the refresh itself (a cloud call retried up to its deadline) and
//! for clock skew between the gateway and the cloud, so the upstream never sees a credential at
//! its very edge; the five-minute cap keeps hour-long tokens from being refreshed after only
//! three quarters of an hour. Until `expires - min(life / 10, 10 s)` the old credential still
//! serves when a refresh fails (the cloud is briefly down); after that a request gets the error.
//!
//! While the credential is still usable, its refresh runs in the background (one at a time) and
//! requests go on with it; only a request that finds no usable credential waits, and all such
//! requests wait for the same fetch.
//!
//! The clock is `tokio::time::Instant`, so the tests move it with a paused runtime.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::CredentialError;

/// The longest lead a refresh takes before expiry.
const MAX_REFRESH_LEAD: Duration = Duration::from_secs(300);
/// The longest safety margin before expiry during which a stale credential is no longer used.
const MAX_SAFETY: Duration = Duration::from_secs(10);
/// After a failed refresh while the old credential still serves, the next try waits at most this.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// A credential and how long it lives, as a fetch returns it.
pub struct Fresh<T> {
    pub value: T,
    /// From now (the cloud's `expires_in`, or its expiry time minus the wall clock).
    pub lifetime: Duration,
}

struct Entry<T> {
    value: Arc<T>,
    life: Duration,
    expires: Instant,
    /// Set after a failed refresh: no new try before it (the old credential serves meanwhile).
    retry_at: Option<Instant>,
}

impl<T> Entry<T> {
    fn refresh_at(&self) -> Instant {
        self.expires - (self.life / 4).min(MAX_REFRESH_LEAD)
    }

    fn usable(&self, now: Instant) -> bool {
        now + (self.life / 10).min(MAX_SAFETY) < self.expires
    }
}

struct State<T> {
    entry: Option<Entry<T>>,
    /// Counts finished refresh attempts: a request that waited for someone else's refresh sees
    /// it changed and takes that result instead of calling the cloud again.
    attempts: u64,
    /// The error of the last attempt, if it failed.
    last_error: Option<String>,
}

pub struct Slot<T> {
    state: Mutex<State<T>>,
    /// Held by the one fetch under way; requests without a usable credential wait on it.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            state: Mutex::new(State {
                entry: None,
                attempts: 0,
                last_error: None,
            }),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

enum Look<T> {
    /// Fresh: use it.
    Fresh(Arc<T>),
    /// Due for refresh but still usable (and not in a retry wait, unless `waiting`).
    Stale { value: Arc<T>, waiting: bool },
    /// Nothing usable.
    Missing,
}

impl<T: Send + Sync + 'static> Slot<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding it leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn look(&self, now: Instant) -> (Look<T>, u64) {
        let state = self.state();
        let look = match &state.entry {
            Some(e) if now < e.refresh_at() => Look::Fresh(e.value.clone()),
            Some(e) if e.usable(now) => Look::Stale {
                value: e.value.clone(),
                waiting: e.retry_at.is_some_and(|r| now < r),
            },
            _ => Look::Missing,
        };
        (look, state.attempts)
    }

    /// The credential, fetched with `fetch` when there is none or it is due for refresh.
    /// Concurrent callers share one fetch. A credential due for refresh but still usable is
    /// refreshed in the background while every request goes on with it, so no request waits
    /// for a cloud call as long as the gateway holds a valid credential.
    pub async fn get<F, Fut>(self: &Arc<Self>, fetch: F) -> Result<Arc<T>, CredentialError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fresh<T>, CredentialError>> + Send + 'static,
    {
        let (look, seen) = self.look(Instant::now());
        match look {
            Look::Fresh(value) => Ok(value),
            Look::Stale {
                value,
                waiting: true,
            } => Ok(value),
            Look::Stale { value, .. } => {
                // A refresh under way already: nothing to start.
                if let Ok(guard) = self.refreshing.clone().try_lock_owned() {
                    let slot = self.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
                        if let Err(e) = slot.attempt(fetch).await {
                            tracing::warn!(error = %e, "credential refresh failed; the current credential stays in use while it is valid");
                        }
                    });
                }
                Ok(value)
            }
            Look::Missing => {
                let _guard = self.refreshing.lock().await;
                // Whoever held the lock may have refreshed while we waited: take that result.
                if let Some(settled) = self.settled_since(seen) {
                    return settled;
                }
                self.attempt(fetch).await
            }
        }
    }

    /// The outcome of a refresh that finished after `seen`, if one did.
    fn settled_since(&self, seen: u64) -> Option<Result<Arc<T>, CredentialError>> {
        let state = self.state();
        if state.attempts == seen {
            return None;
        }
        if let Some(e) = &state.entry
            && e.usable(Instant::now())
        {
            return Some(Ok(e.value.clone()));
        }
        let message = state.last_error.clone()?;
        Some(Err(CredentialError::Unavailable(message)))
    }

    /// One fetch, recorded (caller holds `refreshing`).
    async fn attempt<F, Fut>(&self, fetch: F) -> Result<Arc<T>, CredentialError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fresh<T>, CredentialError>>,
    {
        let result = fetch().await;
        let now = Instant::now();
        let mut state = self.state();
        state.attempts += 1;
        match result {
            Ok(fresh) => {
                let value = Arc::new(fresh.value);
                state.entry = Some(Entry {
                    value: value.clone(),
                    life: fresh.lifetime,
                    expires: now + fresh.lifetime,
                    retry_at: None,
                });
                state.last_error = None;
                Ok(value)
            }
            Err(e) => {
                if let Some(entry) = state.entry.as_mut() {
                    let left = entry.expires.saturating_duration_since(now);
                    let wait = (left / 4).clamp(Duration::from_secs(1), MAX_RETRY_WAIT);
                    entry.retry_at = Some(now + wait);
                }
                state.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    type Fetch = Ready<Result<Fresh<u32>, CredentialError>>;

    fn ok(n: u32, secs: u64) -> Result<Fresh<u32>, CredentialError> {
        Ok(Fresh {
            value: n,
            lifetime: Duration::from_secs(secs),
        })
    }

    fn failed() -> Result<Fresh<u32>, CredentialError> {
        Err(CredentialError::Unavailable("the cloud said no".into()))
    }

    fn slot() -> Arc<Slot<u32>> {
        Arc::new(Slot::default())
    }

    /// Lets spawned refreshes run (the clock is paused, so this takes no time).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// A fetch that counts its calls and returns the count as the credential.
    fn counting(calls: &Arc<AtomicU32>, secs: u64) -> impl FnOnce() -> Fetch + Send + 'static {
        let calls = calls.clone();
        move || ready(ok(calls.fetch_add(1, Ordering::SeqCst) + 1, secs))
    }

    fn failing(tries: &Arc<AtomicU32>) -> impl FnOnce() -> Fetch + Send + 'static {
        let tries = tries.clone();
        move || {
            tries.fetch_add(1, Ordering::SeqCst);
            ready(failed())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_credential_is_reused_until_a_quarter_of_its_life_remains_then_refreshed() {
        let slot = slot();
        let calls = Arc::new(AtomicU32::new(0));
        assert_eq!(*slot.get(counting(&calls, 60)).await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(44)).await;
        assert_eq!(*slot.get(counting(&calls, 60)).await.unwrap(), 1);
        settle().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "45 s of 60 not yet");
        tokio::time::advance(Duration::from_secs(2)).await;
        // Due: this request still gets the valid one while the refresh runs beside it.
        assert_eq!(*slot.get(counting(&calls, 60)).await.unwrap(), 1);
        settle().await;
        assert_eq!(*slot.get(counting(&calls, 60)).await.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_hour_long_token_is_refreshed_five_minutes_before_it_expires() {
        let slot = slot();
        let calls = Arc::new(AtomicU32::new(0));
        slot.get(counting(&calls, 3600)).await.unwrap();
        tokio::time::advance(Duration::from_secs(3600 - 301)).await;
        slot.get(counting(&calls, 3600)).await.unwrap();
        settle().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not yet");
        tokio::time::advance(Duration::from_secs(2)).await;
        slot.get(counting(&calls, 3600)).await.unwrap();
        settle().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "refreshed");
        assert_eq!(*slot.get(counting(&calls, 3600)).await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_valid_credential_and_waits_before_trying_again() {
        let slot = slot();
        let calls = Arc::new(AtomicU32::new(0));
        slot.get(counting(&calls, 60)).await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        let tries = Arc::new(AtomicU32::new(0));
        assert_eq!(*slot.get(failing(&tries)).await.unwrap(), 1);
        settle().await;
        assert_eq!(
            *slot.get(failing(&tries)).await.unwrap(),
            1,
            "old one still valid"
        );
        settle().await;
        assert_eq!(tries.load(Ordering::SeqCst), 1, "no retry storm");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(*slot.get(failing(&tries)).await.unwrap(), 1);
        settle().await;
        assert_eq!(
            tries.load(Ordering::SeqCst),
            2,
            "tried again after the wait"
        );
        // Past the safety margin the old one is no longer handed out.
        tokio::time::advance(Duration::from_secs(2)).await;
        let err = slot.get(failing(&tries)).await.unwrap_err().to_string();
        assert!(err.contains("the cloud said no"), "{err}");
        assert_eq!(*slot.get(counting(&calls, 60)).await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_fails_after_the_old_credentials_end_gives_the_error_not_the_old_one() {
        let slot = slot();
        slot.get(|| ready(ok(1, 60))).await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        let slow_failure = || async {
            // A cloud retried until its deadline.
            tokio::time::sleep(Duration::from_secs(20)).await;
            failed()
        };
        assert_eq!(*slot.get(slow_failure).await.unwrap(), 1, "valid meanwhile");
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Expired while the refresh still runs: this one waits for it and gets its error.
        let err = slot.get(|| ready(ok(9, 60))).await.unwrap_err().to_string();
        assert!(err.contains("the cloud said no"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch() {
        let slot = slot();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let slot = slot.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                slot.get(move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    ok(7, 60)
                })
                .await
                .map(|v| *v)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_for_a_failed_first_fetch_get_its_error_without_calling_again() {
        let slot = slot();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let slot = slot.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                slot.get(move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    failed()
                })
                .await
                .map(|v| *v)
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn while_one_refresh_runs_requests_keep_the_old_credential_and_start_no_other() {
        let slot = slot();
        slot.get(|| ready(ok(1, 60))).await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        let first = slot
            .get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                ok(2, 60)
            })
            .await
            .unwrap();
        assert_eq!(
            *first, 1,
            "the request that started the refresh did not wait"
        );
        for _ in 0..5 {
            let other = slot
                .get(|| async { panic!("a second refresh started") })
                .await
                .unwrap();
            assert_eq!(*other, 1);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*slot.get(|| ready(ok(3, 60))).await.unwrap(), 2);
    }
}
