//! The route's `[mask]` table. Kept as plain serde data so the route model can embed it; all
//! checking happens when a [`crate::Masker`] is compiled from it.

use serde::{Deserialize, Serialize};

/// Default longest single match, and so the stream carry-over: a 4096-bit RSA key in PEM with
/// JSON `\n` escapes is about 3.4 KiB, so 8 KiB leaves room for every built-in detector.
pub const DEFAULT_MAX_MATCH: usize = 8 * 1024;
/// Default largest JSON body JSON paths are applied to (the whole document must be parsed).
pub const DEFAULT_JSON_DOCUMENT_LIMIT: usize = 1024 * 1024;

/// Masking for one route. Every field has a default, so an empty `[mask]` table masks responses
/// with every built-in detector and the organization's secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Built-in detectors by name, or `["all"]`. `[]` turns the built-ins off.
    pub detectors: Vec<String>,
    /// Extra patterns, each replaced with `[MASKED:<name>]`.
    pub custom: Vec<CustomPattern>,
    /// JSON paths whose values become `"[MASKED:json_path]"` in JSON bodies up to
    /// `json_document_limit` bytes.
    pub json_paths: Vec<String>,
    /// Mask request bodies too (before they reach the upstream), not only responses.
    pub requests: bool,
    /// Mask the current values of every secret Keyward resolved for the organization.
    pub secrets: bool,
    /// The longest match a pattern may produce; also what a stream holds back at most.
    pub max_match_bytes: usize,
    /// Largest JSON body, in bytes, that JSON paths are applied to.
    pub json_document_limit: usize,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            detectors: vec!["all".to_owned()],
            custom: Vec::new(),
            json_paths: Vec::new(),
            requests: false,
            secrets: true,
            max_match_bytes: DEFAULT_MAX_MATCH,
            json_document_limit: DEFAULT_JSON_DOCUMENT_LIMIT,
        }
    }
}

/// A custom detector: a name (used in `[MASKED:<name>]` and the counts) and a pattern in the
/// `regex` crate's syntax, whose matches must be bounded by `max_match_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    pub name: String,
    pub pattern: String,
}
