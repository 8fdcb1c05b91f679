//! Which parts of the request context a policy set reads: a walk over each policy's syntax tree
//! (Cedar's JSON form), not a text search, so `context["body"]` or odd spacing cannot hide a
//! read. The gateway buffers the body only when it is read, and builds only the context
//! attributes some policy reads (each is work on every request).

use std::collections::HashSet;

use cedar_policy::PolicySet;
use serde_json::Value;

/// The context attributes filled from the request body.
const BODY_ATTRIBUTES: [&str; 2] = ["body", "mcp"];

/// The context attributes some policy of a set reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextReads {
    /// A policy uses `context` as a whole (or could not be analysed): every attribute is built.
    all: bool,
    attributes: HashSet<String>,
}

impl ContextReads {
    /// The analysis of every policy of `set`.
    pub(super) fn of(set: &PolicySet) -> ContextReads {
        let mut reads = ContextReads::default();
        for policy in set.policies() {
            match policy.to_json() {
                Ok(json) => reads.walk(&json),
                // A policy Cedar cannot render is assumed to read everything: building an
                // attribute costs a little, deciding without it could be wrong.
                Err(_) => reads.all = true,
            }
        }
        reads
    }

    /// Whether the context attribute `name` (`headers`, `query`, `body`, …) is read.
    pub fn reads(&self, name: &str) -> bool {
        self.all || self.attributes.contains(name)
    }

    /// Whether the request body is read (`context.body…` or `context.mcp…`).
    pub fn reads_body(&self) -> bool {
        BODY_ATTRIBUTES.iter().any(|name| self.reads(name))
    }

    fn walk(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for op in [".", "has"] {
                    if let Some(inner) = map.get(op)
                        && is_context(inner.get("left"))
                    {
                        match inner.get("attr").and_then(Value::as_str) {
                            Some(attr) => {
                                self.attributes.insert(attr.to_owned());
                            }
                            None => self.all = true,
                        }
                        return;
                    }
                }
                if map.get("Var").and_then(Value::as_str) == Some("context") {
                    self.all = true;
                    return;
                }
                map.values().for_each(|v| self.walk(v));
            }
            Value::Array(items) => items.iter().for_each(|v| self.walk(v)),
            _ => {}
        }
    }
}

fn is_context(value: Option<&Value>) -> bool {
    value
        .and_then(|v| v.get("Var"))
        .and_then(Value::as_str)
        .is_some_and(|name| name == "context")
}
