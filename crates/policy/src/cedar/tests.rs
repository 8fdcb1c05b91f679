use serde_json::json;

use super::*;
use crate::facts::{BodyFacts, PrincipalKind};
use crate::{Principal, RequestFacts};

pub(super) fn source(name: &str, text: &str) -> PolicySource {
    PolicySource {
        name: name.into(),
        text: text.into(),
    }
}

fn load(text: &str) -> Policies {
    Policies::load(&[source("p.cedar", text)]).unwrap()
}

fn load_err(text: &str) -> ConfigError {
    Policies::load(&[source("p.cedar", text)]).unwrap_err()
}

pub(super) fn workload() -> Principal {
    Principal {
        kind: PrincipalKind::Workload,
        org: "8f6c0d1e-0000-4000-8000-000000000001".into(),
        subject: "automation:llm-proxy".into(),
        email: None,
        groups: Vec::new(),
        role: None,
        automation: Some("llm-proxy".into()),
    }
}

pub(super) fn person(groups: &[&str]) -> Principal {
    Principal {
        kind: PrincipalKind::Idp,
        org: "8f6c0d1e-0000-4000-8000-000000000001".into(),
        subject: "alice".into(),
        email: Some("alice@example.com".into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        role: Some("member".into()),
        automation: None,
    }
}

pub(super) fn request(method: &str, path: &str) -> RequestFacts {
    RequestFacts {
        route: "openai".into(),
        method: method.into(),
        path: path.into(),
        ..RequestFacts::default()
    }
}

pub(super) fn with_body(mut r: RequestFacts, body: serde_json::Value) -> RequestFacts {
    r.body = BodyFacts::from_json_bytes(body.to_string().as_bytes());
    r
}

const PERMIT_ALL: &str = "@id(\"allow-all\")\npermit(principal, action, resource);\n";

pub(super) fn decide(policies: &Policies, r: &RequestFacts) -> Decision {
    policies.decide(&workload(), r, NoMatch::Deny)
}

#[test]
fn the_schema_parses_and_has_the_documented_types() {
    let schema = schema().unwrap();
    let types: Vec<String> = schema.entity_types().map(|t| t.to_string()).collect();
    for ty in [
        "Keyward::Principal",
        "Keyward::Group",
        "Keyward::Route",
        "Keyward::Headers",
        "Keyward::Query",
        "Keyward::Arguments",
    ] {
        assert!(
            types.contains(&ty.to_string()),
            "{ty} missing from {types:?}"
        );
    }
    assert_eq!(
        schema.actions().map(|a| a.to_string()).collect::<Vec<_>>(),
        vec![r#"Keyward::Action::"call""#]
    );
}

#[test]
fn deny_by_method() {
    let p = load(&format!(
        "{PERMIT_ALL}@id(\"no-delete\")\nforbid(principal, action, resource) when {{ context.method == \"DELETE\" }};"
    ));
    let d = decide(&p, &request("DELETE", "/openai/v1/files/1"));
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.policy_ids, vec!["no-delete"]);
    assert!(!d.no_match);
    let d = decide(&p, &request("GET", "/openai/v1/files/1"));
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.policy_ids, vec!["allow-all"]);
}

#[test]
fn deny_by_path_and_segment() {
    let p = load(&format!(
        "{PERMIT_ALL}forbid(principal, action, resource) when {{ context.path like \"/openai/v1/files*\" }};\n\
         forbid(principal, action, resource) when {{ context.segments.contains(\"admin\") }};"
    ));
    assert_eq!(
        decide(&p, &request("GET", "/openai/v1/files")).policy_ids,
        vec!["p.cedar#1"]
    );
    assert_eq!(
        decide(&p, &request("GET", "/openai/admin/x")).policy_ids,
        vec!["p.cedar#2"]
    );
    assert_eq!(
        decide(&p, &request("GET", "/openai/v1/models")).effect,
        Effect::Allow
    );
    // Encoded, dotted or doubled paths are normalized first and cannot slip past.
    for sneaky in [
        "/openai/v1/%66iles",
        "/openai/v1/models/../files",
        "//openai//v1/files",
    ] {
        assert_eq!(
            decide(&p, &request("GET", sneaky)).policy_ids,
            vec!["p.cedar#1"],
            "{sneaky}"
        );
    }
    assert_eq!(
        decide(&p, &request("GET", "/openai/%61dmin")).policy_ids,
        vec!["p.cedar#2"]
    );
}

