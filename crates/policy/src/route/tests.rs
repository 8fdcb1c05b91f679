use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::{Effect, Principal, PrincipalKind, RequestFacts};

/// A `read` over in-memory files.
fn files(list: &[(&str, &str)]) -> impl Fn(&str) -> Result<String, String> + use<> {
    let map: HashMap<String, String> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |path: &str| {
        map.get(path)
            .cloned()
            .ok_or_else(|| "no such file or directory".to_owned())
    }
}

fn parse(text: &str) -> Result<RouteFile, ConfigError> {
    parse_route_file("routes.toml", text, &files(&[]))
}

fn parse_err(text: &str) -> ConfigError {
    parse(text).unwrap_err()
}

fn at(err: &ConfigError) -> String {
    err.location
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

const FULL: &str = r#"organization = "acme"

[[route]]
name = "openai"
path_prefix = "/openai/"
upstream = "http://127.0.0.1:9000/v1"
accept = ["workload", "pat"]
policies = ["openai.cedar"]
no_match = "allow"
inspect_limit = "512KiB"
connect_timeout = "2s"
timeout = "2m"
strip_prefix = false
[route.credential]
kind = "secret"
automation = "llm-proxy"
token_env = "LLM_PROXY_TOKEN"
env = "OPENAI_API_KEY"
header = "X-Api-Key"
format = "{}"

[[route]]
name = "mcp"
host = "MCP.internal"
upstream = "https://mcp.internal:8443/"
policy = '''
forbid(principal, action, resource) when {
  context has mcp && context.mcp has tool && context.mcp.tool == "delete_repo"
};
'''
"#;

#[test]
fn a_full_file_is_read_with_its_values_and_defaults() {
    let read = files(&[(
        "openai.cedar",
        "@id(\"no-delete\") forbid(principal, action, resource) when { context.method == \"DELETE\" };",
    )]);
    let file = parse_route_file("routes.toml", FULL, &read).unwrap();
    assert_eq!(file.organization.as_deref(), Some("acme"));
    let [openai, mcp] = file.routes.as_slice() else {
        panic!("two routes expected");
    };
    assert_eq!(openai.name, "openai");
    assert_eq!(openai.path_prefix.as_deref(), Some("/openai"));
    assert_eq!(openai.upstream.as_str(), "http://127.0.0.1:9000/v1");
    assert_eq!(openai.accept, vec![Accept::Workload, Accept::Pat]);
    assert_eq!(openai.no_match, NoMatch::Allow);
    assert_eq!(openai.inspect_limit, 512 * 1024);
    assert_eq!(openai.connect_timeout, Duration::from_secs(2));
    assert_eq!(openai.timeout, Duration::from_secs(120));
    assert!(!openai.strip_prefix);
    assert_eq!(openai.policies.ids(), ["no-delete"]);
    assert!(!openai.policies.reads_body());
    assert!(matches!(
        &openai.credential,
        CredentialSpec::Secret { header, format: Some(f), env, .. }
            if header == "x-api-key" && f == "{}" && env == "OPENAI_API_KEY"
    ));

    // Defaults.
    assert_eq!(mcp.host.as_deref(), Some("mcp.internal"));
    assert_eq!(mcp.path_prefix, None);
    assert!(mcp.strip_prefix);
    assert_eq!(mcp.accept, vec![Accept::Workload, Accept::Idp, Accept::Pat]);
    assert_eq!(mcp.no_match, NoMatch::Deny);
    assert_eq!(mcp.inspect_limit, 1 << 20);
    assert_eq!(mcp.connect_timeout, Duration::from_secs(5));
    assert_eq!(mcp.timeout, Duration::from_secs(60));
    assert_eq!(mcp.credential, CredentialSpec::None);
    assert_eq!(mcp.policies.ids(), ["mcp/inline#0"]);
    assert!(mcp.policies.reads_body());

    // The route's policies decide with the route's facts.
    let principal = Principal {
        kind: PrincipalKind::Pat,
        org: "o".into(),
        subject: "user:1".into(),
        email: None,
        groups: vec![],
        role: Some("owner".into()),
        automation: None,
    };
    let delete = RequestFacts {
        route: "openai".into(),
        method: "DELETE".into(),
        path: "/openai/v1/files/1".into(),
        ..RequestFacts::default()
    };
    let d = openai.policies.decide(&principal, &delete, openai.no_match);
    assert_eq!(
        (d.effect, d.policy_ids),
        (Effect::Deny, vec!["no-delete".into()])
    );
}

#[test]
fn a_misspelt_key_names_line_and_column() {
    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\npolices = [\"a.cedar\"]\n",
    );
    assert_eq!(at(&err), "routes.toml:5:1");
    assert!(
        err.message.contains("unknown field `polices`"),
        "{}",
        err.message
    );
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let err = parse_err("organization = \"acme\"\n[[route]\nname = \"a\"\n");
    assert_eq!(err.location.as_ref().unwrap().line, 2);
    assert!(
        err.message.starts_with("the route file is not valid"),
        "{err}"
    );
}

#[test]
fn semantic_errors_point_at_the_key_or_the_route() {
    let err = parse_err("[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"ftp://a\"\n");
    assert_eq!(at(&err), "routes.toml:4:1");
    assert_eq!(err.field.as_deref(), Some("upstream"));
    assert!(err.message.contains("not an http or https URL"), "{err}");

    let err = parse_err(
        "[[route]]\nname = \"a\"\nupstream = \"http://a\"\n\n[[route]]\npath_prefix = \"/b\"\nupstream = \"http://b\"\n",
    );
    // The first route matches nothing: pointed at its table.
    assert_eq!(err.field.as_deref(), Some("path_prefix"));
    assert_eq!(err.location.as_ref().unwrap().line, 1, "{err}");
    assert!(err.message.contains("matches nothing"), "{err}");

    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\n\n[[route]]\npath_prefix = \"/b\"\nupstream = \"http://b\"\n",
    );
    assert_eq!(err.field.as_deref(), Some("name"));
    assert_eq!(err.location.as_ref().unwrap().line, 6, "{err}");

    let err = parse_err("[[route]]\nname = \"a\"\npath_prefix = \"a\"\nupstream = \"http://a\"\n");
    assert_eq!(at(&err), "routes.toml:3:1");
    assert!(err.message.contains("starts with `/`"), "{err}");

    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\ntimeout = \"5 parsecs\"\n",
    );
    assert_eq!(at(&err), "routes.toml:5:1");
    assert!(err.message.contains("is not a duration"), "{err}");

    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\ninspect_limit = \"1TiB\"\n",
    );
    assert_eq!(at(&err), "routes.toml:5:1");

    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\n[route.credential]\nkind = \"secret\"\nautomation = \"x\"\ntoken_env = \"BAD-NAME\"\nenv = \"K\"\n",
    );
    assert_eq!(at(&err), "routes.toml:8:1");
    assert_eq!(err.field.as_deref(), Some("credential.token_env"));

    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\naccept = []\n",
    );
    assert_eq!(at(&err), "routes.toml:5:1");
}

