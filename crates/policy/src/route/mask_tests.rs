//! `[route.mask]`: read from TOML and JSON, compiled at load, errors naming the route, the field
//! and the place.

use serde_json::json;

use super::*;

fn parse(text: &str) -> Result<RouteFile, ConfigError> {
    parse_route_file("routes.toml", text, &|_| Err("no files here".to_owned()))
}

const ROUTE: &str = r#"[[route]]
name = "llm"
path_prefix = "/llm"
upstream = "http://127.0.0.1:9000/v1"
"#;

#[test]
fn a_mask_table_is_read_with_its_defaults() {
    let file = parse(&format!(
        "{ROUTE}[route.mask]\njson_paths = [\"$.user.password\"]\nrequests = true\n"
    ))
    .unwrap();
    let mask = file.routes[0].mask.clone().unwrap();
    assert_eq!(mask.json_paths, vec!["$.user.password".to_owned()]);
    assert!(mask.requests && mask.secrets);
    assert_eq!(mask.detectors, vec!["all".to_owned()]);
    assert!(parse(ROUTE).unwrap().routes[0].mask.is_none());
}

#[test]
fn a_bad_mask_names_the_route_the_field_and_the_place() {
    let err = parse(&format!(
        "{ROUTE}[route.mask]\ndetectors = [\"email\", \"emial\"]\n"
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("mask.detectors"));
    assert!(
        err.message.contains("\"llm\"") && err.message.contains("emial"),
        "{err}"
    );
    let location = err.location.unwrap();
    assert_eq!(
        (location.file.as_str(), location.line, location.column),
        ("routes.toml", 6, 1)
    );

    let err = parse(&format!(
        "{ROUTE}[route.mask]\ncustom = [{{ name = \"x\", pattern = '(?=a)b' }}]\n"
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("mask.custom"));
    assert_eq!(err.location.unwrap().line, 6);

    let err = parse(&format!("{ROUTE}[route.mask]\njson_paths = [\"user\"]\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("mask.json_paths"));

    let err = parse(&format!("{ROUTE}[route.mask]\nmax_match_bytes = 1\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("mask.max_match_bytes"));

    let err = parse(&format!("{ROUTE}[route.mask]\njson_document_limit = 0\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("mask.json_document_limit"));

    // A misspelt key is refused by the table itself, at its place.
    let err = parse(&format!("{ROUTE}[route.mask]\nrequest = true\n")).unwrap_err();
    assert!(err.message.contains("unknown field `request`"), "{err}");
    assert_eq!(err.location.unwrap().line, 6);
}

#[test]
fn a_stored_route_takes_mask_as_json() {
    let route = route_from_json(&json!({
        "name": "llm", "path_prefix": "/llm", "upstream": "http://127.0.0.1:9000/v1",
        "mask": {"detectors": ["card_number"], "secrets": false}
    }))
    .unwrap();
    let mask = route.mask.unwrap();
    assert_eq!(mask.detectors, vec!["card_number".to_owned()]);
    assert!(!mask.secrets);
    let err = route_from_json(&json!({
        "name": "llm", "path_prefix": "/llm", "upstream": "http://127.0.0.1:9000/v1",
        "mask": {"detectors": ["nope"]}
    }))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("mask.detectors"));
}

#[test]
fn the_documented_route_loads() {
    let doc = include_str!("../../../../docs/gateway-masking.md");
    let start = doc.find("```toml\n").unwrap() + 8;
    let end = start + doc[start..].find("```").unwrap();
    let file = parse(&doc[start..end]).unwrap();
    let mask = file.routes[0].mask.as_ref().unwrap();
    assert_eq!(mask.custom.len(), 2);
    assert_eq!(mask.json_paths.len(), 3);
    // The stored-route form the page gives.
    let start = doc.find("```json\n{\"name\"").unwrap() + 8;
    let end = start + doc[start..].find("```").unwrap();
    let route = route_from_json(&serde_json::from_str(&doc[start..end]).unwrap()).unwrap();
    assert!(route.mask.unwrap().requests);
}
