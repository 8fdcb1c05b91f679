//! Masking for the gateway (SPEC §9, issue 17): rewrites secrets and personal data in bodies before
//! they leave the gateway or reach a recording. No I/O; the gateway feeds it chunks.
//!
//! - [`MaskConfig`]: the route's `[mask]` table (serde, `deny_unknown_fields`).
//! - [`Masker`]: compiled once per route from the config — built-in detectors and custom
//!   regexes in a few multi-pattern regexes (`regex-automata`'s meta engine, the `regex` crate's
//!   linear-time engine and syntax), JSON paths — plus the organization's secret values
//!   ([`ExactValueSet`], swapped atomically when they change). Cheap to clone (an `Arc` inside).
//! - [`StreamMasker`]: one per body. `push` returns what is safe to emit now and keeps a bounded
//!   carry-over, so a match split across chunks at any byte is still masked; `finish` flushes.
//! - [`Counts`]: replacements per detector name, for the audit event and metrics.
//!
//! Every replacement is `[MASKED:<detector>]`; in a JSON body it is written inside a string (or
//! as a string in place of a bare number), so the body stays valid JSON. Bodies are bytes as
//! sent: a compressed body (`Content-Encoding` other than identity) must be decoded first.
//! docs/gateway-masking.md is the user-facing reference.

mod compiled;
mod config;
mod content;
mod counts;
mod detectors;
mod exact;
mod hit;
mod json_path;
mod masker;
mod rewrite;
mod scan;
mod stream;

pub use config::{CustomPattern, DEFAULT_JSON_DOCUMENT_LIMIT, DEFAULT_MAX_MATCH, MaskConfig};
pub use content::ContentKind;
pub use counts::Counts;
pub use detectors::{BUILTIN_NAMES, JSON_PATH_NAME, JSON_PATH_SKIPPED_NAME, SECRET_NAME};
pub use exact::{ExactValueSet, ExactValues, MAX_EXACT_LEN, MIN_EXACT_LEN};
pub use json_path::JsonPath;
pub use masker::Masker;
pub use stream::StreamMasker;

/// A mask configuration or a secret value set that cannot be used. The message names the field,
/// pattern or value index at fault and says how to fix it; it never contains a secret value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaskError {
    #[error("unknown mask detector `{name}`: use \"all\" or any of {valid}")]
    UnknownDetector { name: String, valid: String },
    #[error(
        "custom mask pattern `{name}` (`{pattern}`) is not accepted: {reason}. Only the regex crate's \
         linear-time syntax is supported (no look-around, no backreferences)"
    )]
    CustomPattern {
        name: String,
        pattern: String,
        reason: String,
    },
    #[error(
        "custom mask pattern `{name}` can match {len} bytes, more than max_match_bytes ({max}): bound its \
         repetitions (e.g. `{{1,256}}` instead of `+`) or raise max_match_bytes"
    )]
    CustomPatternUnbounded {
        name: String,
        len: String,
        max: usize,
    },
    #[error(
        "custom mask pattern name `{name}` is not accepted: {reason} (names are 1-40 of [a-z0-9_] and \
         must not repeat a built-in detector, `secret` or `json_path`)"
    )]
    CustomName { name: String, reason: String },
    #[error(
        "mask JSON path `{path}` is not accepted at byte {at}: {reason}. Supported: `$.a.b`, `$.items[*].secret`, `$.list[0]`, `$['a key']`, `$..password`, `$.a.*`"
    )]
    JsonPath {
        path: String,
        at: usize,
        reason: String,
    },
    #[error("max_match_bytes {value} is out of range: use {min}..={max}")]
    MaxMatch {
        value: usize,
        min: usize,
        max: usize,
    },
    #[error(
        "secret value #{index} is {len} bytes, longer than the {max} bytes exact matching supports; \
         mask it with a detector or a custom pattern instead"
    )]
    ExactValueTooLong {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("the mask patterns could not be compiled together: {0}")]
    Compile(String),
}
