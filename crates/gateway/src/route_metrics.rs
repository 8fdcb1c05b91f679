//! A route's metric handles, registered once per route generation instead of per request: the
//! `metrics` macros with dynamic labels allocate and hash the label set on every call, which on
//! the hot path costs as much as the proxying around it.

use std::collections::HashMap;
use std::sync::Mutex;

use metrics::{Counter, Histogram};

/// `keyward_gateway_request_duration_seconds` and `keyward_gateway_requests_total` for one route.
pub struct RouteMetrics {
    route: String,
    duration: Histogram,
    /// Keyed by (allowed, status): a handful of entries per route.
    requests: Mutex<HashMap<(bool, u16), Counter>>,
}

impl RouteMetrics {
    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_owned(),
            duration: metrics::histogram!("keyward_gateway_request_duration_seconds", "route" => route.to_owned()),
            requests: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(&self, allowed: bool, status: u16, seconds: f64) {
        self.duration.record(seconds);
        let counter = match self.requests.lock() {
            Ok(mut known) => known
                .entry((allowed, status))
                .or_insert_with(|| requests_counter(&self.route, allowed, status))
                .clone(),
            // A panic elsewhere while holding the lock must not stop the counting.
            Err(_) => requests_counter(&self.route, allowed, status),
        };
        counter.increment(1);
    }
}

/// The counter for a request that matched no route (label `route=""`).
pub fn record_unrouted(status: u16, seconds: f64) {
    metrics::histogram!("keyward_gateway_request_duration_seconds", "route" => "").record(seconds);
    requests_counter("", false, status).increment(1);
}

fn requests_counter(route: &str, allowed: bool, status: u16) -> Counter {
    metrics::counter!(
        "keyward_gateway_requests_total",
        "route" => route.to_owned(),
        "decision" => if allowed { "allow" } else { "deny" },
        "status" => status.to_string()
    )
}
