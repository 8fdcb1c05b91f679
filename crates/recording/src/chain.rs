//! The line format and the hash chain (docs/gateway-sessions.md states the same rule for auditors).
//!
//! A line is `{"seq":N,"at_ms":T,"kind":"K","data":{…},"prev":"<hex>","hash":"<hex>"}`. Its hash is
//! SHA-256 over the 64 ASCII hex characters of `prev` followed by the line's own bytes with the
//! `,"hash":"<hex>"` member cut out. Hashing the stored bytes, not a re-serialization, means an
//! auditor needs no JSON canonicalization: any changed byte changes the hash.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Length of a hex SHA-256.
pub const HEX_LEN: usize = 64;
const HASH_MEMBER_PREFIX: &str = ",\"hash\":\"";
/// `,"hash":"` + 64 hex + `"}`.
const HASH_SUFFIX_LEN: usize = HASH_MEMBER_PREFIX.len() + HEX_LEN + 2;
const GENESIS_DOMAIN: &str = "keyward-recording/v1\n";

/// The `prev` of a session's first line: SHA-256 of `keyward-recording/v1\n` + the session id, so
/// a segment cannot be moved into another session and still chain.
pub fn genesis(session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN.as_bytes());
    h.update(session_id.as_bytes());
    hex::encode(h.finalize())
}

fn digest(prev: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// Builds one line (without the newline) and returns it with its hash.
pub fn build_line(seq: u64, at_ms: u64, kind: &str, data: &str, prev: &str) -> (String, String) {
    // `kind` is one of our identifiers and `prev` is hex: neither needs escaping, but a kind coming
    // from a caller is still serialized as JSON so a stray quote cannot break the line.
    let kind_json = serde_json::to_string(kind).unwrap_or_else(|_| "\"\"".to_owned());
    let body_open = format!(
        "{{\"seq\":{seq},\"at_ms\":{at_ms},\"kind\":{kind_json},\"data\":{data},\"prev\":\"{prev}\""
    );
    let hashed = format!("{body_open}}}");
    let hash = digest(prev, hashed.as_bytes());
    (format!("{body_open}{HASH_MEMBER_PREFIX}{hash}\"}}"), hash)
}

/// A line as stored, parsed, with what its hash should be.
#[derive(Debug)]
pub struct ParsedLine {
    pub seq: u64,
    pub at_ms: u64,
    pub kind: String,
    pub data: Value,
    pub prev: String,
    pub stored_hash: String,
    pub computed_hash: String,
}

#[derive(Deserialize, Serialize)]
struct Wire {
    seq: u64,
    at_ms: u64,
    kind: String,
    data: Value,
    prev: String,
    hash: String,
}

/// Why a line could not be read at all (as opposed to a hash that does not match).
#[derive(Debug)]
pub enum LineDefect {
    /// The line does not end with the `,"hash":"<64 hex>"}` member.
    NoHashMember,
    /// The line is not the JSON object the format describes.
    NotARecord(String),
}

impl std::fmt::Display for LineDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineDefect::NoHashMember => {
                f.write_str("the line does not end with a ,\"hash\":\"<64 hex>\"} member")
            }
            LineDefect::NotARecord(e) => write!(f, "the line is not a record: {e}"),
        }
    }
}

/// Parses a stored line and recomputes its hash from its bytes.
pub fn parse_line(line: &str) -> Result<ParsedLine, LineDefect> {
    // Byte slicing throughout: an edited line may put a multi-byte character anywhere.
    let bytes = line.as_bytes();
    if bytes.len() < HASH_SUFFIX_LEN + 2 {
        return Err(LineDefect::NoHashMember);
    }
    let cut = bytes.len() - HASH_SUFFIX_LEN;
    let suffix = &bytes[cut..];
    let hex_part = &suffix[HASH_MEMBER_PREFIX.len()..HASH_MEMBER_PREFIX.len() + HEX_LEN];
    if !suffix.starts_with(HASH_MEMBER_PREFIX.as_bytes())
        || !suffix.ends_with(b"\"}")
        || !hex_part
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(LineDefect::NoHashMember);
    }
    let stored_hash = String::from_utf8_lossy(hex_part).into_owned();
    let wire: Wire =
        serde_json::from_str(line).map_err(|e| LineDefect::NotARecord(e.to_string()))?;
    let mut hashed = Vec::with_capacity(cut + 1);
    hashed.extend_from_slice(&bytes[..cut]);
    hashed.push(b'}');
    let computed_hash = digest(&wire.prev, &hashed);
    Ok(ParsedLine {
        seq: wire.seq,
        at_ms: wire.at_ms,
        kind: wire.kind,
        data: wire.data,
        prev: wire.prev,
        stored_hash,
        computed_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_line_parses_back_with_a_matching_hash() {
        let prev = genesis("s1");
        let (line, hash) = build_line(0, 5, "request", r#"{"a":"x\"y"}"#, &prev);
        let parsed = parse_line(&line).unwrap();
        assert_eq!(parsed.stored_hash, hash);
        assert_eq!(parsed.computed_hash, hash);
        assert_eq!(parsed.prev, prev);
        assert_eq!(parsed.data["a"], "x\"y");
    }

    #[test]
    fn a_changed_byte_changes_the_computed_hash() {
        let (line, hash) = build_line(3, 5, "request", r#"{"a":1}"#, &genesis("s1"));
        let edited = line.replace("\"a\":1", "\"a\":2");
        assert_ne!(parse_line(&edited).unwrap().computed_hash, hash);
        assert!(matches!(
            parse_line(&line[..line.len() - 3]),
            Err(LineDefect::NoHashMember)
        ));
    }

    #[test]
    fn the_genesis_depends_on_the_session() {
        assert_ne!(genesis("a"), genesis("b"));
        assert_eq!(genesis("a").len(), HEX_LEN);
    }
}
