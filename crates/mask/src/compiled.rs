//! Compiling a [`MaskConfig`] into the shared, immutable part of a masker: the selected
//! built-ins and custom patterns as a few multi-pattern regexes (one per way of finding
//! candidates), their names and markers, and the bytes no match can contain (where a stream may
//! be cut early).

use aho_corasick::AhoCorasick;
use regex_automata::{MatchKind, meta, util::syntax};
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::MaskError;
use crate::config::MaskConfig;
use crate::detectors::{
    BUILTIN_NAMES, BUILTINS, Check, JSON_PATH_NAME, JSON_PATH_SKIPPED_NAME, Pass, SECRET_NAME,
    pem_body_byte,
};
use crate::json_path::JsonPath;

/// Smallest and largest `max_match_bytes`: below 1 KiB a PEM key cannot be matched whole; above
/// 1 MiB the carry-over stops being small.
const MAX_MATCH_MIN: usize = 1024;
const MAX_MATCH_MAX: usize = 1024 * 1024;

pub(crate) struct PatternInfo {
    pub det: u32,
    pub check: Check,
    pub group: bool,
}

/// One regex and how it is run over a window (see [`Pass`]).
pub(crate) struct RegexPass {
    pub pass: Pass,
    /// For `Pass::Prefixed`: finds where a match can start.
    pub starts: Option<AhoCorasick>,
    pub regex: meta::Regex,
    /// By pattern id.
    pub patterns: Vec<PatternInfo>,
}

pub(crate) struct Compiled {
    pub passes: Vec<RegexPass>,
    /// By detector index: built-ins selected, custom patterns, `secret`, `json_path`.
    pub names: Vec<String>,
    pub markers: Vec<Vec<u8>>,
    pub secret_det: u32,
    pub json_path_det: u32,
    /// Bytes some pattern can match; the others are cut points.
    pub in_pattern: [bool; 256],
    /// No regex can match a newline: a stream may cut after one unless a PEM block is open.
    pub newline_cut: bool,
    /// A PEM detector is selected.
    pub pem: bool,
    pub max_match: usize,
    pub json_paths: Vec<JsonPath>,
    pub json_limit: usize,
    pub requests: bool,
    pub secrets: bool,
}

fn mark_hir_bytes(h: &Hir, set: &mut [bool; 256]) {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(l) => l.0.iter().for_each(|b| set[usize::from(*b)] = true),
        HirKind::Class(Class::Bytes(c)) => {
            for r in c.ranges() {
                (r.start()..=r.end()).for_each(|b| set[usize::from(b)] = true);
            }
        }
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.ranges() {
                let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
                (lo..=hi.min(0x7f)).for_each(|b| set[b as usize] = true);
                if hi >= 0x80 {
                    (0x80..=0xff).for_each(|b: usize| set[b] = true);
                }
            }
        }
        HirKind::Repetition(r) => mark_hir_bytes(&r.sub, set),
        HirKind::Capture(c) => mark_hir_bytes(&c.sub, set),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            v.iter().for_each(|h| mark_hir_bytes(h, set));
        }
    }
}

/// The literals to look for: as written, or (all lowercase: any case) every case of their first
/// three letters — a case-insensitive automaton over the whole words is several times slower
/// than this handful of short literals, and the anchored regex rejects what is not a match.
fn prefix_literals(literals: &[&str]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for lit in literals {
        if !lit.bytes().all(|b| b.is_ascii_lowercase()) {
            out.push(lit.as_bytes().to_vec());
            continue;
        }
        let head = &lit.as_bytes()[..lit.len().min(3)];
        let mut forms: Vec<Vec<u8>> = vec![Vec::new()];
        for &b in head {
            forms = forms
                .into_iter()
                .flat_map(|f| {
                    [b, b.to_ascii_uppercase()].map(|c| {
                        let mut g = f.clone();
                        g.push(c);
                        g
                    })
                })
                .collect();
        }
        out.extend(forms);
    }
    out.sort();
    out.dedup();
    out
}

fn parse(pattern: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .map_err(|e| {
            // The parser's message spans several lines with a caret; the kind is what matters.
            match e {
                regex_syntax::Error::Parse(p) => p.kind().to_string(),
                regex_syntax::Error::Translate(t) => t.kind().to_string(),
                other => other.to_string(),
            }
        })
}

