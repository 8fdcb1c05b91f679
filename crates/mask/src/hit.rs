//! A match to replace, shared by the regex passes and the secret-value matcher.

/// A span to replace and the detector that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub det: u32,
}
