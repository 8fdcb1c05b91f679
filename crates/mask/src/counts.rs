//! Replacements per detector name, for the audit event and metrics.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many replacements each detector made (only detectors that made one appear).
/// `json_path_skipped` counts JSON bodies that JSON paths could not be applied to (over the
/// document limit, or not JSON); the detectors still ran on them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    /// Replacements made by `name` (0 if none).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Replacements made by all detectors (`json_path_skipped` is not a replacement).
    pub fn total(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() != crate::JSON_PATH_SKIPPED_NAME)
            .map(|(_, v)| v)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(detector name, count)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn add(&mut self, name: &str, n: u64) {
        if n > 0 {
            *self.0.entry(name.to_owned()).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in other.iter() {
            self.add(k, v);
        }
    }
}
