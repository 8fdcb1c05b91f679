//! Masking a body that arrives in chunks. The stream emits at once everything before the last
//! point no match can span, and holds back the rest (at most the longest possible match, plus a
//! quarter so tiny chunks are not rescanned byte by byte):
//! - outside event streams, after a byte no pattern and no secret value can contain (e.g. `{`,
//!   `}`, `[`, `]` in JSON);
//! - in an event stream, only after each blank line ending an event (an event is masked on its
//!   own, and the rest of an unfinished one waits for its end or for the bound);
//! - after a newline, when no pattern and no secret value can contain one and no PEM block is
//!   open before it (text flows line by line);
//! - otherwise `max_match_bytes` before the end, moved forward past a match that starts before
//!   it (a match that starts that early is complete: no match is longer).

use std::sync::Arc;

use crate::compiled::Compiled;
use crate::content::ContentKind;
use crate::counts::Counts;
use crate::exact::ExactValues;
use crate::rewrite::{Lex, escape_start};
use crate::scan::{Hit, Scanner};

/// Bytes already emitted that are kept before the pending ones, so word boundaries and escape
/// sequences at the start of the pending bytes are read in context.
const CONTEXT: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Matches cannot cross the cut: search only up to it.
    Closed,
    /// Held back from the end: search to the end and let a match that starts before the cut
    /// move it forward.
    Hold,
    /// The end of the body.
    Final,
}

/// Masks one body. `push` returns what may be sent now; `finish` returns the rest and the
/// counts. Not `Clone`: one per body.
pub struct StreamMasker {
    c: Arc<Compiled>,
    exact: Arc<ExactValues>,
    kind: ContentKind,
    cut_after: [bool; 256],
    hold: usize,
    slack: usize,
    buf: Vec<u8>,
    /// `buf[..pend]` has been emitted (kept as context).
    pend: usize,
    /// `buf[..scanned]` has been looked at for cut points.
    scanned: usize,
    /// Position just after the last cut byte seen (0: none).
    cut_byte: usize,
    /// Position just after the last event boundary seen (0: none).
    cut_event: usize,
    /// Position just after the last newline seen, when newlines are cut points (0: none).
    cut_line: usize,
    newline_cut: bool,
    lex: Lex,
    counts: Vec<u64>,
    scanner: Scanner,
    hits: Vec<Hit>,
}

impl std::fmt::Debug for StreamMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamMasker")
            .field("kind", &self.kind)
            .field("carry", &self.carry_len())
            .finish_non_exhaustive()
    }
}

impl StreamMasker {
    pub(crate) fn new(c: Arc<Compiled>, exact: Arc<ExactValues>, kind: ContentKind) -> Self {
        let mut cut_after = [false; 256];
        for (b, cut) in cut_after.iter_mut().enumerate() {
            *cut = !c.in_pattern[b] && !exact.byte_set()[b];
        }
        let hold = c.max_match.max(exact.max_len());
        let newline_cut = c.newline_cut && !exact.byte_set()[usize::from(b'\n')];
        let scanner = Scanner::new(&c, kind);
        let counts = vec![0; c.names.len()];
        Self {
            c,
            exact,
            kind,
            cut_after,
            hold,
            slack: hold / 4,
            buf: Vec::new(),
            pend: 0,
            scanned: 0,
            cut_byte: 0,
            cut_event: 0,
            cut_line: 0,
            newline_cut,
            lex: Lex::new(kind),
            counts,
            scanner,
            hits: Vec::new(),
        }
    }

    /// Bytes received and not yet emitted.
    pub fn carry_len(&self) -> usize {
        self.buf.len() - self.pend
    }

    /// The most `carry_len` can be after a `push` returns.
    pub fn carry_bound(&self) -> usize {
        self.hold + self.slack
    }

