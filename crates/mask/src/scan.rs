//! Finding matches in a window of the body: each regex pass (literal-prefixed detectors, email,
//! card numbers, IBANs, custom patterns), the checks matches must pass, the secret values, and
//! the union of all of them.

use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

use crate::compiled::{Compiled, RegexPass};
use crate::content::ContentKind;
use crate::detectors::{Check, Pass, iban_end, luhn, pem_end};
use crate::exact::ExactValues;
pub(crate) use crate::hit::Hit;
use crate::rewrite::{escape_end, escape_start};

/// Per-stream search state, so searching allocates nothing per match. The lazy DFAs' caches are
/// the regexes' own pools, not per stream: a stream must not pay for building DFA states again.
pub(crate) struct Scanner {
    /// The body is an event stream: a match ends at a blank line.
    events: bool,
    caps: Vec<Captures>,
    hits: Vec<Hit>,
}

/// Where one window's search runs: `hay[from..]`, with `more` saying whether bytes may follow
/// `hay` (a stream not yet finished): a check that needs to see past the end then extends the
/// hit to the end, so the stream holds it back.
struct Window<'h> {
    hay: &'h [u8],
    more: bool,
    max_match: usize,
    events: bool,
}

impl Scanner {
    pub(crate) fn new(c: &Compiled, kind: ContentKind) -> Self {
        Self {
            events: kind == ContentKind::EventStream,
            caps: c.passes.iter().map(|p| p.regex.create_captures()).collect(),
            hits: Vec::new(),
        }
    }

    /// Appends to `out`, in order and without overlap, every hit that starts in `hay[from..]`.
    pub(crate) fn find(
        &mut self,
        c: &Compiled,
        exact: &ExactValues,
        hay: &[u8],
        from: usize,
        more: bool,
        out: &mut Vec<Hit>,
    ) {
        self.hits.clear();
        let w = Window {
            hay,
            more,
            max_match: c.max_match,
            events: self.events,
        };
        let (mut card, mut iban) = (None, None);
        for (p, caps) in c.passes.iter().zip(self.caps.iter_mut()) {
            match (&p.pass, &p.starts) {
                (Pass::Prefixed(_), Some(starts)) => {
                    let mut at = from;
                    let input = aho_corasick::Input::new(hay);
                    while let Some(m) = starts.find(input.clone().span(at..hay.len())) {
                        let before = self.hits.len();
                        search(p, caps, &w, m.start(), hay.len(), true, &mut self.hits);
                        // Literals overlap (`AKIASIA…`): after a miss, look again one byte on.
                        at = self
                            .hits
                            .get(before)
                            .map_or(m.start() + 1, |h| h.end.max(m.start() + 1));
                    }
                }
                (Pass::Card, _) => card = Some((p, caps)),
                (Pass::Iban, _) => iban = Some((p, caps)),
                _ => search(p, caps, &w, from, hay.len(), false, &mut self.hits),
            }
        }
        if card.is_some() || iban.is_some() {
            candidates(card, iban, &w, from, &mut self.hits);
        }
        exact.find(hay, from, c.secret_det, &mut self.hits);
        for h in self.hits.iter_mut() {
            h.start = escape_start(hay, h.start, from);
            h.end = escape_end(hay, h.end, from);
            h.anchor = h.anchor.min(h.start);
        }
        self.hits
            .sort_unstable_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        union(&self.hits, out);
    }
}

/// Every match of `p` starting in `hay[from..to]` (ending by `to`), checked.
fn search(
    p: &RegexPass,
    caps: &mut Captures,
    w: &Window<'_>,
    from: usize,
    to: usize,
    anchored: bool,
    out: &mut Vec<Hit>,
) {
    let hay = w.hay;
    let mut at = from;
    while at < to {
        let mut input = Input::new(hay).span(at..to);
        if anchored {
            input = input.anchored(Anchored::Yes);
        }
        let Some(m) = p.regex.search(&input) else {
            break;
        };
        let info = &p.patterns[m.pattern().as_usize()];
        let (mut s, mut e) = (m.start(), m.end());
        if info.group {
            let anchored = Input::new(hay)
                .span(m.start()..to)
                .anchored(Anchored::Pattern(m.pattern()));
            p.regex.search_captures(&anchored, caps);
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
                let limit = hay.len().min(s.saturating_add(w.max_match));
                e = pem_end(hay, e, limit, w.more && limit == hay.len(), w.events);
                true
            }
        };
        if ok && e > s {
            out.push(Hit {
                start: s,
                end: e,
                det: info.det,
                anchor: m.start().min(s),
            });
            at = e.max(m.start() + 1);
        } else {
            // A failed check must not hide a match starting inside it.
            at = m.start() + 1;
        }
        if anchored {
            break;
        }
    }
}

/// The first ASCII digit at or after `i`. Most of a body is not digits, and a byte loop over
/// it was the largest cost of masking: x86-64 compares sixteen bytes at a time (SSE2, which
/// every x86-64 CPU has), other targets eight (SWAR).
#[cfg(target_arch = "x86_64")]
fn next_digit(hay: &[u8], i: usize) -> usize {
    // SAFETY: SSE2 is part of the x86-64 baseline: every CPU this target runs on has it.
    unsafe { scan_sse2::<true>(hay, i) }
}

#[cfg(not(target_arch = "x86_64"))]
fn next_digit(hay: &[u8], i: usize) -> usize {
    next_digit_swar(hay, i)
}

/// The first byte at or after `i` that is not an ASCII digit (the end of a run of digits): a
/// timestamp or an id in every event of a stream made a byte loop here cost more than the scan
/// for the run's start.
#[cfg(target_arch = "x86_64")]
fn digit_run_end(hay: &[u8], i: usize) -> usize {
    // SAFETY: as in `next_digit`.
    unsafe { scan_sse2::<false>(hay, i) }
}