#[test]
fn deny_by_header_and_query() {
    let p = load(&format!(
        "{PERMIT_ALL}@id(\"no-debug-header\")\nforbid(principal, action, resource) when {{\n  \
         context.headers.hasTag(\"x-debug\") && context.headers.getTag(\"x-debug\") == \"1\" }};\n\
         @id(\"no-debug-query\")\nforbid(principal, action, resource) when {{\n  \
         context.query.hasTag(\"debug\") && context.query.getTag(\"debug\").contains(\"true\") }};"
    ));
    let mut r = request("GET", "/openai/v1/models");
    r.headers = vec![("x-debug".into(), "1".into())];
    assert_eq!(decide(&p, &r).policy_ids, vec!["no-debug-header"]);
    r.headers = vec![("x-debug".into(), "0".into())];
    assert_eq!(decide(&p, &r).effect, Effect::Allow);
    // A repeated parameter cannot hide the forbidden value behind a harmless first one.
    r.query = vec![
        ("debug".into(), "false".into()),
        ("debug".into(), "true".into()),
    ];
    assert_eq!(decide(&p, &r).policy_ids, vec!["no-debug-query"]);
}

#[test]
fn repeated_headers_are_joined_and_names_lowercased() {
    let p = load(&format!(
        "{PERMIT_ALL}@id(\"x\")\nforbid(principal, action, resource) when {{\n  \
         context.headers.hasTag(\"x-env\") && context.headers.getTag(\"x-env\") == \"a, prod\" }};"
    ));
    let mut r = request("GET", "/");
    r.headers = vec![
        ("X-Env".into(), "a".into()),
        ("x-env".into(), "prod".into()),
    ];
    assert_eq!(decide(&p, &r).policy_ids, vec!["x"]);
}

#[test]
fn deny_by_body_model_and_allow_only_some_models() {
    let p = load(
        "@id(\"cheap-models\")\npermit(principal, action, resource) when {\n  \
         context.body has model && [\"gpt-4o-mini\", \"gpt-4.1-nano\"].contains(context.body.model) };\n\
         @id(\"no-stream-o1\")\nforbid(principal, action, resource) when {\n  \
         context.body has model && context.body.model == \"o1\" };",
    );
    assert!(p.reads_body());
    let allowed = with_body(request("POST", "/v1/chat"), json!({"model": "gpt-4o-mini"}));
    let d = decide(&p, &allowed);
    assert_eq!(
        (d.effect, d.policy_ids),
        (Effect::Allow, vec!["cheap-models".to_owned()])
    );
    let denied = with_body(request("POST", "/v1/chat"), json!({"model": "o1"}));
    assert_eq!(decide(&p, &denied).policy_ids, vec!["no-stream-o1"]);
    let other = with_body(request("POST", "/v1/chat"), json!({"model": "gpt-4o"}));
    let d = decide(&p, &other);
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.no_match && d.policy_ids.is_empty());
    // No body read at all: nothing matches.
    assert!(decide(&p, &request("POST", "/v1/chat")).no_match);
}

#[test]
fn body_stream_and_max_tokens_are_typed() {
    let p = load(&format!(
        "{PERMIT_ALL}@id(\"big\")\nforbid(principal, action, resource) when {{\n  \
         context.body has max_tokens && context.body.max_tokens > 4000 }};\n\
         @id(\"stream\")\nforbid(principal, action, resource) when {{\n  \
         context.body has stream && context.body.stream }};"
    ));
    let r = |body| with_body(request("POST", "/v1/chat"), body);
    assert_eq!(
        decide(&p, &r(json!({"max_tokens": 5000}))).policy_ids,
        vec!["big"]
    );
    assert_eq!(
        decide(&p, &r(json!({"max_tokens": 100}))).effect,
        Effect::Allow
    );
    assert_eq!(
        decide(&p, &r(json!({"stream": true}))).policy_ids,
        vec!["stream"]
    );
    // `5000.0` is not a Cedar integer: the comparison fails, and a forbid that fails denies.
    let d = decide(&p, &r(json!({"max_tokens": 5000.0})));
    assert_eq!(
        (d.effect, d.policy_ids),
        (Effect::Deny, vec!["big".to_owned()])
    );
    // A string where a boolean belongs: the forbid cannot be evaluated, so it denies.
    assert_eq!(
        decide(&p, &r(json!({"stream": "yes"}))).effect,
        Effect::Deny
    );
}

