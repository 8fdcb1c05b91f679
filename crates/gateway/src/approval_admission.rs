//! Admission of new approval requests: the pending bounds are read from the store and the new
//! request is written after, so two requests checked at once could both pass a bound with one
//! slot left. A flood of concurrent requests from one caller would then hold far more than the
//! bound. Within one gateway process the check and the insert run under a lock per route and per
//! caller (route first, so two requests never wait on each other in opposite orders). Across
//! replicas a bound can still be passed by at most one request per replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

#[derive(Default)]
pub struct Admission {
    routes: Locks,
    callers: Locks,
}

/// Held while a request is checked against the bounds and written; dropping it lets the next
/// request of the same route or caller in.
pub struct Admitted {
    _route: OwnedMutexGuard<()>,
    _caller: OwnedMutexGuard<()>,
}

impl Admission {
    /// Waits for the route's and the caller's turn.
    pub async fn enter(&self, route: &str, caller: &str) -> Admitted {
        let route_lock = lock_for(&self.routes, route);
        let caller_lock = lock_for(&self.callers, caller);
        let route_guard = route_lock.lock_owned().await;
        let caller_guard = caller_lock.lock_owned().await;
        Admitted {
            _route: route_guard,
            _caller: caller_guard,
        }
    }
}

/// The key's lock, forgetting locks nobody holds or waits for so the map stays as small as the
/// set of routes and callers asking at the moment.
fn lock_for(locks: &Locks, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = locks.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() > 1024 {
        map.retain(|_, lock| Arc::strong_count(lock) > 1);
    }
    map.entry(key.to_owned()).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_caller_is_admitted_one_at_a_time_and_others_are_not_held_up() {
        let admission = Arc::new(Admission::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (admission, inside, most) = (admission.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = admission.enter("r", "caller-a").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two requests of one caller were checked at once"
        );

        // Another route and caller are admitted while the first is inside.
        let first = admission.enter("r", "caller-a").await;
        let other = tokio::time::timeout(Duration::from_secs(1), admission.enter("s", "caller-b"))
            .await
            .expect("an unrelated route and caller waited for another's turn");
        drop((first, other));
    }

    #[test]
    fn unused_locks_are_forgotten() {
        let locks = Locks::default();
        for i in 0..3000 {
            drop(lock_for(&locks, &format!("caller-{i}")));
        }
        assert!(locks.lock().expect("lock").len() <= 1025);
    }
}