#[cfg(not(target_arch = "x86_64"))]
fn digit_run_end(hay: &[u8], mut i: usize) -> usize {
    while i < hay.len() && hay[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// The first byte at or after `i` that is (`DIGIT`) or is not (`!DIGIT`) an ASCII digit,
/// sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn scan_sse2<const DIGIT: bool>(hay: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::{
        _mm_add_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // Adding 0x50 moves '0'..='9' to the ten lowest signed bytes (-128..=-119), so one signed
    // compare finds them.
    let shift = _mm_set1_epi8(0x50);
    let limit = _mm_set1_epi8(-118);
    while let Some(block) = hay.get(i..i + 16) {
        // SAFETY: `block` is sixteen readable bytes; the load has no alignment requirement.
        let v = unsafe { _mm_loadu_si128(block.as_ptr().cast()) };
        let digits = _mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(v, shift), limit));
        let wanted = if DIGIT { digits } else { !digits & 0xFFFF };
        if wanted != 0 {
            return i + wanted.trailing_zeros() as usize;
        }
        i += 16;
    }
    if DIGIT {
        return next_digit_swar(hay, i);
    }
    while i < hay.len() && hay[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// [`next_digit`] eight bytes at a time in a `u64`.
fn next_digit_swar(hay: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = hay.get(i..i + 8) {
        let x = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        // Bit Twiddling Hacks' hasbetween(x, '0' - 1, '9' + 1): a high bit per byte in range.
        let t = x & (ONES * 127);
        let hit = (ONES * (127 + 0x3A) - t) & !x & (t + ONES * (127 - 0x2F)) & HIGH;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < hay.len() && !hay[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// Card numbers and IBANs in one loop over the digit runs of the window. A card candidate is a
/// run of digits with single spaces or dashes between them holding at least 13 digits, searched
/// with the card pattern (which decides boundaries and grouping); an IBAN candidate is a run
/// whose two first digits follow two capital letters, searched anchored at the letters.
fn candidates(
    card: Option<(&RegexPass, &mut Captures)>,
    iban: Option<(&RegexPass, &mut Captures)>,
    w: &Window<'_>,
    from: usize,
    out: &mut Vec<Hit>,
) {
    let hay = w.hay;
    let n = hay.len();
    let (mut card, mut iban) = (card, iban);
    let mut i = from;
    loop {
        i = next_digit(hay, i);
        if i >= n {
            break;
        }
        let start = i;
        if start >= from + 2
            && hay[start - 2].is_ascii_uppercase()
            && hay[start - 1].is_ascii_uppercase()
            && hay.get(start + 1).is_some_and(u8::is_ascii_digit)
            && let Some((p, caps)) = iban.as_mut()
        {
            let before = out.len();
            search(p, caps, w, start - 2, n, true, out);
            if let Some(h) = out.get(before) {
                i = h.end.max(start + 1);
                continue;
            }
        }
        let mut digits = 0;
        loop {
            let end = digit_run_end(hay, i);
            digits += end - i;
            i = end;
            if i + 1 < n && matches!(hay[i], b' ' | b'-') && hay[i + 1].is_ascii_digit() {
                i += 1;
                continue;
            }
            break;
        }
        if digits >= 13
            && let Some((p, caps)) = card.as_mut()
        {
            search(p, caps, w, start, i, false, out);
        }
    }
}

/// The union of sorted hits: overlapping hits become one, named by the one that starts first
/// (the longer on a tie), so no byte of either survives.
fn union(hits: &[Hit], out: &mut Vec<Hit>) {
    let base = out.len();
    for &h in hits {
        if out.len() > base
            && let Some(last) = out.last_mut()
            && h.start < last.end
        {
            last.end = last.end.max(h.end);
            last.anchor = last.anchor.min(h.anchor);
            continue;
        }
        out.push(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_digit_finds_the_first() {
        let h = b"abcdefghijklmnopqrstuvwxyz\xff\x80/:9 and 0";
        assert_eq!(next_digit(h, 0), 30);
        assert_eq!(next_digit(h, 31), 36);
        assert_eq!(next_digit(h, 37), 37);
        for k in 0..20 {
            let mut v = vec![b'x'; 20];
            v[k] = b'5';
            assert_eq!(next_digit(&v, 0), k);
        }
        assert_eq!(next_digit(b"/:@`", 0), 4);
    }

    /// Every byte value at every offset of a 40-byte haystack, against a byte loop, for both
    /// the SIMD and the SWAR scans.
    #[test]
    fn next_digit_agrees_with_a_byte_loop_for_every_byte_value() {
        let naive = |h: &[u8], i: usize| {
            (i..h.len())
                .find(|&k| h[k].is_ascii_digit())
                .unwrap_or(h.len())
        };
        for b in 0..=255u8 {
            for at in 0..40 {
                let mut h = vec![b'x'; 40];
                h[at] = b;
                for from in [0, 1, at.saturating_sub(1), at, at + 1, 39] {
                    assert_eq!(
                        next_digit(&h, from),
                        naive(&h, from),
                        "byte {b} at {at} from {from}"
                    );
                    assert_eq!(
                        next_digit_swar(&h, from),
                        naive(&h, from),
                        "byte {b} at {at} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn union_merges_overlaps() {
        let hits = [
            Hit::whole(0, 5, 1),
            Hit::whole(3, 8, 2),
            Hit::whole(10, 12, 1),
            Hit::whole(20, 25, 2),
        ];
        let mut out = Vec::new();
        union(&hits, &mut out);
        assert_eq!(
            out,
            vec![
                Hit::whole(0, 8, 1),
                Hit::whole(10, 12, 1),
                Hit::whole(20, 25, 2)
            ]
        );
    }
}
