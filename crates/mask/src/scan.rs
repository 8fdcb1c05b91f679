//! Finding matches in a window of the body: one pass of the multi-pattern regex (every detector
//! and custom pattern), the checks that matches must pass, one pass of aho-corasick over the
//! secret values, and the union of both.

use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input, meta};

use crate::detectors::{Check, iban_end, luhn, pem_end};
use crate::exact::ExactValues;
use crate::masker::Compiled;
use crate::rewrite::{escape_end, escape_start};

/// A span to replace and the detector that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub det: u32,
}

/// Per-stream search state, so searching allocates nothing per match.
pub(crate) struct Scanner {
    cache: Option<meta::Cache>,
    caps: Option<Captures>,
    regex_hits: Vec<Hit>,
    exact_hits: Vec<Hit>,
}

impl Scanner {
    pub(crate) fn new(c: &Compiled) -> Self {
        Self {
            cache: c.regex.as_ref().map(meta::Regex::create_cache),
            caps: c.regex.as_ref().map(meta::Regex::create_captures),
            regex_hits: Vec::new(),
            exact_hits: Vec::new(),
        }
    }

    /// Appends to `out`, in order and without overlap, every hit that starts in `hay[from..]`.
    /// `more` says whether bytes may follow `hay` (a stream not yet finished): a check that needs
    /// to see past the end then extends the hit to the end, so the stream holds it back.
    pub(crate) fn find(
        &mut self,
        c: &Compiled,
        exact: &ExactValues,
        hay: &[u8],
        from: usize,
        more: bool,
        out: &mut Vec<Hit>,
    ) {
        self.regex_hits.clear();
        self.exact_hits.clear();
        if let (Some(re), Some(cache), Some(caps)) = (&c.regex, &mut self.cache, &mut self.caps) {
            find_regex(c, re, cache, caps, hay, from, more, &mut self.regex_hits);
        }
        if let Some(ac) = exact.automaton() {
            let input = aho_corasick::Input::new(hay).span(from..hay.len());
            for m in ac.find_iter(input) {
                self.exact_hits.push(Hit {
                    start: m.start(),
                    end: m.end(),
                    det: c.secret_det,
                });
            }
        }
        for h in self.regex_hits.iter_mut().chain(self.exact_hits.iter_mut()) {
            h.start = escape_start(hay, h.start, from);
            h.end = escape_end(hay, h.end, from);
        }
        merge(&self.regex_hits, &self.exact_hits, out);
    }
}

#[allow(clippy::too_many_arguments)]
fn find_regex(
    c: &Compiled,
    re: &meta::Regex,
    cache: &mut meta::Cache,
    caps: &mut Captures,
    hay: &[u8],
    from: usize,
    more: bool,
    out: &mut Vec<Hit>,
) {
    let mut at = from;
    while at < hay.len() {
        let input = Input::new(hay).span(at..hay.len());
        let Some(m) = re.search_with(cache, &input) else {
            break;
        };
        let info = &c.patterns[m.pattern().as_usize()];
        let (mut s, mut e) = (m.start(), m.end());
        if info.group {
            let anchored = Input::new(hay)
                .span(m.start()..hay.len())
                .anchored(Anchored::Pattern(m.pattern()));
            re.search_captures_with(cache, &anchored, caps);
            if let Some(g) = caps.get_group(1) {
                (s, e) = (g.start, g.end);
            }
        }
        let ok = match info.check {
            Check::None => true,
            Check::Luhn => luhn(&hay[s..e]),
            Check::Iban => match iban_end(&hay[s..e]) {
                Some(len) => {
                    e = s + len;
                    true
                }
                None => false,
            },
            Check::AwsSecretEnd => hay
                .get(e)
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'='))),
            Check::PemBlock => {
                let limit = hay.len().min(s.saturating_add(c.max_match));
                e = pem_end(hay, e, limit, more && limit == hay.len());
                true
            }
        };
        if ok && e > s {
            out.push(Hit {
                start: s,
                end: e,
                det: info.det,
            });
            at = e.max(m.start() + 1);
        } else {
            // A failed check must not hide a match of another detector starting inside it.
            at = m.start() + 1;
        }
    }
}

/// The union of two sorted hit lists: overlapping hits become one, named by the one that starts
/// first (the longer on a tie), so no byte of either survives.
fn merge(a: &[Hit], b: &[Hit], out: &mut Vec<Hit>) {
    let (mut i, mut j) = (0, 0);
    let base = out.len();
    while i < a.len() || j < b.len() {
        let take_a = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => (x.start, std::cmp::Reverse(x.end)) <= (y.start, std::cmp::Reverse(y.end)),
            (Some(_), None) => true,
            _ => false,
        };
        let h = if take_a {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if out.len() > base
            && let Some(last) = out.last_mut()
            && h.start < last.end
        {
            last.end = last.end.max(h.end);
            continue;
        }
        out.push(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_unions_overlaps() {
        let a = [Hit { start: 0, end: 5, det: 1 }, Hit { start: 10, end: 12, det: 1 }];
        let b = [Hit { start: 3, end: 8, det: 2 }, Hit { start: 20, end: 25, det: 2 }];
        let mut out = Vec::new();
        merge(&a, &b, &mut out);
        assert_eq!(
            out,
            vec![
                Hit { start: 0, end: 8, det: 1 },
                Hit { start: 10, end: 12, det: 1 },
                Hit { start: 20, end: 25, det: 2 }
            ]
        );
    }
}
