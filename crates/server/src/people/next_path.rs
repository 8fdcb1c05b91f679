//! Where a browser may be sent after signing in: the one check behind `next` on `/login` and
//! the return path of OIDC and SAML sign-ins.
//!
//! Browsers do not read a `Location` the way a server-side string test does: they drop ASCII
//! tab and newline anywhere in it, treat `\` as `/`, and take `//host` as another origin. So
//! `/\t/evil.example` passes a "starts with one `/`" test and lands on `//evil.example`. Rather
//! than predicting each browser quirk, this check accepts only a narrow alphabet (visible ASCII
//! without `\`), refuses the same characters once more after percent-decoding (so no layer
//! that decodes again can bring them back), and then requires the value to resolve, as a
//! browser would resolve it, to the same origin as the page it came from.

use url::Url;

/// Longest `next` accepted; a return path is a short console path, never a document.
pub const MAX_LEN: usize = 2048;

/// Why a `next` value is not a path of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextError {
    TooLong,
    /// A control, whitespace, non-ASCII or `\` character, raw or percent-encoded.
    Character,
    /// Not a path starting with exactly one `/`, or it resolves to another origin.
    Foreign,
}

/// Visible ASCII except `\`: no control character, no whitespace, nothing a browser strips or
/// rewrites while parsing a URL.
fn plain(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'\\')
}

/// Checks `next` and returns it unchanged when it is a path of this server.
pub fn check(next: &str) -> Result<&str, NextError> {
    if next.len() > MAX_LEN {
        return Err(NextError::TooLong);
    }
    if !plain(next) {
        return Err(NextError::Character);
    }
    let decoded: Vec<u8> = percent_decode(next.as_bytes());
    let decoded = String::from_utf8(decoded).map_err(|_| NextError::Character)?;
    if !plain(&decoded) {
        return Err(NextError::Character);
    }
    for candidate in [next, decoded.as_str()] {
        if !candidate.starts_with('/') || candidate.starts_with("//") {
            return Err(NextError::Foreign);
        }
    }
    // The origin is a placeholder: what matters is that resolving keeps whatever origin the
    // page had, which is this server's.
    let base = Url::parse("https://keyward.invalid/").map_err(|_| NextError::Foreign)?;
    match base.join(next) {
        Ok(resolved) if resolved.origin() == base.origin() => Ok(next),
        _ => Err(NextError::Foreign),
    }
}

/// `next` when it is a path of this server, otherwise `fallback`.
pub fn or(next: Option<&str>, fallback: &str) -> String {
    next.and_then(|n| check(n).ok())
        .unwrap_or(fallback)
        .to_owned()
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi << 4) | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_servers_paths_are_kept() {
        for path in [
            "/device",
            "/device?user_code=BCDF-GHJK",
            "/auth/session",
            "/a/b.c?x=1&y=%2Fz#frag",
        ] {
            assert_eq!(check(path), Ok(path), "{path}");
        }
    }

    #[test]
    fn anything_a_browser_could_read_as_another_origin_is_refused() {
        for hostile in [
            // The review's attack: browsers strip the tab, leaving //evil.example.
            "/\t/evil.example",
            "/\n/evil",
            "/\r/evil",
            "/ /evil",
            "/\u{b}/evil",
            "/\u{c}/evil",
            "/\u{a0}/evil",
            "/\u{2028}/evil",
            // The same, still percent-encoded (a layer that decodes once more).
            "/%09/evil.example",
            "/%0a/evil",
            "/%0D/evil",
            "/%20/evil",
            "/%5c/evil",
            "/%2f/evil",
            "%2f%2fevil.example",
            "/%ff",
            "//evil.example/x",
            "///evil.example",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "/\\evil.example",
            "\\\\evil.example",
            "device",
            "",
        ] {
            assert!(check(hostile).is_err(), "{hostile:?} was accepted");
            assert_eq!(or(Some(hostile), "/device"), "/device", "{hostile:?}");
        }
        assert_eq!(or(None, "/auth/session"), "/auth/session");
    }

    #[test]
    fn long_values_are_refused() {
        let long = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(check(&long), Err(NextError::TooLong));
        assert!(check(&long[..MAX_LEN]).is_ok());
    }
}