    /// Takes the next chunk; returns the masked bytes that are safe to send now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(chunk);
        self.find_cut_points();
        let mut out = Vec::with_capacity(chunk.len() + 64);
        if self.kind == ContentKind::EventStream {
            // An event is of no use to its reader before its blank line, so the rest of an
            // unfinished event waits for it (or for the bound below): one search per push
            // instead of one per cut point, and never a partial event on the wire.
            self.emit_events(self.cut_event, &mut out);
        } else {
            if self.cut_byte > self.pend {
                self.emit(self.cut_byte, Cut::Closed, &mut out);
            }
            if self.cut_line > self.pend && !self.pem_open(self.cut_line) {
                self.emit(self.cut_line, Cut::Closed, &mut out);
            }
        }
        let n = self.buf.len();
        if n - self.pend > self.hold + self.slack {
            self.emit(n - self.hold, Cut::Hold, &mut out);
        }
        self.compact();
        out
    }

    /// Masks and returns what is left, with the replacements made over the whole body.
    pub fn finish(mut self) -> (Vec<u8>, Counts) {
        let mut out = Vec::new();
        let n = self.buf.len();
        if self.kind == ContentKind::EventStream {
            self.emit_events(n, &mut out);
        }
        if n > self.pend {
            self.emit(n, Cut::Final, &mut out);
        }
        let mut counts = Counts::default();
        for (name, n) in self.c.names.iter().zip(&self.counts) {
            counts.add(name, *n);
        }
        (out, counts)
    }

    /// Emits every complete event before `limit`, each masked on its own so that no match spans
    /// two events however the stream was chunked. They are searched together first (one search
    /// instead of one per event, for streams of many small events); only when a match there
    /// crosses a blank line (a custom pattern can) are they searched again one by one.
    fn emit_events(&mut self, limit: usize, out: &mut Vec<u8>) {
        let from = self.pend;
        if limit <= from {
            return;
        }
        let Some(end) = last_event_end(&self.buf[from..limit]).map(|e| from + e) else {
            return;
        };
        self.hits.clear();
        self.scanner.find(
            &self.c,
            &self.exact,
            &self.buf[..end],
            from,
            false,
            &mut self.hits,
        );
        let crosses = self
            .hits
            .iter()
            .any(|h| has_blank_line(&self.buf[h.start..h.end]));
        if !crosses {
            self.write(end, Cut::Closed, out);
            return;
        }
        while self.pend < limit {
            let from = self.pend;
            let end = memchr::memchr_iter(b'\n', &self.buf[from..limit])
                .map(|i| from + i)
                .find(|&i| {
                    (i >= 1 && self.buf[i - 1] == b'\n')
                        || (i >= 2 && self.buf[i - 1] == b'\r' && self.buf[i - 2] == b'\n')
                });
            match end {
                Some(i) => self.emit(i + 1, Cut::Closed, out),
                None => break,
            }
        }
    }

    /// Whether `buf[pend..end]` holds a PEM BEGIN line with no END line after it.
    fn pem_open(&self, end: usize) -> bool {
        if !self.c.pem {
            return false;
        }
        let region = &self.buf[self.pend..end];
        memchr::memmem::rfind(region, b"-----BEGIN ")
            .is_some_and(|b| memchr::memmem::find(&region[b..], b"-----END ").is_none())
    }

    fn find_cut_points(&mut self) {
        let n = self.buf.len();
        let from = self.scanned.max(self.pend);
        if self.kind != ContentKind::EventStream
            && let Some(p) = self.buf[from..n]
                .iter()
                .rposition(|b| self.cut_after[usize::from(*b)])
        {
            self.cut_byte = from + p + 1;
        }
        if self.newline_cut
            && self.kind != ContentKind::EventStream
            && let Some(p) = memchr::memrchr(b'\n', &self.buf[from..n])
        {
            self.cut_line = from + p + 1;
        }
        if self.kind == ContentKind::EventStream {
            let lo = from.saturating_sub(2);
            for i in memchr::memrchr_iter(b'\n', &self.buf[lo..n]).map(|i| lo + i) {
                let blank = (i >= 1 && self.buf[i - 1] == b'\n')
                    || (i >= 2 && self.buf[i - 1] == b'\r' && self.buf[i - 2] == b'\n');
                if blank {
                    self.cut_event = self.cut_event.max(i + 1);
                    break;
                }
            }
        }
        self.scanned = n;
    }

    /// Emits `buf[pend..cut]` (or further, for a match held open by `Cut::Hold`), masked.
    fn emit(&mut self, cut: usize, how: Cut, out: &mut Vec<u8>) {
        let lo = self.pend;
        let (end, more) = match how {
            Cut::Closed => (cut, false),
            Cut::Hold => (self.buf.len(), true),
            Cut::Final => (self.buf.len(), false),
        };
        self.hits.clear();
        self.scanner.find(
            &self.c,
            &self.exact,
            &self.buf[..end],
            lo,
            more,
            &mut self.hits,
        );
        self.write(cut, how, out);
    }

    /// Writes `buf[pend..cut]` with the hits found (`self.hits`, in order) replaced, and moves
    /// `pend` past it (or past a match the cut would split).
    fn write(&mut self, cut: usize, how: Cut, out: &mut Vec<u8>) {
        let lo = self.pend;
        let end = match how {
            Cut::Closed => cut,
            Cut::Hold | Cut::Final => self.buf.len(),
        };
        let hay = &self.buf[..end];
        // No cut inside an escape: a match next to it takes the whole escape with it only when
        // the escape is seen whole (when no pattern holds hex digits, a cut byte may be one).
        let mut cut = if how == Cut::Final {
            cut
        } else {
            escape_start(hay, cut, lo)
        };
        // Every hit whose match starts before the cut goes now, and the cut moves past it: the
        // next search starts at the cut and would not see a key name read in front of a value
        // (`secret_access_key=` before an AWS secret), so it would let the value through.
        let keep = self
            .hits
            .iter()
            .rposition(|h| h.start < cut || h.anchor < cut)
            .map_or(0, |i| i + 1);
        if let Some(last) = self.hits[..keep].last() {
            cut = cut.max(last.end);
        }
        let mut cur = lo;
        for h in &self.hits[..keep] {
            let plain = &hay[cur..h.start];
            out.extend_from_slice(plain);
            self.lex.advance(plain);
            let marker = &self.c.markers[h.det as usize];
            if self.lex.replace(&hay[h.start..h.end], marker, out) {
                self.counts[h.det as usize] += 1;
            }
            cur = h.end;
        }
        let plain = &hay[cur..cut];
        out.extend_from_slice(plain);
        self.lex.advance(plain);
        self.pend = cut;
    }

    /// Drops emitted bytes but the context, once they are worth the move.
    fn compact(&mut self) {
        if self.pend > CONTEXT && self.pend - CONTEXT >= self.buf.len() / 2 {
            let drop = self.pend - CONTEXT;
            self.buf.drain(..drop);
            self.pend -= drop;
            self.scanned -= drop;
            self.cut_byte = self.cut_byte.saturating_sub(drop);
            self.cut_event = self.cut_event.saturating_sub(drop);
            self.cut_line = self.cut_line.saturating_sub(drop);
        }
    }
}

/// Where the last complete event of `bytes` ends (just after its blank line), if any. Read
/// from the end: the region handed over usually ends with one.
fn last_event_end(bytes: &[u8]) -> Option<usize> {
    memchr::memrchr_iter(b'\n', bytes)
        .find(|&i| blank_line_ends_at(bytes, i))
        .map(|i| i + 1)
}

/// Whether the newline at `i` ends a blank line (`\n\n` or `\n\r\n`).
fn blank_line_ends_at(bytes: &[u8], i: usize) -> bool {
    (i >= 1 && bytes[i - 1] == b'\n') || (i >= 2 && bytes[i - 1] == b'\r' && bytes[i - 2] == b'\n')
}

fn has_blank_line(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes).any(|i| blank_line_ends_at(bytes, i))
}
