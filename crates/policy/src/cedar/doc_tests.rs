//! `docs/gateway-policy.md` stays true: its schema is the shipped one, and its examples load
//! and do what their titles say.

use serde_json::json;

use super::tests::{decide, person, request, source, with_body};
use super::*;

/// The fenced blocks of `docs/gateway-policy.md` with `info` as their language.
fn doc_blocks(info: &str) -> Vec<(usize, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/gateway-policy.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == format!("```{info}") => {
                current = Some((index + 2, String::new()))
            }
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_cedar_example_of_the_policy_doc_loads() {
    let blocks = doc_blocks("cedar");
    assert!(
        blocks.len() >= 6,
        "expected the five examples and more, found {}",
        blocks.len()
    );
    for (line, text) in &blocks {
        let name = format!("docs/gateway-policy.md (block at line {line})");
        if let Err(e) = Policies::load(&[source(&name, text)]) {
            panic!("{e}");
        }
    }
    // The examples do what their titles say.
    let example = |n: usize| Policies::load(&[source("example", &blocks[n].1)]).unwrap();
    let deny_delete = example(1);
    assert_eq!(
        decide(&deny_delete, &request("DELETE", "/x")).policy_ids,
        vec!["no-delete"]
    );
    let models = example(4);
    let d = models.decide(
        &person(&["admins"]),
        &with_body(request("POST", "/v1/chat"), json!({"model": "o1"})),
        NoMatch::Deny,
    );
    assert!(d.effect == Effect::Allow && d.approval_required);
    let mini = with_body(
        request("POST", "/v1/chat"),
        json!({"model": "gpt-4o-mini", "max_tokens": 10000}),
    );
    assert_eq!(decide(&models, &mini).policy_ids, vec!["max-tokens"]);
    let other = with_body(request("POST", "/v1/chat"), json!({"model": "gpt-4o"}));
    assert!(decide(&models, &other).no_match);
    let mcp = example(5);
    let call = with_body(
        request("POST", "/mcp"),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "deploy", "arguments": {"env": "prod"}}}),
    );
    assert_eq!(decide(&mcp, &call).policy_ids, vec!["no-delete-repo"]);
}

#[test]
fn the_policy_doc_shows_the_schema_as_shipped() {
    let blocks = doc_blocks("cedarschema");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].1, SCHEMA);
}
