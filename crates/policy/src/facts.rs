//! The facts a decision is taken on: who calls (verified by the gateway's identity phase) and
//! what the request says (read by the gateway, the body only within the route's inspection limit).

use serde_json::Value;

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A Keyward workload token (an automation's identity).
    Workload,
    /// An access token of the organization's identity provider.
    Idp,
    /// A Keyward personal access token or device-login token (a person).
    Pat,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Workload => "workload",
            PrincipalKind::Idp => "idp",
            PrincipalKind::Pat => "pat",
        }
    }
}

/// A verified caller. Every field comes from a checked signature or a stored row, never from a
/// header the caller chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The organization's uuid.
    pub org: String,
    /// `sub` of the token, or `user:<uuid>` for a person's token.
    pub subject: String,
    pub email: Option<String>,
    /// The identity provider's groups (`groups` claim), empty for other kinds.
    pub groups: Vec<String>,
    /// The person's Keyward role in the organization (`owner`, `member`, a custom role's name).
    pub role: Option<String>,
    /// The automation's name, for workload tokens.
    pub automation: Option<String>,
}

/// What the request says, as the policy sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestFacts {
    /// The route's name.
    pub route: String,
    /// Upper case, as sent (`GET`, `POST`, …).
    pub method: String,
    /// The path as received, before any prefix is stripped, without the query. The policy sees
    /// it through [`normalize_path`].
    pub path: String,
    /// Query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Header names lowercased; credential headers are included by name only when the gateway
    /// strips them (their values never reach a policy).
    pub headers: Vec<(String, String)>,
    /// The JSON body's fields, when the body was read (within the inspection limit and JSON).
    pub body: Option<BodyFacts>,
}

/// JSON body fields a policy may read. The whole parsed body is kept so new fields need no new
/// code here; the named ones are typed in the schema.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BodyFacts {
    pub json: Value,
    /// Present when the body is an MCP JSON-RPC request.
    pub mcp: Option<McpFacts>,
}

/// An MCP JSON-RPC request: its `method`, and for `tools/call` the tool's name and arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct McpFacts {
    pub method: String,
    pub tool: Option<String>,
    pub arguments: Option<Value>,
}

impl BodyFacts {
    /// Reads the facts of a JSON body; `None` when the bytes are not JSON.
    pub fn from_json_bytes(bytes: &[u8]) -> Option<BodyFacts> {
        let json: Value = serde_json::from_slice(bytes).ok()?;
        let mcp = McpFacts::from_json(&json);
        Some(BodyFacts { json, mcp })
    }
}

impl McpFacts {
    fn from_json(json: &Value) -> Option<McpFacts> {
        if json.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return None;
        }
        let method = json.get("method")?.as_str()?.to_owned();
        let params = json.get("params");
        let (tool, arguments) = if method == "tools/call" {
            (
                params
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                params.and_then(|p| p.get("arguments")).cloned(),
            )
        } else {
            (None, None)
        };
        Some(McpFacts {
            method,
            tool,
            arguments,
        })
    }
}

/// The path as a policy sees it: percent-encoded unreserved characters decoded (`%61` → `a`),
/// other escapes upper-cased (`%2f` → `%2F`), a `%` that starts no escape encoded (`%` →
/// `%25`), `.` and `..` segments resolved and empty segments dropped (`/a//./b/../c` → `/a/c`),
/// a trailing `/` kept. So `/%61dmin`, `/x/../admin` and `//admin` cannot slip past a policy
/// about `/admin`; the gateway forwards this same form so the upstream serves what the policy
/// decided on. The form is a fixed point: a stray `%` left as it was would make a new escape
/// with the characters decoded after it (`/%%36%31dmin` → `/%61dmin`, which the upstream reads
/// as `/admin` while the policy saw something else).
pub fn normalize_path(path: &str) -> String {
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    let ends_in_directory = decoded.ends_with('/')
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
        || decoded == "."
        || decoded == "..";
    if normalized.is_empty() || ends_in_directory {
        normalized.push('/');
    }
    normalized
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            )
        {
            let byte = hi * 16 + lo;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
            i += 3;
            continue;
        }
        if bytes[i] == b'%' {
            out.push_str("%25");
            i += 1;
            continue;
        }
        // Copy one whole character (paths are ASCII on the wire, but be safe with UTF-8).
        let width = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + width]);
        i += width;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_tool_call_is_read() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"x"}}}"#;
        let facts = BodyFacts::from_json_bytes(body).unwrap();
        let mcp = facts.mcp.unwrap();
        assert_eq!(mcp.method, "tools/call");
        assert_eq!(mcp.tool.as_deref(), Some("delete_repo"));
        assert_eq!(mcp.arguments.unwrap()["repo"], "x");
    }

    #[test]
    fn paths_are_normalized_before_a_policy_sees_them() {
        assert_eq!(normalize_path("/openai/v1/chat"), "/openai/v1/chat");
        assert_eq!(normalize_path("/%61dmin/x"), "/admin/x");
        assert_eq!(normalize_path("/a//./b/../c"), "/a/c");
        assert_eq!(normalize_path("/a/%2e%2e/admin"), "/admin");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/a/b/"), "/a/b/");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize_path("/100%"), "/100%25");
        assert_eq!(normalize_path("/é/%zz"), "/é/%25zz");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
    }

    #[test]
    fn a_stray_percent_cannot_make_an_escape_with_what_follows_it() {
        // Found by the cedar_request fuzz target: `%` kept as is, then `%36%31` decoded to `61`,
        // gave `/%61dmin`, which the upstream reads as `/admin` (the policy saw another path).
        assert_eq!(normalize_path("/%%36%31dmin"), "/%2561dmin");
        assert_eq!(
            normalize_path("/a/%%61dmin2e%2e/%DELETE"),
            "/a/%25admin2e./%DELETE"
        );
        for path in [
            "/%%36%31dmin",
            "/a/%%61dmin2e%2e/%DELETE",
            "/%25%32%35",
            "/%%%",
            "/%2%61",
            "/x/%2e%2e%2f/%",
        ] {
            let once = normalize_path(path);
            assert_eq!(
                normalize_path(&once),
                once,
                "{path} → {once} is not a fixed point"
            );
        }
    }

    #[test]
    fn a_plain_json_body_is_not_mcp() {
        let facts = BodyFacts::from_json_bytes(br#"{"model":"gpt-4o","stream":true}"#).unwrap();
        assert!(facts.mcp.is_none());
        assert_eq!(facts.json["model"], "gpt-4o");
        assert!(BodyFacts::from_json_bytes(b"not json").is_none());
    }
}
