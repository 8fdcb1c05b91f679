//! Releasing held requests when their approval is decided, on any replica.
//!
//! One [`ApprovalWatcher`] per store (so per process) keeps a map from approval id to a
//! `tokio::sync::watch` channel; every held request awaits its channel, so a waiter costs a map
//! entry and a task's stack, never a thread or a database connection. One background task feeds
//! the map:
//! - PostgreSQL: one `LISTEN keyward_approvals` connection; each transition is `NOTIFY`ed with
//!   the approval id in the transaction that made it, and only ids with waiters are read back.
//!   A slow poll of the waited-for ids covers notifications lost while the listener reconnects.
//! - SQLite (one host, no notifications): every [`SQLITE_POLL`] the states of the ids with
//!   waiters are read in one query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use keyward_core::ApprovalId;
use keyward_core::api::approvals::ApprovalState;
use sqlx::{PgPool, SqlitePool};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Result, StoreError};

/// The PostgreSQL channel every transition is announced on (payload: the approval id).
pub const NOTIFY_CHANNEL: &str = "keyward_approvals";

/// How often SQLite is polled while anyone waits.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);
/// How often PostgreSQL is polled besides notifications (lost ones, listener reconnects).
pub const POSTGRES_POLL: Duration = Duration::from_secs(5);
/// Ids per state query.
const CHUNK: usize = 500;

#[derive(Clone)]
enum Source {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

struct Shared {
    source: Source,
    waiters: Mutex<HashMap<ApprovalId, watch::Sender<ApprovalState>>>,
    started: OnceLock<()>,
}

/// Waits for approvals to leave `pending`. Cheap to clone; clones share the map and the task.
#[derive(Clone)]
pub struct ApprovalWatcher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ApprovalWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalWatcher")
            .field("waited_for", &self.waited_for())
            .finish()
    }
}

/// Removes the id's entry when its last waiter leaves (also when the waiting future is dropped).
struct Registration {
    shared: Arc<Shared>,
    id: ApprovalId,
    rx: Option<watch::Receiver<ApprovalState>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Ok(mut map) = self.shared.waiters.lock()
            && map.get(&self.id).is_some_and(|tx| tx.receiver_count() == 0)
        {
            map.remove(&self.id);
        }
    }
}

impl ApprovalWatcher {
    pub(crate) fn sqlite(pool: SqlitePool) -> Self {
        Self::new(Source::Sqlite(pool))
    }

    pub(crate) fn postgres(pool: PgPool) -> Self {
        Self::new(Source::Postgres(pool))
    }

