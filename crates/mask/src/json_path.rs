//! A small JSON path subset and its application to a whole JSON document, rewriting the bytes
//! in place (key order, spacing and numbers stay as they were).
//!
//! Grammar: `$` then any of `.name`, `.*`, `['name']` / `["name"]`, `[n]`, `[*]`, `..name`,
//! `..*`. `..` matches at any depth below.

use crate::MaskError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    /// `.*` or `[*]`: any key or index.
    Any,
    /// `..name` / `..*`: this step at any depth.
    Deep(Box<Step>),
}

/// A parsed JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl JsonPath {
    pub fn parse(path: &str) -> Result<Self, MaskError> {
        let b = path.as_bytes();
        let err = |at: usize, reason: &str| MaskError::JsonPath {
            path: path.to_owned(),
            at,
            reason: reason.to_owned(),
        };
        if b.first() != Some(&b'$') {
            return Err(err(0, "a path starts with `$`"));
        }
        let name_end = |from: usize| {
            from + b[from..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                .count()
        };
        let mut steps = Vec::new();
        let mut i = 1;
        while i < b.len() {
            let deep = b[i..].starts_with(b"..");
            let step = if b[i] == b'.' {
                i += if deep { 2 } else { 1 };
                if b.get(i) == Some(&b'*') {
                    i += 1;
                    Step::Any
                } else {
                    let e = name_end(i);
                    if e == i {
                        return Err(err(i, "expected a name (letters, digits, _ or -) or `*`"));
                    }
                    let s = Step::Key(path[i..e].to_owned());
                    i = e;
                    s
                }
            } else if b[i] == b'[' {
                let close = b[i..]
                    .iter()
                    .position(|c| *c == b']')
                    .map(|p| i + p)
                    .ok_or_else(|| err(i, "`[` is not closed"))?;
                let inner = &path[i + 1..close];
                let s = if inner == "*" {
                    Step::Any
                } else if let Ok(n) = inner.parse::<usize>() {
                    Step::Index(n)
                } else if inner.len() >= 2
                    && ((inner.starts_with('\'') && inner.ends_with('\''))
                        || (inner.starts_with('"') && inner.ends_with('"')))
                {
                    Step::Key(inner[1..inner.len() - 1].to_owned())
                } else {
                    return Err(err(i + 1, "expected `*`, an index or a quoted name"));
                };
                i = close + 1;
                s
            } else {
                return Err(err(i, "expected `.`, `..` or `[`"));
            };
            steps.push(if deep {
                Step::Deep(Box::new(step))
            } else {
                step
            });
        }
        if steps.is_empty() {
            return Err(err(1, "`$` alone would mask the whole document"));
        }
        Ok(Self { steps })
    }

    fn matches(&self, path: &[Seg]) -> bool {
        matches_steps(&self.steps, path)
    }
}

fn step_matches(step: &Step, seg: &Seg) -> bool {
    match (step, seg) {
        (Step::Any, _) => true,
        (Step::Key(k), Seg::Key(s)) => k == s,
        (Step::Index(i), Seg::Index(j)) => i == j,
        _ => false,
    }
}

fn matches_steps(steps: &[Step], path: &[Seg]) -> bool {
    match steps.split_first() {
        None => path.is_empty(),
        Some((Step::Deep(inner), rest)) => (0..path.len())
            .any(|k| step_matches(inner, &path[k]) && matches_steps(rest, &path[k + 1..])),
        Some((step, rest)) => match path.split_first() {
            Some((seg, tail)) => step_matches(step, seg) && matches_steps(rest, tail),
            None => false,
        },
    }
}

/// Rewrites `doc` with every value at one of `paths` replaced by `"<marker>"`. `None` if `doc`
/// is not JSON. serde_json checks the document first (and bounds its nesting), so the walk
/// below can assume well-formed input.
pub(crate) fn apply(paths: &[JsonPath], doc: &[u8], marker: &[u8]) -> Option<(Vec<u8>, u64)> {
    serde_json::from_slice::<serde::de::IgnoredAny>(doc).ok()?;
    let mut w = Walk {
        doc,
        i: 0,
        out: Vec::with_capacity(doc.len()),
        copied: 0,
        paths,
        marker,
        count: 0,
        path: Vec::new(),
    };
    w.value();
    w.out.extend_from_slice(&doc[w.copied..]);
    Some((w.out, w.count))
}

struct Walk<'a> {
    doc: &'a [u8],
    i: usize,
    out: Vec<u8>,
    /// `doc[..copied]` is in `out` already.
    copied: usize,
    paths: &'a [JsonPath],
    marker: &'a [u8],
    count: u64,
    path: Vec<Seg>,
}

impl Walk<'_> {
    fn ws(&mut self) {
        while self.i < self.doc.len() && matches!(self.doc[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    /// Skips a string starting at `i` (a quote); returns its content's span.
    fn string(&mut self) -> (usize, usize) {
        let start = self.i + 1;
        let mut j = start;
        while j < self.doc.len() {
            match self.doc[j] {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        self.i = j + 1;
        (start, j)
    }

    fn value(&mut self) {
        self.ws();
        let start = self.i;
        let masked = !self.path.is_empty() && self.paths.iter().any(|p| p.matches(&self.path));
        match self.doc.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                loop {
                    self.ws();
                    match self.doc.get(self.i) {
                        Some(b'"') => {
                            let (s, e) = self.string();
                            let raw = &self.doc[s..e];
                            let key = if raw.contains(&b'\\') {
                                let quoted = &self.doc[s - 1..=e];
                                serde_json::from_slice::<String>(quoted).unwrap_or_default()
                            } else {
                                String::from_utf8_lossy(raw).into_owned()
                            };
                            self.ws();
                            self.i += 1; // ':'
                            self.path.push(Seg::Key(key));
                            self.value();
                            self.path.pop();
                        }
                        Some(b',') => self.i += 1,
                        _ => {
                            self.i += 1; // '}'
                            break;
                        }
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.ws();
                    match self.doc.get(self.i) {
                        Some(b']') | None => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => {
                            self.path.push(Seg::Index(n));
                            self.value();
                            self.path.pop();
                            n += 1;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while self.i < self.doc.len()
                    && !matches!(
                        self.doc[self.i],
                        b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n'
                    )
                {
                    self.i += 1;
                }
            }
            None => {}
        }
        if masked {
            self.out.extend_from_slice(&self.doc[self.copied..start]);
            self.out.push(b'"');
            self.out.extend_from_slice(self.marker);
            self.out.push(b'"');
            self.copied = self.i.min(self.doc.len());
            self.count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        for ok in [
            "$.a.b",
            "$.items[*].secret",
            "$..password",
            "$['a key'][0]",
            "$.a.*",
            "$..*",
        ] {
            JsonPath::parse(ok).unwrap();
        }
        for bad in ["a.b", "$", "$.", "$[", "$[x]", "$.a b"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
