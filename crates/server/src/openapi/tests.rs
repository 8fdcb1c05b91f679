use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::routes::table;

fn decls() -> Vec<RouteDecl> {
    table().into_iter().map(|(decl, _)| decl).collect()
}

fn doc() -> Value {
    serde_json::to_value(document(&decls())).expect("the document serialises")
}

/// Every `/api/v1` route of the table, as (method, path).
fn table_routes() -> BTreeSet<(String, String)> {
    api_routes(&decls())
        .into_keys()
        .map(|(m, p)| (m.to_lowercase(), p.to_owned()))
        .collect()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_api_route_of_the_table_is_documented_and_nothing_else() {
    let doc = doc();
    let routes = table_routes();
    let ops = documented(&doc);
    let missing: Vec<_> = routes.difference(&ops).collect();
    let unknown: Vec<_> = ops.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes without an operation in openapi/operations.rs: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "operations that name no route of the table: {unknown:?}"
    );
    assert!(
        routes.len() >= 80,
        "the walk found only {} routes",
        routes.len()
    );
}

#[test]
fn document_is_openapi_3_1_with_bearer_security_and_error_bodies() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let automations = &doc["paths"]["/api/v1/automations"];
    assert_eq!(
        automations["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert_eq!(
        automations["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateAutomation"
    );
    assert_eq!(
        automations["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Automation"
    );
    assert_eq!(
        automations["post"]["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let header = automations["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == ORG_HEADER)
        .expect("the organization header");
    assert_eq!(header["in"], "header");
    // The public document itself needs no credentials.
    assert_eq!(
        doc["paths"]["/api/v1/openapi.json"]["get"]["security"],
        serde_json::json!([{}])
    );
    // Query parameters come from the handlers' own query types.
    let audit: Vec<&str> = doc["paths"]["/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .expect("audit parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["type", "since", "until", "after", "limit"] {
        assert!(audit.contains(&name), "audit lacks ?{name}: {audit:?}");
    }
    // The error body names the members SPEC §10b promises and allows more (request ids).
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "message"]));
    assert_ne!(error["additionalProperties"], serde_json::json!(false));
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
}
