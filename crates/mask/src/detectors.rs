//! The built-in detectors: each is one or more patterns plus a check that a match must pass
//! (Luhn, mod-97, the end of a PEM block). Patterns are ASCII-only (`(?-u)`) so the lazy DFA
//! runs them all in one pass, word boundaries included.

/// The replacement name of exact secret values.
pub const SECRET_NAME: &str = "secret";
/// The replacement name of values at configured JSON paths.
pub const JSON_PATH_NAME: &str = "json_path";
/// Counted (not a replacement) when JSON paths could not be applied to a JSON body.
pub const JSON_PATH_SKIPPED_NAME: &str = "json_path_skipped";

/// What a pattern's match must also pass, or how it is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    Luhn,
    Iban,
    /// The match is a PEM `BEGIN … PRIVATE KEY` line; the masked span runs to the matching END
    /// line (or, if none comes within `max_match_bytes`, over the key body seen so far).
    PemBlock,
    /// The 40 characters of an AWS secret key must not be followed by another base64 character.
    AwsSecretEnd,
}

/// How a detector's candidates are found. Detectors whose patterns start with a literal share
/// one regex (its literal prefilter skips most of the body); an email is found from its `@`;
/// card numbers and IBANs from a byte loop that finds digit runs and `AA00` starts, since a
/// regex with no literal to look for runs a DFA over every byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Every match starts with one of these literals: the regex runs anchored where one occurs,
    /// so it never scans backwards for a match's start. A literal written in lowercase letters
    /// stands for every ASCII case of it.
    Prefixed(&'static [&'static str]),
    Email,
    Card,
    Iban,
    /// Custom patterns: one unanchored multi-pattern search.
    Custom,
}

pub(crate) struct BuiltIn {
    pub name: &'static str,
    pub pass: Pass,
    /// Each pattern either has no group (the whole match is masked) or one group (only it is).
    pub patterns: &'static [&'static str],
    pub check: Check,
}

/// A PEM body: base64, real whitespace, JSON `\n`/`\r` escapes, and the `Proc-Type:`/`DEK-Info:`
/// headers of legacy encrypted keys.
pub(crate) fn pem_body_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'+' | b'/' | b'=' | b' ' | b'\t' | b'\r' | b'\n' | b'\\' | b':' | b',' | b'-'
        )
}

pub(crate) const BUILTINS: &[BuiltIn] = &[
    BuiltIn {
        name: "gcp_private_key",
        pass: Pass::Prefixed(&["\"private_key\""]),
        // Before pem_private_key: the service-account JSON's field, so the key is named for what it is.
        patterns: &[
            r#"(?-u)"private_key"[ \t]{0,8}:[ \t]{0,8}"(-----BEGIN (?:RSA |EC )?PRIVATE KEY-----)"#,
        ],
        check: Check::PemBlock,
    },
    BuiltIn {
        name: "pem_private_key",
        pass: Pass::Prefixed(&["-----BEGIN "]),
        patterns: &[r"(?-u)-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----"],
        check: Check::PemBlock,
    },
    BuiltIn {
        name: "aws_access_key_id",
        pass: Pass::Prefixed(&["AKIA", "ASIA"]),
        patterns: &[r"(?-u)\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"],
        check: Check::None,
    },
    BuiltIn {
        name: "aws_secret_access_key",
        pass: Pass::Prefixed(&["secret"]),
        // Only in a key context: a key name containing `secret` (aws_secret_access_key,
        // SecretAccessKey, secret_key, "secret"), optionally quoted, then `:` or `=`, then exactly
        // 40 characters of [A-Za-z0-9/+] not followed by another of them or `=`.
        patterns: &[
            r#"(?-u)(?i:secret)(?:[_-]?(?i:access))?(?:[_-]?(?i:key))?(?:\\?["'])?[ \t]{0,4}[:=][ \t]{0,4}(?:\\?["'])?([A-Za-z0-9/+]{40})"#,
        ],
        check: Check::AwsSecretEnd,
    },
    BuiltIn {
        name: "gcp_api_key",
        pass: Pass::Prefixed(&["AIza"]),
        patterns: &[r"(?-u)\bAIza[0-9A-Za-z_\-]{35}"],
        check: Check::None,
    },
    BuiltIn {
        name: "azure_storage_key",
        pass: Pass::Prefixed(&["AccountKey=", "SharedAccessKey=", "sharedaccesssignature"]),
        patterns: &[
            r"(?-u)(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{86}==|[A-Za-z0-9+/]{43}=)",
            r"(?-u)(?i:SharedAccessSignature)=([A-Za-z0-9%&=._:+/\-]{1,2048})",
        ],
        check: Check::None,
    },
    BuiltIn {
        name: "jwt",
        pass: Pass::Prefixed(&["eyJ"]),
        patterns: &[r"(?-u)\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"],
        check: Check::None,
    },
    BuiltIn {
        name: "bearer_token",
        pass: Pass::Prefixed(&["bearer"]),
        patterns: &[r"(?-u)\b(?i:bearer)[ \t]{1,4}([A-Za-z0-9\-._~+/]{8,}=*)"],
        check: Check::None,
    },
    BuiltIn {
        name: "email",
        pass: Pass::Email,
        patterns: &[
            r"(?-u)[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,6}\.[A-Za-z]{2,24}\b",
        ],
        check: Check::None,
    },
    BuiltIn {
        name: "card_number",
        pass: Pass::Card,
        patterns: &[r"(?-u)\b[0-9](?:[ \-]?[0-9]){12,18}\b"],
        check: Check::Luhn,
    },
    BuiltIn {
        name: "iban",
        pass: Pass::Iban,
        patterns: &[r"(?-u)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b"],
        check: Check::Iban,
    },
];

