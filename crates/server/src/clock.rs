//! The one place that reads the wall clock. Everything else takes `now` as an argument, so the
//! rotation schedule and token lifetimes are testable without sleeping.

#[allow(clippy::disallowed_methods)]
fn now_duration() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix seconds.
pub fn now() -> i64 {
    now_duration().as_secs() as i64
}

/// Unix milliseconds.
pub fn now_ms() -> i64 {
    now_duration().as_millis() as i64
}

/// Unix seconds as an `OffsetDateTime`, for wire types.
pub fn to_datetime(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub fn ms_to_datetime(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
