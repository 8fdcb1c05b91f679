//! Writing replacements so the body stays what it was: inside a JSON string a match becomes the
//! marker; a bare JSON value (a number) becomes the marker as a string; quotes and structure
//! between two strings are kept. In an event stream a `data:` line whose payload starts with `{`
//! or `[` is JSON; other lines are text.

use crate::content::ContentKind;

/// What a byte is to the JSON being written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// Inside a string (quotes excluded).
    Str,
    /// Whitespace, `{}[]:,` or a string's quote outside a string: kept.
    Structural,
    /// Outside a string, part of a bare value (number, literal, or not JSON at all).
    Bare,
    /// Text, not JSON.
    Raw,
}

/// The lexer state at the first byte not yet written, carried across `push` calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lex {
    kind: ContentKind,
    in_str: bool,
    esc: bool,
    /// Event streams: bytes of the `data: ` prefix matched so far on this line; `DECIDED` once
    /// the line's payload has started.
    pfx: u8,
    line_json: bool,
}

const DECIDED: u8 = u8::MAX;

fn structural(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b'[' | b']' | b':' | b','
    )
}

impl Lex {
    pub(crate) fn new(kind: ContentKind) -> Self {
        Self {
            kind,
            in_str: false,
            esc: false,
            pfx: 0,
            line_json: false,
        }
    }

    fn json_step(&mut self, b: u8) -> Class {
        if self.in_str {
            if self.esc {
                self.esc = false;
                Class::Str
            } else if b == b'\\' {
                self.esc = true;
                Class::Str
            } else if b == b'"' {
                self.in_str = false;
                Class::Structural
            } else {
                Class::Str
            }
        } else if b == b'"' {
            self.in_str = true;
            Class::Structural
        } else if structural(b) {
            Class::Structural
        } else {
            Class::Bare
        }
    }

    fn new_line(&mut self) {
        self.in_str = false;
        self.esc = false;
        self.pfx = 0;
        self.line_json = false;
    }

    /// Event-stream prefix recognition: `data:`, one optional space, then `{` or `[`.
    fn prefix_step(&mut self, b: u8) {
        const DATA: &[u8] = b"data:";
        let p = usize::from(self.pfx);
        if p < DATA.len() {
            if b == DATA[p] {
                self.pfx += 1;
            } else {
                self.pfx = DECIDED;
            }
        } else if p == DATA.len() && b == b' ' {
            self.pfx += 1;
        } else {
            self.pfx = DECIDED;
            self.line_json = b == b'{' || b == b'[';
        }
    }

    fn step(&mut self, b: u8) -> Class {
        match self.kind {
            ContentKind::Text => Class::Raw,
            ContentKind::Json => self.json_step(b),
            ContentKind::EventStream => {
                if b == b'\n' {
                    self.new_line();
                    return Class::Raw;
                }
                if self.pfx != DECIDED {
                    self.prefix_step(b);
                    if self.pfx != DECIDED || !self.line_json {
                        return Class::Raw;
                    }
                }
                if self.line_json {
                    self.json_step(b)
                } else {
                    Class::Raw
                }
            }
        }
    }

    fn json_advance(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.esc {
                self.esc = false;
                i += 1;
                continue;
            }
            if self.in_str {
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    None => return,
                    Some(p) => {
                        if bytes[i + p] == b'\\' {
                            self.esc = true;
                        } else {
                            self.in_str = false;
                        }
                        i += p + 1;
                    }
                }
            } else {
                match memchr::memchr(b'"', &bytes[i..]) {
                    None => return,
                    Some(p) => {
                        self.in_str = true;
                        i += p + 1;
                    }
                }
            }
        }
    }

    /// Moves the state over bytes written unchanged.
    pub(crate) fn advance(&mut self, bytes: &[u8]) {
        match self.kind {
            ContentKind::Text => {}
            ContentKind::Json => self.json_advance(bytes),
            ContentKind::EventStream => {
                // A newline resets the state whatever came before it: only the bytes after the
                // last one move it (an event stream is mostly whole lines).
                let bytes = match memchr::memrchr(b'\n', bytes) {
                    Some(p) => {
                        self.new_line();
                        &bytes[p + 1..]
                    }
                    None => bytes,
                };
                let mut i = 0;
                while i < bytes.len() {
                    if self.pfx != DECIDED {
                        let b = bytes[i];
                        i += 1;
                        if b == b'\n' {
                            self.new_line();
                        } else {
                            self.prefix_step(b);
                            if self.line_json {
                                self.json_step(b);
                            }
                        }
                        continue;
                    }
                    let end = memchr::memchr(b'\n', &bytes[i..]).map(|p| i + p);
                    let stop = end.unwrap_or(bytes.len());
                    if self.line_json {
                        self.json_advance(&bytes[i..stop]);
                    }
                    match end {
                        Some(e) => {
                            self.new_line();
                            i = e + 1;
                        }
                        None => i = stop,
                    }
                }
            }
        }
    }

    /// Writes the replacement for `seg` (a match) and moves the state over it. Returns whether a
    /// marker was written (a match made only of JSON structure writes none).
    pub(crate) fn replace(&mut self, seg: &[u8], marker: &[u8], out: &mut Vec<u8>) -> bool {
        if self.kind == ContentKind::Text {
            out.extend_from_slice(marker);
            return true;
        }
        let plain_json = match self.kind {
            ContentKind::Json => true,
            ContentKind::EventStream => self.pfx == DECIDED && self.line_json,
            ContentKind::Text => false,
        };
        if plain_json
            && self.in_str
            && !self.esc
            && memchr::memchr3(b'"', b'\\', b'\n', seg).is_none()
        {
            // The common case: a match inside one string, with no escape to follow.
            out.extend_from_slice(marker);
            return true;
        }
        let mut run: Option<Class> = None;
        let mut wrote = false;
        for &b in seg {
            let class = self.step(b);
            match class {
                Class::Structural => {
                    out.push(b);
                    run = None;
                }
                Class::Str | Class::Raw | Class::Bare if run == Some(class) => {}
                Class::Str | Class::Raw => {
                    out.extend_from_slice(marker);
                    run = Some(class);
                    wrote = true;
                }
                Class::Bare => {
                    out.push(b'"');
                    out.extend_from_slice(marker);
                    out.push(b'"');
                    run = Some(class);
                    wrote = true;
                }
            }
        }
        wrote
    }
}

