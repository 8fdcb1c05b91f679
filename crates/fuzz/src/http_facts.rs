//! Cedar request building from an HTTP request: the path and facts exactly as the gateway reads
//! them (`keyward_policy::request_path` and `request_facts`, which the gateway calls), then
//! `keyward_policy::Policies::decide`, which builds the Cedar request, entities and context.
//!
//! Input: `METHOD TARGET`, header lines `Name: value`, a blank line, the body (JSON for the
//! body and MCP facts).

use std::sync::OnceLock;

use keyward_policy::{
    Effect, NoMatch, Policies, PolicySource, Principal, PrincipalKind, RequestFacts,
    normalize_path, request_facts, request_path,
};

pub(crate) const DICT: &[&[u8]] = &[
    b"GET ",
    b"DELETE ",
    b"POST ",
    b"/admin",
    b"%61dmin",
    b"%2e%2e/",
    b"%2F",
    b"/./",
    b"/../",
    b"//",
    b"?debug=1",
    b"&debug",
    b"X-Debug: 1\n",
    b"Host: a.example\n",
    b"Authorization: Bearer x\n",
    b"\n\n",
    b"{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"drop_database\",\"arguments\":{}}}",
    b"\"model\":\"o1\"",
    b"\"model\":1",
    b"\"max_tokens\":",
    b"http://a.example",
];

/// As the gateway's caller credentials (crates/gateway/src/credentials): values never reach a
/// policy, and the target checks that with one of them.
const BLANKED: [&str; 2] = ["authorization", "x-api-key"];

const POLICY: &str = r#"
@id("allow-all")
permit(principal, action, resource);
@id("no-admin-path")
forbid(principal, action, resource) when { context.path like "/admin*" };
@id("no-admin-segment")
forbid(principal, action, resource) when { context.segments.contains("admin") };
@id("no-delete")
forbid(principal, action, resource) when { context.method == "DELETE" };
@id("no-debug-header")
forbid(principal, action, resource) when { context.headers.hasTag("x-debug") };
@id("no-debug-query")
forbid(principal, action, resource) when { context.query.hasTag("debug") };
@id("no-drop")
forbid(principal, action, resource) when {
  context has mcp && context.mcp has tool && context.mcp.tool == "drop_database"
};
@id("no-o1")
forbid(principal, action, resource) when { context.body has model && context.body.model == "o1" };
"#;

fn policies() -> &'static Policies {
    static POLICIES: OnceLock<Policies> = OnceLock::new();
    POLICIES.get_or_init(|| {
        Policies::load(&[PolicySource {
            name: "fuzz.cedar".into(),
            text: POLICY.into(),
        }])
        .unwrap_or_else(|e| panic!("the fuzz policy loads: {e}"))
    })
}

fn principal() -> Principal {
    Principal {
        kind: PrincipalKind::Workload,
        org: "8f6c0d1e-0000-4000-8000-000000000001".into(),
        subject: "automation:fuzz".into(),
        email: None,
        groups: Vec::new(),
        role: None,
        automation: Some("fuzz".into()),
    }
}

/// The facts of a request the gateway would have received (`None`: `http` refuses it, so no
/// request like it reaches the policy).
fn facts(data: &[u8]) -> Option<RequestFacts> {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &data[data.len()..]), |at| {
            (&data[..at], &data[at + 2..])
        });
    let (head, body) = split;
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, target) = lines.next()?.trim_end_matches('\r').split_once(' ')?;
    let mut builder = http::Request::builder().method(method).uri(target);
    for line in lines {
        let (name, value) = line.trim_end_matches('\r').split_once(':')?;
        builder = builder.header(name, value.trim_start());
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    // A path the gateway refuses (an encoded separator) never reaches a policy.
    let path = request_path(parts.uri.path()).ok()?;
    let body = (!body.is_empty()).then_some(body);
    Some(request_facts(
        "fuzz",
        &parts,
        &path,
        body,
        |_| true,
        &BLANKED,
    ))
}

pub fn cedar_request(data: &[u8]) {
    let Some(request) = facts(data) else {
        return;
    };
    // The path a policy sees is a fixed point, absolute, without empty, `.` or `..` segments.
    let path = normalize_path(&request.path);
    assert_eq!(
        normalize_path(&path),
        path,
        "normalize_path is not idempotent"
    );
    assert!(
        path.starts_with('/'),
        "normalized path {path:?} is relative"
    );
    assert!(
        !path[1..].split('/').rev().skip(1).any(|s| s.is_empty()),
        "normalized path {path:?} has an empty segment"
    );
    assert!(
        !path.split('/').any(|s| s == "." || s == ".."),
        "normalized path {path:?} kept a dot segment"
    );

    for (name, value) in &request.headers {
        assert!(
            !BLANKED.contains(&name.as_str()) || value.is_empty(),
            "the caller's {name} header reached the policy with its value"
        );
    }

    let decision = policies().decide(&principal(), &request, NoMatch::Deny);
    let again = policies().decide(&principal(), &request, NoMatch::Deny);
    assert_eq!(
        decision, again,
        "the same request decided twice differently"
    );

    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let has_header = |name: &str| request.headers.iter().any(|(n, _)| n == name);
    let mcp = request.body.as_ref().and_then(|b| b.mcp.as_ref());
    let model = request.body.as_ref().and_then(|b| b.json.get("model"));
    let forbidden = [
        ("no-admin-path", path.starts_with("/admin")),
        ("no-admin-segment", segments.contains(&"admin")),
        ("no-delete", request.method == "DELETE"),
        ("no-debug-header", has_header("x-debug")),
        (
            "no-debug-query",
            request.query.iter().any(|(k, _)| k == "debug"),
        ),
        (
            "no-drop",
            mcp.is_some_and(|m| m.tool.as_deref() == Some("drop_database")),
        ),
        ("no-o1", model.is_some_and(|m| m.as_str() == Some("o1"))),
    ];
    for (id, applies) in forbidden {
        if applies {
            assert_eq!(decision.effect, Effect::Deny, "{id} applies, yet allowed");
            assert!(
                decision.policy_ids.iter().any(|p| p == id),
                "{id} applies but is not among the deciding policies {:?}",
                decision.policy_ids
            );
        }
    }
    // With no forbid applying, the request passes (a `model` of another type is compared, not
    // an error, in Cedar; an evaluation error would have to deny, so it is not asserted here).
    if forbidden.iter().all(|(_, applies)| !applies) && model.is_none_or(|m| m.is_string()) {
        assert_eq!(
            decision.effect,
            Effect::Allow,
            "no forbid applies, yet denied by {:?}",
            decision.policy_ids
        );
    }
}