#[test]
fn deny_by_mcp_tool_and_argument() {
    let p = load(&format!(
        "{PERMIT_ALL}@id(\"no-delete-repo\")\nforbid(principal, action, resource) when {{\n  \
         context has mcp && context.mcp has tool && context.mcp.tool == \"delete_repo\" }};\n\
         @id(\"no-prod\")\nforbid(principal, action, resource) when {{\n  \
         context has mcp && context.mcp.arguments.hasTag(\"env\") && context.mcp.arguments.getTag(\"env\") == \"prod\" }};"
    ));
    assert!(p.reads_body());
    let call = |tool: &str, arguments| {
        with_body(
            request("POST", "/mcp"),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}}),
        )
    };
    assert_eq!(
        decide(&p, &call("delete_repo", json!({"repo": "x"}))).policy_ids,
        vec!["no-delete-repo"]
    );
    assert_eq!(
        decide(&p, &call("list_repos", json!({}))).effect,
        Effect::Allow
    );
    assert_eq!(
        decide(&p, &call("deploy", json!({"env": "prod"}))).policy_ids,
        vec!["no-prod"]
    );
    let list = with_body(
        request("POST", "/mcp"),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    );
    assert_eq!(decide(&p, &list).effect, Effect::Allow);
}

#[test]
fn forbid_beats_permit_and_all_deciding_ids_are_given() {
    let p = load(
        "@id(\"a\") permit(principal, action, resource);\n\
         @id(\"b\") permit(principal, action, resource) when { context.method == \"GET\" };\n\
         @id(\"c\") forbid(principal, action, resource) when { context.path == \"/secret\" };\n\
         @id(\"d\") forbid(principal, action, resource) when { context.segments.contains(\"secret\") };",
    );
    let d = decide(&p, &request("GET", "/secret"));
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.policy_ids, vec!["c", "d"]);
    let d = decide(&p, &request("GET", "/open"));
    assert_eq!(
        (d.effect, d.policy_ids),
        (Effect::Allow, vec!["a".to_owned(), "b".to_owned()])
    );
}

#[test]
fn no_match_follows_the_route() {
    let p = load(
        "@id(\"gets\") permit(principal, action, resource) when { context.method == \"GET\" };",
    );
    let post = request("POST", "/x");
    let d = p.decide(&workload(), &post, NoMatch::Deny);
    assert_eq!(
        d,
        Decision {
            effect: Effect::Deny,
            policy_ids: vec![],
            approval_required: false,
            no_match: true
        }
    );
    let d = p.decide(&workload(), &post, NoMatch::Allow);
    assert_eq!((d.effect, d.no_match), (Effect::Allow, true));
    let empty = Policies::load(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        empty.decide(&workload(), &post, NoMatch::Deny).effect,
        Effect::Deny
    );
}

#[test]
fn a_permit_that_fails_to_evaluate_never_allows() {
    // Passes validation, but overflows on a large `max_tokens`.
    let p = load(
        "@id(\"small\") permit(principal, action, resource) when {\n  \
         context.body has max_tokens && context.body.max_tokens * 1000000 < 4000000000 };",
    );
    let r = |n: i64| with_body(request("POST", "/"), json!({ "max_tokens": n }));
    assert_eq!(decide(&p, &r(100)).effect, Effect::Allow);
    // Even with `no_match = allow` the erroring permit denies, and is named.
    let d = p.decide(&workload(), &r(i64::MAX / 10), NoMatch::Allow);
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.policy_ids, vec!["small"]);
    assert!(!d.no_match);
}

