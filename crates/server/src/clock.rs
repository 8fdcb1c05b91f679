//! The one place that reads the wall clock. The server reads time through the [`Clock`] in its
//! state, once per request (`Caller::now`), and passes `now` on as an argument, so the rotation
//! schedule, token lifetimes and sign-in backoffs are testable without sleeping.

use std::path::PathBuf;
use std::sync::Arc;

#[allow(clippy::disallowed_methods)]
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Wall time, optionally shifted by the seconds written in a file (`KEYWARD_TEST_CLOCK_FILE`),
/// which end-to-end tests rewrite to let an hour pass in a millisecond. The file is read at each
/// reading, so a test moves time for a running server; without it the clock is the wall clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_file: Option<Arc<PathBuf>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock shifted by the integer number of seconds in `path` (absent or empty: no shift).
    pub fn offset_by_file(path: PathBuf) -> Self {
        Clock {
            offset_file: Some(Arc::new(path)),
        }
    }

    fn offset_ms(&self) -> i64 {
        let Some(path) = &self.offset_file else {
            return 0;
        };
        std::fs::read_to_string(path.as_ref())
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .map_or(0, |secs| secs.saturating_mul(1000))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        wall_ms() + self.offset_ms()
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// Unix seconds of the wall clock, for code that runs outside a server (the admin CLI's key
/// listing) — the server itself reads its [`Clock`].
pub fn now() -> i64 {
    wall_ms().div_euclid(1000)
}

/// Unix milliseconds of the wall clock; see [`now`].
pub fn now_ms() -> i64 {
    wall_ms()
}

/// Unix seconds as an `OffsetDateTime`, for wire types.
pub fn to_datetime(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Unix seconds as RFC 3339 text, for `json!` bodies and audit details: `OffsetDateTime`'s own
/// `Serialize` writes an array of numbers. Outside years 0–9999 (which no expiry this server sets
/// reaches) RFC 3339 has no form, and the epoch stands in.
pub fn rfc3339(secs: i64) -> String {
    to_datetime(secs)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

pub fn ms_to_datetime(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_moves_a_running_clock() {
        let dir = std::env::temp_dir().join(format!("keyward-clock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("offset");
        let clock = Clock::offset_by_file(file.clone());
        let before = clock.now();
        std::fs::write(&file, "3600\n").unwrap();
        let after = clock.now();
        assert!(
            (3599..=3601).contains(&(after - before)),
            "moved {}",
            after - before
        );
        std::fs::write(&file, "not a number").unwrap();
        assert!((clock.now() - before).abs() <= 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