/// Names of the built-in detectors, in priority order (earlier wins when two start together).
pub const BUILTIN_NAMES: &[&str] = &[
    "gcp_private_key",
    "pem_private_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "gcp_api_key",
    "azure_storage_key",
    "jwt",
    "bearer_token",
    "email",
    "card_number",
    "iban",
];

/// Luhn over the digits of `s` (separators ignored); 13–19 digits.
pub(crate) fn luhn(s: &[u8]) -> bool {
    let digits: Vec<u8> = s
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut d = u32::from(*d);
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// ISO 13616 mod-97 over `s` with spaces ignored: 15–34 characters, two letters, two digits.
pub(crate) fn iban_valid(s: &[u8]) -> bool {
    let c: Vec<u8> = s.iter().copied().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&c.len())
        || !c[..2].iter().all(u8::is_ascii_uppercase)
        || !c[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut rem = 0u32;
    for b in c[4..].iter().chain(c[..4].iter()) {
        match b {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// The longest valid IBAN at the start of `s`, dropping space-separated groups from the end
/// (a match may have run into the next word, e.g. `DE89 … 00 EUR`).
pub(crate) fn iban_end(s: &[u8]) -> Option<usize> {
    let mut end = s.len();
    loop {
        if iban_valid(&s[..end]) {
            return Some(end);
        }
        end = memchr::memrchr(b' ', &s[..end])?;
    }
}

/// Where the PEM block whose BEGIN line ends at `from` ends: after its END line, or (no END
/// line before `limit` or a byte a PEM body cannot hold) where the body run stops. When the body
/// runs to the end of the data seen so far and more may come, the end of that data: the stream
/// then holds the whole block back.
pub(crate) fn pem_end(
    hay: &[u8],
    from: usize,
    limit: usize,
    more_may_come: bool,
    blank_line_ends: bool,
) -> usize {
    let mut i = from;
    while i < limit {
        // In an event stream a blank line ends the event, and a match stays in its event.
        if blank_line_ends
            && hay[i] == b'\n'
            && (hay[i + 1..limit].starts_with(b"\n") || hay[i + 1..limit].starts_with(b"\r\n"))
        {
            return i;
        }
        if hay[i] == b'-' && hay[i..limit].starts_with(b"-----END ") {
            // The END line's label (`RSA PRIVATE KEY`, …) and its dashes, on that line only:
            // looking further, past bytes no label holds, made where the block ends depend on
            // how much of the body had arrived (a split stream masked less than the whole body).
            let label = i + 9;
            let stop = limit.min(i + 64);
            let run = hay[label..stop]
                .iter()
                .position(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' '))
                .map_or(stop, |p| label + p);
            if hay[label..run].ends_with(b"PRIVATE KEY") && hay[run..limit].starts_with(b"-----") {
                return run + 5;
            }
            let rest = &hay[run..];
            if more_may_come && rest.len() < 5 && b"-----".starts_with(rest) {
                return hay.len();
            }
        }
        if !pem_body_byte(hay[i]) {
            return i;
        }
        i += 1;
    }
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_builtins() {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(names, BUILTIN_NAMES);
    }

    #[test]
    fn a_pem_end_line_is_read_on_its_own_line() {
        let hay =
            b"-----BEGIN PRIVATE KEY-----\nMIIpEvQ\n-----END PRIV\x9e----BEGIN PRIVATE KEY-----\n";
        let from = 27;
        // Found by the mask_stream fuzz target: the `PRIVATE KEY-----` of the next line (past a
        // byte no END label holds) ended the block, but only once that line had arrived.
        assert_eq!(pem_end(hay, from, hay.len(), false, false), 49);
        assert_eq!(pem_end(hay, from, 60, false, false), 49);
        let good = b"-----BEGIN RSA PRIVATE KEY-----\nMIIp\n-----END RSA PRIVATE KEY-----\nx";
        assert_eq!(pem_end(good, 31, good.len(), false, false), good.len() - 2);
        // An END line cut short by the data seen so far holds the block back.
        assert_eq!(pem_end(&good[..60], 31, 60, true, false), 60);
    }

    #[test]
    fn luhn_and_iban() {
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(!luhn(b"4111 1111 1111 1112"));
        assert!(iban_valid(b"GB82 WEST 1234 5698 7654 32"));
        assert!(!iban_valid(b"GB82 WEST 1234 5698 7654 33"));
        assert_eq!(iban_end(b"DE89 3704 0044 0532 0130 00 EUR"), Some(27));
    }
}
