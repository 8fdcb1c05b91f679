//! An HTTP request read into the facts a policy decides on, as the gateway reads it. Here, next
//! to [`RequestFacts`], so the gateway and the fuzz target that checks it run the same code.

use crate::facts::{BodyFacts, RequestFacts, normalize_path};

/// A path the gateway refuses rather than guess at: an encoded separator (`%2F`, `%5C`) or a
/// backslash is a separator to some upstreams and not to a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the path contains an encoded '/' or '\\' (%2F, %5C) or a '\\'; send the path with plain '/' separators"
)]
pub struct AmbiguousPath;

/// The one form of a request path that routing, policy and the upstream all use
/// (`/openai/../admin` is `/admin`), or [`AmbiguousPath`].
pub fn request_path(raw: &str) -> Result<String, AmbiguousPath> {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\') {
        return Err(AmbiguousPath);
    }
    Ok(normalize_path(raw))
}

/// What a policy sees of a request on route `route` whose path (after [`request_path`]) is
/// `path`. `reads` says which context attributes (`headers`, `query`) some policy reads; what
/// none reads is not collected. Headers named in `blanked` (the caller's credentials) appear
/// by name with an empty value: their values never reach a policy.
pub fn request_facts(
    route: &str,
    parts: &http::request::Parts,
    path: &str,
    body: Option<&[u8]>,
    reads: impl Fn(&str) -> bool,
    blanked: &[&str],
) -> RequestFacts {
    let reads_headers = reads("headers");
    let mut headers: Vec<(String, String)> = if !reads_headers {
        Vec::new()
    } else {
        parts
            .headers
            .iter()
            .map(|(name, value)| {
                let name = name.as_str().to_ascii_lowercase();
                let value = if blanked.contains(&name.as_str()) {
                    String::new()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name, value)
            })
            .collect()
    };
    // HTTP/2 carries the host as `:authority`; policies read it as `host` either way.
    if reads_headers
        && !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        headers.push(("host".to_owned(), authority.as_str().to_owned()));
    }
    let query = parts
        .uri
        .query()
        .filter(|_| reads("query"))
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    RequestFacts {
        route: route.to_owned(),
        method: parts.method.as_str().to_owned(),
        path: path.to_owned(),
        query,
        headers,
        body: body.and_then(BodyFacts::from_json_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method("POST").uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn credentials_are_named_but_never_valued_and_unread_context_is_not_collected() {
        let p = parts(
            "https://a.example/x?debug=1&b=%20c",
            &[("Authorization", "Bearer s3cret"), ("X-Debug", "1")],
        );
        let f = request_facts("r", &p, "/x", None, |_| true, &["authorization"]);
        assert!(f.headers.contains(&("authorization".into(), String::new())));
        assert!(f.headers.contains(&("x-debug".into(), "1".into())));
        assert!(f.headers.contains(&("host".into(), "a.example".into())));
        assert_eq!(
            f.query,
            vec![("debug".into(), "1".into()), ("b".into(), " c".into())]
        );
        let none = request_facts("r", &p, "/x", None, |_| false, &[]);
        assert!(none.headers.is_empty() && none.query.is_empty());
    }

    #[test]
    fn encoded_separators_are_refused_and_dot_segments_resolved() {
        assert_eq!(request_path("/a/%2e%2e/admin"), Ok("/admin".into()));
        for raw in ["/a%2Fb", "/a%5cb", "/a\\b"] {
            assert_eq!(request_path(raw), Err(AmbiguousPath), "{raw}");
        }
    }
}