fn odd_backslashes_ending_at(hay: &[u8], p: usize) -> bool {
    hay[..=p].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1
}

/// If position `s` falls inside a JSON escape sequence (`\x` or `\uXXXX`) starting at or after
/// `floor`, the position of its backslash; otherwise `s`. Matches and cuts are moved off escapes
/// so a replacement never leaves half of one behind.
pub(crate) fn escape_start(hay: &[u8], s: usize, floor: usize) -> usize {
    let lo = s.saturating_sub(5).max(floor);
    let mut p = s;
    while p > lo {
        p -= 1;
        let b = hay[p];
        if b == b'\\' {
            if !odd_backslashes_ending_at(hay, p) {
                // The second half of an escaped backslash: that escape ends before `s`.
                return s;
            }
            if p + 1 == s || (hay[p + 1] == b'u' && s < p + 6) {
                return p;
            }
            return s;
        }
        if !(b.is_ascii_hexdigit() || b == b'u') {
            return s;
        }
    }
    s
}

/// If `e` (an exclusive end) cuts an escape sequence, the end of that sequence (bounded by the
/// data); otherwise `e`. A `\u` escape runs over the hex digits that follow, four at most: a
/// malformed one (`\u0` and a byte no hex digit) ends where its digits do, so where it ends does
/// not depend on how much of the data has arrived.
pub(crate) fn escape_end(hay: &[u8], e: usize, floor: usize) -> usize {
    if e >= hay.len() {
        return e;
    }
    let p = escape_start(hay, e, floor);
    if p == e {
        return e;
    }
    if hay.get(p + 1) != Some(&b'u') {
        return (p + 2).min(hay.len()).max(e);
    }
    let digits_end = (p + 6).min(hay.len());
    let mut end = e;
    while end < digits_end && hay[end].is_ascii_hexdigit() {
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let h = br#"ab\ncd\u00e9f\\g"#;
        assert_eq!(escape_start(h, 3, 0), 2); // at `n`
        assert_eq!(escape_start(h, 4, 0), 4);
        assert_eq!(escape_start(h, 9, 0), 6); // inside \u00e9
        assert_eq!(escape_start(h, 12, 0), 12); // after \u00e9
        assert_eq!(escape_start(h, 15, 0), 15); // after `\\`
        assert_eq!(escape_start(h, 14, 0), 13); // between the two backslashes
        assert_eq!(escape_end(h, 3, 0), 4);
        assert_eq!(escape_end(h, 8, 0), 12);
        // Found by the mask_stream fuzz target: `\u0` then DEL is no escape to run on into.
        let bad = b"K\\u0\x7f22";
        assert_eq!(escape_end(bad, 4, 0), 4);
        assert_eq!(escape_end(&bad[..5], 4, 0), 4);
        assert_eq!(escape_end(b"\\u00e", 3, 0), 5);
    }

    #[test]
    fn json_replacement_keeps_structure() {
        let mut lex = Lex::new(ContentKind::Json);
        let mut out = Vec::new();
        lex.advance(b"{\"a\":");
        assert!(lex.replace(b"4111111111111111", b"[M]", &mut out));
        assert_eq!(out, b"\"[M]\"");
        out.clear();
        lex.advance(b",\"b\":\"x");
        assert!(lex.replace(b"secret\",\"c\":\"more", b"[M]", &mut out));
        assert_eq!(out, b"[M]\",\"[M]\":\"[M]");
    }
}