#[test]
fn a_forbid_that_fails_to_evaluate_denies() {
    let p = load(&format!(
        "{PERMIT_ALL}@id(\"costly\") forbid(principal, action, resource) when {{\n  \
         context.body has max_tokens && context.body.max_tokens * 1000000 > 4000000000 }};"
    ));
    let r = |n: i64| with_body(request("POST", "/"), json!({ "max_tokens": n }));
    assert_eq!(decide(&p, &r(100)).effect, Effect::Allow);
    assert_eq!(decide(&p, &r(10_000)).policy_ids, vec!["costly"]);
    // Overflow: Cedar skips the policy; we deny and name it.
    let d = decide(&p, &r(i64::MAX / 10));
    assert_eq!(
        (d.effect, d.policy_ids),
        (Effect::Deny, vec!["costly".to_owned()])
    );
}

#[test]
fn principal_attributes_and_groups() {
    let p = load(
        "@id(\"admins\") permit(principal in Keyward::Group::\"admins\", action, resource);\n\
         @id(\"bots\") permit(principal, action, resource == Keyward::Route::\"openai\") when {\n  \
         principal.kind == \"workload\" && principal has automation && principal.automation == \"llm-proxy\" };\n\
         @id(\"emails\") forbid(principal, action, resource) when { principal has email && principal.email like \"*@evil.test\" };",
    );
    let r = request("GET", "/");
    assert_eq!(
        p.decide(&person(&["admins", "eng"]), &r, NoMatch::Deny)
            .policy_ids,
        vec!["admins"]
    );
    assert!(p.decide(&person(&["eng"]), &r, NoMatch::Deny).no_match);
    assert_eq!(decide(&p, &r).policy_ids, vec!["bots"]);
    let mut other_route = r.clone();
    other_route.route = "vertex".into();
    assert!(decide(&p, &other_route).no_match);
    let mut evil = person(&["admins"]);
    evil.email = Some("mallory@evil.test".into());
    assert_eq!(
        p.decide(&evil, &r, NoMatch::Deny).policy_ids,
        vec!["emails"]
    );
}

#[test]
fn approval_annotation_is_carried() {
    let p = load(
        "@id(\"expensive\") @approval(\"required\")\npermit(principal, action, resource) when {\n  \
         context.body has model && context.body.model == \"o1\" };\n\
         @id(\"cheap\") permit(principal, action, resource) when {\n  \
         context.body has model && context.body.model == \"gpt-4o-mini\" };",
    );
    let o1 = with_body(request("POST", "/"), json!({"model": "o1"}));
    let d = decide(&p, &o1);
    assert_eq!((d.effect, d.approval_required), (Effect::Allow, true));
    assert_eq!(d.policy_ids, vec!["expensive"]);
    let mini = with_body(request("POST", "/"), json!({"model": "gpt-4o-mini"}));
    assert!(!decide(&p, &mini).approval_required);

    let err = load_err("@approval(\"maybe\") permit(principal, action, resource);");
    assert!(
        err.message
            .contains("`@approval(\"maybe\")` is not understood"),
        "{err}"
    );
    let err = load_err(
        "permit(principal, action, resource);\n@approval(\"required\") forbid(principal, action, resource);",
    );
    assert_eq!(err.location.unwrap().to_string(), "p.cedar:2:1");
    assert!(err.message.contains("is on a `forbid`"), "{}", err.message);
}

#[test]
fn a_schema_typo_names_line_and_column() {
    let err = load_err(
        "permit(principal, action, resource);\nforbid(principal, action, resource)\n  when { context.bdy.model == \"x\" };",
    );
    let location = err.location.clone().unwrap();
    assert_eq!(
        (location.file.as_str(), location.line, location.column),
        ("p.cedar", 3, 10)
    );
    assert!(err.message.contains("bdy"), "{err}");
    assert!(
        err.to_string()
            .starts_with("p.cedar:3:10: the policy does not match"),
        "{err}"
    );
}

#[test]
fn unknown_attribute_and_unguarded_optional_are_load_errors() {
    let err =
        load_err("permit(principal, action, resource) when { context.body.temperature > 1 };");
    assert_eq!(err.location.unwrap().to_string(), "p.cedar:1:44");
    assert!(err.message.contains("temperature"), "{}", err.message);
    // An optional attribute read without `has` would fail at run time: refused at load.
    let err =
        load_err("forbid(principal, action, resource) when {\n    context.body.model == \"o1\" };");
    assert_eq!(err.location.unwrap().to_string(), "p.cedar:2:5");
    // `getTag` without `hasTag` likewise.
    let err = load_err(
        "forbid(principal, action, resource) when { context.headers.getTag(\"x\") == \"1\" };",
    );
    assert!(err.location.is_some(), "{err}");
}

