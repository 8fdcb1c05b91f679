//! Whether a policy set reads the request body: a walk over each policy's syntax tree (Cedar's
//! JSON form), not a text search, so `context["body"]` or odd spacing cannot hide a read.

use cedar_policy::PolicySet;
use serde_json::Value;

/// The context attributes filled from the request body.
const BODY_ATTRIBUTES: [&str; 2] = ["body", "mcp"];

/// True when any policy reads `context.body` or `context.mcp`, or uses `context` as a whole
/// (conservatively: the body must then be read for the policy to see it).
pub(super) fn reads_body(set: &PolicySet) -> bool {
    set.policies().any(|policy| match policy.to_json() {
        Ok(json) => mentions_body(&json),
        // A policy Cedar cannot render is assumed to read the body: buffering it costs a little,
        // deciding without it could be wrong.
        Err(_) => true,
    })
}

fn is_context(value: Option<&Value>) -> bool {
    value
        .and_then(|v| v.get("Var"))
        .and_then(Value::as_str)
        .is_some_and(|name| name == "context")
}

fn mentions_body(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            for op in [".", "has"] {
                if let Some(inner) = map.get(op)
                    && is_context(inner.get("left"))
                {
                    return match inner.get("attr").and_then(Value::as_str) {
                        Some(attr) => BODY_ATTRIBUTES.contains(&attr),
                        None => true,
                    };
                }
            }
            if map.get("Var").and_then(Value::as_str) == Some("context") {
                return true;
            }
            map.values().any(mentions_body)
        }
        Value::Array(items) => items.iter().any(mentions_body),
        _ => false,
    }
}