    fn new(source: Source) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                waiters: Mutex::new(HashMap::new()),
                started: OnceLock::new(),
            }),
        }
    }

    /// How many distinct approvals are being waited for (a gauge for metrics and tests).
    pub fn waited_for(&self) -> usize {
        self.shared.waiters.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Waits until the approval leaves `pending` or `deadline` passes, and returns its stored
    /// state then (`pending` at the deadline: the caller decides what an undecided request
    /// means — usually it expires it). Must run inside a Tokio runtime.
    pub async fn wait_for_decision(
        &self,
        id: ApprovalId,
        deadline: Instant,
    ) -> Result<ApprovalState> {
        let rx = {
            let mut map =
                self.shared.waiters.lock().map_err(|_| {
                    StoreError::Open("the approval watcher's lock is poisoned".into())
                })?;
            map.entry(id)
                .or_insert_with(|| watch::channel(ApprovalState::Pending).0)
                .subscribe()
        };
        let mut registration = Registration {
            shared: self.shared.clone(),
            id,
            rx: Some(rx),
        };
        self.ensure_started();
        // A decision taken before this waiter registered was announced to nobody: read it once.
        let now = stored_states(&self.shared.source, &[id]).await?;
        if let Some(state) = now
            .get(&id)
            .copied()
            .filter(|s| *s != ApprovalState::Pending)
        {
            return Ok(state);
        }
        let Some(rx) = registration.rx.as_mut() else {
            return Err(StoreError::Open("approval waiter lost its channel".into()));
        };
        loop {
            let state = *rx.borrow_and_update();
            if state != ApprovalState::Pending {
                return Ok(state);
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let last = stored_states(&self.shared.source, &[id]).await?;
        last.get(&id).copied().ok_or(StoreError::NotFound)
    }

    fn ensure_started(&self) {
        self.shared.started.get_or_init(|| {
            let weak = Arc::downgrade(&self.shared);
            match &self.shared.source {
                Source::Sqlite(_) => tokio::spawn(poll_loop(weak, SQLITE_POLL)),
                Source::Postgres(pool) => tokio::spawn(listen_loop(weak, pool.clone())),
            };
        });
    }
}

/// The ids someone waits for.
fn waited_ids(shared: &Shared) -> Vec<ApprovalId> {
    shared
        .waiters
        .lock()
        .map(|m| m.keys().copied().collect())
        .unwrap_or_default()
}

/// Tells the waiters of every id that left `pending`.
fn publish(shared: &Shared, states: &HashMap<ApprovalId, ApprovalState>) {
    let Ok(map) = shared.waiters.lock() else {
        return;
    };
    for (id, state) in states {
        if *state != ApprovalState::Pending
            && let Some(tx) = map.get(id)
        {
            tx.send_replace(*state);
        }
    }
}

/// Reads the waited-for states and publishes them; errors are logged and retried next round.
async fn poll_once(shared: &Shared) {
    let ids = waited_ids(shared);
    for chunk in ids.chunks(CHUNK) {
        match stored_states(&shared.source, chunk).await {
            Ok(states) => publish(shared, &states),
            Err(e) => tracing::warn!(error = %e, "reading approval states for waiting requests"),
        }
    }
}

async fn poll_loop(weak: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        poll_once(&shared).await;
    }
}

async fn listen_loop(weak: Weak<Shared>, pool: PgPool) {
    let mut listener: Option<sqlx::postgres::PgListener> = None;
    let mut tick = tokio::time::interval(POSTGRES_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        let Some(l) = listener.as_mut() else {
            match connect_listener(&pool).await {
                Ok(l) => {
                    listener = Some(l);
                    // Whatever happened while nobody listened.
                    if let Some(shared) = weak.upgrade() {
                        poll_once(&shared).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for approval decisions; polling until it works");
                    if let Some(shared) = weak.upgrade() {
                        poll_once(&shared).await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        };
        tokio::select! {
            received = l.try_recv() => match received {
                Ok(Some(note)) => {
                    let Some(shared) = weak.upgrade() else { return };
                    if let Ok(id) = note.payload().parse::<ApprovalId>()
                        && shared.waiters.lock().is_ok_and(|m| m.contains_key(&id))
                    {
                        match stored_states(&shared.source, &[id]).await {
                            Ok(states) => publish(&shared, &states),
                            Err(e) => tracing::warn!(error = %e, "reading a notified approval"),
                        }
                    }
                }
                // The connection dropped; notifications in between are lost, so poll.
                Ok(None) => {
                    if let Some(shared) = weak.upgrade() {
                        poll_once(&shared).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the approval listener failed; reconnecting");
                    listener = None;
                }
            },
            _ = tick.tick() => {
                let Some(shared) = weak.upgrade() else { return };
                poll_once(&shared).await;
            }
        }
    }
}

async fn connect_listener(pool: &PgPool) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// The stored states of `ids` (absent ids are left out).
async fn stored_states(
    source: &Source,
    ids: &[ApprovalId],
) -> Result<HashMap<ApprovalId, ApprovalState>> {
    let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<(String, String)> = match source {
        Source::Sqlite(pool) => {
            let list = serde_json::to_string(&texts)
                .map_err(|e| StoreError::Corrupt(format!("approval ids: {e}")))?;
            sqlx::query_as(
                "SELECT id, state FROM approvals WHERE id IN (SELECT value FROM json_each($1))",
            )
            .bind(list)
            .fetch_all(pool)
            .await?
        }
        Source::Postgres(pool) => {
            sqlx::query_as("SELECT id, state FROM approvals WHERE id = ANY($1)")
                .bind(texts)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .filter_map(|(id, state)| Some((id.parse().ok()?, ApprovalState::parse(&state)?)))
        .collect())
}
