//! Exact matching of the organization's secret values (aho-corasick, leftmost-longest), in their
//! raw form and in the forms they take inside a JSON string.

use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, packed};
use zeroize::Zeroizing;

use crate::MaskError;
use crate::hit::Hit;

/// Values shorter than this are not matched: masking every `abc` would wreck bodies, and a value
/// that short is no secret. They are counted in [`ExactValues::skipped_short`].
pub const MIN_EXACT_LEN: usize = 6;
/// Longest value matched exactly. A stream holds back up to the longest escaped form.
pub const MAX_EXACT_LEN: usize = 16 * 1024;

/// A compiled set of secret values. The values themselves are not kept (only the automaton
/// built from them, in memory); `Debug` shows counts only.
pub struct ExactValues {
    matcher: Matcher,
    values: usize,
    skipped_short: usize,
    max_len: usize,
    bytes: [bool; 256],
}

impl std::fmt::Debug for ExactValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactValues")
            .field("values", &self.values)
            .field("skipped_short", &self.skipped_short)
            .finish_non_exhaustive()
    }
}

impl Default for ExactValues {
    fn default() -> Self {
        Self::empty()
    }
}

/// Up to this many forms are searched with SIMD (Teddy, 64 patterns per searcher); more use one
/// aho-corasick DFA.
const PACKED_MAX: usize = 4 * 64;

enum Matcher {
    None,
    /// Each searcher finds its own leftmost-longest matches; the union is taken after.
    Packed(Vec<packed::Searcher>),
    Automaton(AhoCorasick),
}

/// The forms a value takes in a body: raw, JSON-escaped (`"`, `\`, control characters), and
/// JSON-escaped with `/` written `\/` as some encoders do.
fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out = vec![Zeroizing::new(value.to_vec())];
    let mut esc = Zeroizing::new(Vec::with_capacity(value.len() + 8));
    for &b in value {
        match b {
            b'"' => esc.extend_from_slice(b"\\\""),
            b'\\' => esc.extend_from_slice(b"\\\\"),
            b'\n' => esc.extend_from_slice(b"\\n"),
            b'\r' => esc.extend_from_slice(b"\\r"),
            b'\t' => esc.extend_from_slice(b"\\t"),
            0x08 => esc.extend_from_slice(b"\\b"),
            0x0c => esc.extend_from_slice(b"\\f"),
            b if b < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                esc.extend_from_slice(b"\\u00");
                esc.push(HEX[usize::from(b >> 4)]);
                esc.push(HEX[usize::from(b & 15)]);
            }
            b => esc.push(b),
        }
    }
    if esc.as_slice() != value {
        out.push(esc.clone());
    }
    if esc.contains(&b'/') {
        let mut slash = Zeroizing::new(Vec::with_capacity(esc.len() + 4));
        for &b in esc.iter() {
            if b == b'/' {
                slash.push(b'\\');
            }
            slash.push(b);
        }
        out.push(slash);
    }
    out
}

impl ExactValues {
    pub fn empty() -> Self {
        Self {
            matcher: Matcher::None,
            values: 0,
            skipped_short: 0,
            max_len: 0,
            bytes: [false; 256],
        }
    }

    /// Compiles the current secret values. A value longer than [`MAX_EXACT_LEN`] is an error
    /// naming its position (never its content); shorter than [`MIN_EXACT_LEN`] is skipped.
    pub fn new<I, V>(values: I) -> Result<Self, MaskError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut set = Self::empty();
        for (index, v) in values.into_iter().enumerate() {
            let v = v.as_ref();
            if v.len() > MAX_EXACT_LEN {
                return Err(MaskError::ExactValueTooLong {
                    index,
                    len: v.len(),
                    max: MAX_EXACT_LEN,
                });
            }
            if v.len() < MIN_EXACT_LEN {
                set.skipped_short += 1;
                continue;
            }
            set.values += 1;
            for form in forms(v) {
                set.max_len = set.max_len.max(form.len());
                for &b in form.iter() {
                    set.bytes[usize::from(b)] = true;
                }
                patterns.push(form);
            }
        }
        set.matcher = Self::matcher(&patterns)?;
        Ok(set)
    }

    /// Values matched (distinct inputs, not counting their escaped forms).
    pub fn len(&self) -> usize {
        self.values
    }

    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// Values too short to match.
    pub fn skipped_short(&self) -> usize {
        self.skipped_short
    }

    /// The longest form matched, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn matcher(patterns: &[Zeroizing<Vec<u8>>]) -> Result<Matcher, MaskError> {
        if patterns.is_empty() {
            return Ok(Matcher::None);
        }
        if patterns.len() <= PACKED_MAX {
            let searchers: Option<Vec<packed::Searcher>> = patterns
                .chunks(64)
                .map(|group| {
                    packed::Config::new()
                        .match_kind(packed::MatchKind::LeftmostLongest)
                        .builder()
                        .extend(group.iter().map(|p| p.as_slice()))
                        .build()
                })
                .collect();
            // None where the CPU has no SIMD Teddy can use.
            if let Some(searchers) = searchers {
                return Ok(Matcher::Packed(searchers));
            }
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            // A full DFA without prefilter: secret values may share prefixes (`sk_live_`),
            // and a prefilter then stops at every candidate of a dense body.
            .kind(Some(AhoCorasickKind::DFA))
            .prefilter(false)
            .build(patterns.iter().map(|p| p.as_slice()))
            .map_err(|e| MaskError::Compile(format!("secret values: {e}")))?;
        Ok(Matcher::Automaton(ac))
    }

    /// Appends every match starting in `hay[from..]` (unordered across searchers).
    pub(crate) fn find(&self, hay: &[u8], from: usize, det: u32, out: &mut Vec<Hit>) {
        match &self.matcher {
            Matcher::None => {}
            Matcher::Packed(searchers) => {
                for s in searchers {
                    let mut at = from;
                    while at < hay.len() {
                        let Some(m) = s.find_in(hay, aho_corasick::Span::from(at..hay.len()))
                        else {
                            break;
                        };
                        out.push(Hit::whole(m.start(), m.end(), det));
                        at = m.end().max(m.start() + 1);
                    }
                }
            }
            Matcher::Automaton(ac) => {
                let input = aho_corasick::Input::new(hay).span(from..hay.len());
                out.extend(
                    ac.find_iter(input)
                        .map(|m| Hit::whole(m.start(), m.end(), det)),
                );
            }
        }
    }

    pub(crate) fn byte_set(&self) -> &[bool; 256] {
        &self.bytes
    }
}

/// The organization's current secret values, shared by every route's masker and replaced as a
/// whole when they change. A stream keeps the set it started with.
#[derive(Debug, Default)]
pub struct ExactValueSet {
    current: RwLock<Arc<ExactValues>>,
}

impl ExactValueSet {
    pub fn new(values: ExactValues) -> Self {
        Self {
            current: RwLock::new(Arc::new(values)),
        }
    }

    /// Swaps in a new set; streams already running keep the old one until they finish.
    pub fn replace(&self, values: ExactValues) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(values);
    }

    pub fn current(&self) -> Arc<ExactValues> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
