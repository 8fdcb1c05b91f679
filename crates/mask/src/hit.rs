//! A match to replace, shared by the regex passes and the secret-value matcher.

/// A span to replace and the detector that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub det: u32,
    /// Where the match that found the span starts: before `start` when the detector reads a key
    /// name in front of the value it replaces (`secret_access_key=` before an AWS secret). A
    /// stream must not cut between the two: the search after the cut would not see the name.
    pub anchor: usize,
}

impl Hit {
    /// A span that is its whole match.
    pub(crate) fn whole(start: usize, end: usize, det: u32) -> Self {
        Self {
            start,
            end,
            det,
            anchor: start,
        }
    }
}
