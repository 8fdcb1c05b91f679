//! The simulator's one reading of the wall clock; everything else goes through `Sim::now`, which
//! adds the admin clock offset (how tests make a fresh token look expired to the clouds).

/// Unix seconds now.
#[allow(clippy::disallowed_methods)] // the single place this crate reads the clock
pub fn wall_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[allow(clippy::disallowed_methods)]
pub fn wall() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// RFC 3339 for a unix time, as the clouds print expiry times.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
