//! The crate's one reading of the wall clock (the workspace bans it elsewhere: time is an argument).

use std::time::{SystemTime, UNIX_EPOCH};

/// Where record times come from. The gateway passes the system clock; tests pass their own.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        system_now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// SigV4 request dates must be the real time, so S3 signing reads the clock here too.
#[allow(clippy::disallowed_methods)]
pub(crate) fn system_now() -> SystemTime {
    SystemTime::now()
}