fn check_custom_name(name: &str) -> Result<(), MaskError> {
    let bad = |reason: &str| MaskError::CustomName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > 40 {
        return Err(bad("it must be 1 to 40 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad("it may only hold a-z, 0-9 and _"));
    }
    if BUILTIN_NAMES.contains(&name)
        || [SECRET_NAME, JSON_PATH_NAME, JSON_PATH_SKIPPED_NAME].contains(&name)
    {
        return Err(bad("it is a built-in name"));
    }
    Ok(())
}

impl Compiled {
    pub(crate) fn build(config: &MaskConfig) -> Result<Self, MaskError> {
        if !(MAX_MATCH_MIN..=MAX_MATCH_MAX).contains(&config.max_match_bytes) {
            return Err(MaskError::MaxMatch {
                value: config.max_match_bytes,
                min: MAX_MATCH_MIN,
                max: MAX_MATCH_MAX,
            });
        }
        let mut selected = vec![false; BUILTINS.len()];
        for name in &config.detectors {
            if name == "all" {
                selected.iter_mut().for_each(|s| *s = true);
            } else if let Some(i) = BUILTIN_NAMES.iter().position(|n| n == name) {
                selected[i] = true;
            } else {
                return Err(MaskError::UnknownDetector {
                    name: name.clone(),
                    valid: BUILTIN_NAMES.join(", "),
                });
            }
        }
        let mut names = Vec::new();
        // Sources and pattern info per pass; custom patterns get a `Prefixed`-style search pass
        // of their own (index 4).
        let mut sources: [Vec<String>; 5] = Default::default();
        let mut infos: [Vec<PatternInfo>; 5] = Default::default();
        let pass_index = |p: Pass| match p {
            Pass::Prefixed(_) => 0,
            Pass::Email => 1,
            Pass::Card => 2,
            Pass::Iban => 3,
            Pass::Custom => 4,
        };
        let mut literals: Vec<&str> = Vec::new();
        let mut in_pattern = [false; 256];
        let mut pem = false;
        for (b, _) in BUILTINS.iter().zip(&selected).filter(|(_, s)| **s) {
            let det = names.len() as u32;
            names.push(b.name.to_owned());
            if let Pass::Prefixed(l) = b.pass {
                literals.extend_from_slice(l);
            }
            for p in b.patterns {
                let hir = parse(p).map_err(|e| MaskError::Compile(format!("{}: {e}", b.name)))?;
                mark_hir_bytes(&hir, &mut in_pattern);
                let k = pass_index(b.pass);
                infos[k].push(PatternInfo {
                    det,
                    check: b.check,
                    group: hir.properties().explicit_captures_len() > 0,
                });
                sources[k].push((*p).to_owned());
            }
            pem |= b.check == Check::PemBlock;
        }
        for c in &config.custom {
            check_custom_name(&c.name)?;
            if names.contains(&c.name) {
                return Err(MaskError::CustomName {
                    name: c.name.clone(),
                    reason: "another custom pattern has this name".to_owned(),
                });
            }
            let fail = |reason: String| MaskError::CustomPattern {
                name: c.name.clone(),
                pattern: c.pattern.clone(),
                reason,
            };
            let hir = parse(&c.pattern).map_err(fail)?;
            if hir.properties().minimum_len() == Some(0) {
                return Err(fail("it can match the empty string".to_owned()));
            }
            match hir.properties().maximum_len() {
                Some(n) if n <= config.max_match_bytes => {}
                other => {
                    return Err(MaskError::CustomPatternUnbounded {
                        name: c.name.clone(),
                        len: other.map_or_else(|| "unboundedly many".to_owned(), |n| n.to_string()),
                        max: config.max_match_bytes,
                    });
                }
            }
            mark_hir_bytes(&hir, &mut in_pattern);
            infos[4].push(PatternInfo {
                det: names.len() as u32,
                check: Check::None,
                // The whole match of a custom pattern is masked, whatever groups it has.
                group: false,
            });
            names.push(c.name.clone());
            sources[4].push(c.pattern.clone());
        }
        // Only a PEM block spans lines (its body is no regex: it is scanned to the END line).
        let newline_cut = !in_pattern[usize::from(b'\n')];
        if pem {
            (0..=255u8)
                .filter(|b| pem_body_byte(*b))
                .for_each(|b| in_pattern[usize::from(b)] = true);
        }
        let mut passes = Vec::new();
        let kinds = [
            Pass::Prefixed(&[]),
            Pass::Email,
            Pass::Card,
            Pass::Iban,
            Pass::Custom,
        ];
        for ((src, patterns), pass) in sources.iter().zip(infos).zip(kinds) {
            if src.is_empty() {
                continue;
            }
            let regex = meta::Regex::builder()
                .syntax(syntax::Config::new().utf8(false))
                .configure(
                    meta::Config::new()
                        .match_kind(MatchKind::LeftmostFirst)
                        .utf8_empty(false),
                )
                .build_many(src)
                .map_err(|e| MaskError::Compile(e.to_string()))?;
            let starts = match pass {
                Pass::Prefixed(_) => Some(
                    AhoCorasick::builder()
                        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                        .build(prefix_literals(&literals))
                        .map_err(|e| MaskError::Compile(format!("detector prefixes: {e}")))?,
                ),
                _ => None,
            };
            passes.push(RegexPass {
                pass,
                starts,
                regex,
                patterns,
            });
        }
        let json_paths = config
            .json_paths
            .iter()
            .map(|p| JsonPath::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let secret_det = names.len() as u32;
        names.push(SECRET_NAME.to_owned());
        let json_path_det = names.len() as u32;
        names.push(JSON_PATH_NAME.to_owned());
        let markers = names
            .iter()
            .map(|n| format!("[MASKED:{n}]").into_bytes())
            .collect();
        Ok(Self {
            passes,
            names,
            markers,
            secret_det,
            json_path_det,
            in_pattern,
            newline_cut,
            pem,
            max_match: config.max_match_bytes,
            json_paths,
            json_limit: config.json_document_limit,
            requests: config.requests,
            secrets: config.secrets,
        })
    }
}