#[test]
fn two_routes_with_the_same_host_and_prefix_are_refused() {
    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/x/\"\nupstream = \"http://a\"\n\n[[route]]\nname = \"b\"\npath_prefix = \"/x\"\nupstream = \"http://b\"\n",
    );
    assert_eq!(at(&err), "routes.toml:8:1");
    assert!(
        err.message
            .contains("route \"b\" matches the same host and path prefix as route \"a\""),
        "{err}"
    );
    // Same prefix on different hosts is fine.
    parse("[[route]]\nname = \"a\"\nhost = \"a.internal\"\npath_prefix = \"/x\"\nupstream = \"http://a\"\n\n[[route]]\nname = \"b\"\nhost = \"b.internal\"\npath_prefix = \"/x\"\nupstream = \"http://b\"\n").unwrap();
}

#[test]
fn policy_file_errors_name_the_policy_file() {
    let read = files(&[(
        "p.cedar",
        "permit(principal, action, resource);\nforbid(principal, action, resource) when {\n  context.bdy.model == \"x\" };",
    )]);
    let text = "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\npolicies = [\"p.cedar\"]\n";
    let err = parse_route_file("routes.toml", text, &read).unwrap_err();
    assert_eq!(at(&err), "p.cedar:3:3");
    assert_eq!(err.field.as_deref(), Some("policies[0]"));

    let err = parse_route_file(
        "routes.toml",
        &text.replace("p.cedar", "missing.cedar"),
        &read,
    )
    .unwrap_err();
    assert_eq!(at(&err), "routes.toml:5:1");
    assert!(
        err.message
            .contains("\"missing.cedar\", which cannot be read: no such file"),
        "{err}"
    );
}