#[test]
fn of_several_schema_errors_the_first_in_reading_order_is_reported() {
    let text = "forbid(principal, action, resource) when { context.mehtod == \"GET\" };\n\
                forbid(principal, action, resource) when { context.pth == \"/\" };\n\
                forbid(principal, action, resource) when { context.bdy has model };";
    for _ in 0..5 {
        let err = Policies::load(&[
            source("a.cedar", "permit(principal, action, resource);"),
            source("b.cedar", text),
        ])
        .unwrap_err();
        assert_eq!(err.location.unwrap().to_string(), "b.cedar:1:44");
        assert!(err.message.contains("mehtod"), "{}", err.message);
    }
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let err =
        load_err("permit(principal, action, resource);\n\npermit(principal action, resource);");
    let location = err.location.clone().unwrap();
    assert_eq!((location.line, location.column), (3, 18));
    assert!(
        err.message.starts_with("the policy does not parse"),
        "{err}"
    );
}

#[test]
fn ids_default_to_source_and_index_and_must_be_unique() {
    let p = Policies::load(&[
        source("a.cedar", "permit(principal, action, resource);\n@id(\"named\") forbid(principal, action, resource) when { context.method == \"PUT\" };\npermit(principal, action, resource);"),
        source("openai/inline", "forbid(principal, action, resource) when { context.method == \"PATCH\" };"),
    ])
    .unwrap();
    assert_eq!(
        p.ids(),
        ["a.cedar#0", "named", "a.cedar#2", "openai/inline#0"]
    );
    let d = decide(&p, &request("PATCH", "/"));
    assert_eq!(d.policy_ids, vec!["openai/inline#0"]);

    let err = Policies::load(&[
        source("a.cedar", "@id(\"x\") permit(principal, action, resource);"),
        source(
            "b.cedar",
            "\n  @id(\"x\") forbid(principal, action, resource);",
        ),
    ])
    .unwrap_err();
    assert_eq!(err.location.unwrap().to_string(), "b.cedar:2:3");
    assert!(
        err.message.contains("`x` is used twice (first in a.cedar)"),
        "{}",
        err.message
    );
}

#[test]
fn templates_are_refused() {
    let err = load_err("permit(principal == ?principal, action, resource);");
    assert_eq!(err.location.unwrap().to_string(), "p.cedar:1:21");
    assert!(err.message.contains("template"), "{}", err.message);
}

#[test]
fn reads_body_only_when_a_policy_reads_it() {
    assert!(!load(PERMIT_ALL).reads_body());
    assert!(!load("forbid(principal, action, resource) when { context.method == \"GET\" && context.headers.hasTag(\"body\") };").reads_body());
    assert!(
        load("forbid(principal, action, resource) when { context[\"body\"] has model };")
            .reads_body()
    );
    assert!(load("forbid(principal, action, resource) when { context has mcp };").reads_body());
}

#[test]
fn only_the_context_attributes_a_policy_reads_are_built_and_they_still_decide() {
    let p = load(
        "forbid(principal, action, resource) when { context.headers.hasTag(\"x-debug\") };\n\
         permit(principal, action, resource) when { context[\"method\"] == \"GET\" };",
    );
    let reads = p.context_reads();
    assert!(reads.reads("headers") && reads.reads("method"));
    assert!(!reads.reads("query") && !reads.reads("body") && !reads.reads("segments"));
    // What is read still decides: the header forbids, the method permits.
    let mut facts = request("GET", "/v1/x");
    assert_eq!(
        p.decide(&workload(), &facts, NoMatch::Deny).effect,
        Effect::Allow
    );
    facts.headers.push(("x-debug".into(), "1".into()));
    assert_eq!(
        p.decide(&workload(), &facts, NoMatch::Deny).effect,
        Effect::Deny
    );
    // `has` is a read too.
    let all = load("permit(principal, action, resource) when { context has query };");
    assert!(all.context_reads().reads("query") && !all.context_reads().reads("headers"));
}