#[test]
fn inline_policy_errors_point_into_the_route_file() {
    let text = "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\npolicy = '''\npermit(principal, action, resource);\nforbid(principal, action, resource) when { context.bdy has model };\n'''\n";
    let err = parse_err(text);
    assert_eq!(at(&err), "routes.toml:7:44");
    assert_eq!(err.field.as_deref(), Some("policy"));
    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"http://a\"\npolicy = 'permit(principal, action, resourze);'\n",
    );
    assert_eq!(err.location.as_ref().unwrap().line, 5, "{err}");
}

#[test]
fn an_upstream_with_credentials_or_a_bad_host_is_refused() {
    let err = parse_err(
        "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"https://user:pw@a\"\n",
    );
    assert!(err.message.contains("user name or password"), "{err}");
    assert!(
        !err.message.contains("pw"),
        "the password is not echoed: {err}"
    );
    let err =
        parse_err("[[route]]\nname = \"a\"\nhost = \"a.internal:8443\"\nupstream = \"http://a\"\n");
    assert_eq!(at(&err), "routes.toml:3:1");
}

#[test]
fn upstream_ca_is_read_through_the_reader() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let read = files(&[("ca.pem", pem), ("junk.pem", "hello")]);
    let text = "[[route]]\nname = \"a\"\npath_prefix = \"/a\"\nupstream = \"https://a\"\nupstream_ca = \"ca.pem\"\n";
    let file = parse_route_file("routes.toml", text, &read).unwrap();
    assert_eq!(file.routes[0].upstream_ca.as_deref(), Some(pem));
    let err =
        parse_route_file("routes.toml", &text.replace("ca.pem", "junk.pem"), &read).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("upstream_ca"));
}

#[test]
fn an_empty_file_says_what_to_add() {
    let err = parse_err("organization = \"acme\"\n");
    assert_eq!(at(&err), "routes.toml:1:1");
    assert!(err.message.contains("no route"), "{err}");
}

#[test]
fn a_stored_route_is_validated_the_same_way() {
    let route = route_from_json(&json!({
        "name": "vertex",
        "path_prefix": "/vertex",
        "upstream": "https://aiplatform.googleapis.com",
        "policy": "@id(\"gets\") permit(principal, action, resource) when { context.method == \"GET\" };",
        "inspect_limit": 4096,
        "timeout": "90s",
        "credential": {"kind": "gcp", "automation": "a", "token_env": "A_TOKEN"}
    }))
    .unwrap();
    assert_eq!(route.inspect_limit, 4096);
    assert_eq!(route.timeout, Duration::from_secs(90));
    assert_eq!(route.policies.ids(), ["gets"]);
    assert!(matches!(route.credential, CredentialSpec::Gcp { .. }));

    let err = route_from_json(&json!({
        "name": "x", "path_prefix": "/x", "upstream": "http://x", "policies": ["x.cedar"]
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("policies[0]"));
    assert!(err.message.contains("a stored route cannot"), "{err}");

    let err = route_from_json(&json!({
        "name": "x", "path_prefix": "/x", "upstream": "http://x", "upstream_ca": "ca.pem"
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("upstream_ca"));

    let err = route_from_json(&json!({
        "name": "x", "path_prefix": "/x", "upstream": "http://x", "polcy": "permit(principal, action, resource);"
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("polcy"));

    let err = route_from_json(&json!({
        "name": "x", "path_prefix": "/x", "upstream": "http://x",
        "policy": "permit(principal, action, resource) when {\n context.bdy has model };"
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("policy"));
    assert_eq!(at(&err), "x/inline:2:2");

    let err = route_from_json(&json!({
        "name": "x", "path_prefix": "/x", "upstream": "http://x", "timeout": [5]
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("timeout"));
    assert!(
        err.message
            .contains("expected a number or a string with a unit"),
        "{err}"
    );
    let err = route_from_json(&json!({
        "name": "x", "path_prefix": "/x", "upstream": "http://x", "credential": {"kind": "aws", "automation": "a"}
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("credential.token_env"));
    assert!(err.message.contains("missing field `token_env`"), "{err}");

    let err = route_from_json(&json!({"path_prefix": "/x", "upstream": "http://x"})).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("name"));
    assert!(err.location.is_none());
}

#[test]
fn raw_routes_round_trip_through_json() {
    let raw: RawRouteFile = toml::from_str(FULL).unwrap();
    let json = serde_json::to_value(&raw.routes[0]).unwrap();
    assert_eq!(json["inspect_limit"], "512KiB");
    // Absent fields are left out of the stored form.
    assert!(json.get("host").is_none(), "{json}");
    let back: RawRoute = serde_json::from_value(json).unwrap();
    assert_eq!(back, raw.routes[0]);
}
