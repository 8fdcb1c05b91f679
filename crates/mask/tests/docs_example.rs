//! The `[route.mask]` example in docs/gateway-masking.md loads and compiles, and the examples
//! the page gives behave as it says.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use keyward_mask::{ContentKind, ExactValueSet, ExactValues, MaskConfig, Masker};
use serde::Deserialize;

#[derive(Deserialize)]
struct RouteFile {
    route: Vec<Route>,
}

#[derive(Deserialize)]
struct Route {
    mask: MaskConfig,
}

fn doc() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/gateway-masking.md"
    ))
    .unwrap()
}

#[test]
fn the_documented_route_table_compiles() {
    let doc = doc();
    let start = doc.find("```toml\n").unwrap() + 8;
    let end = start + doc[start..].find("```").unwrap();
    let file: RouteFile = toml::from_str(&doc[start..end]).unwrap();
    let config = &file.route[0].mask;
    assert_eq!(config.custom.len(), 2);
    assert_eq!(
        config,
        &MaskConfig {
            custom: config.custom.clone(),
            json_paths: config.json_paths.clone(),
            ..MaskConfig::default()
        }
    );
    let m = Masker::new(config).unwrap();
    let (out, counts) = m.mask(
        ContentKind::Text,
        b"by EMP-123456 on build-7.corp.example.com",
    );
    assert_eq!(out, b"by [MASKED:employee_id] on [MASKED:internal_host]");
    assert_eq!(counts.total(), 2);
}

#[test]
fn the_documented_examples_hold() {
    let m = Masker::new(&MaskConfig::default()).unwrap();
    let upstream = r#"{"user":"jane.doe@example.com","card":"4111 1111 1111 1111","note":"key AKIAIOSFODNN7EXAMPLE"}"#;
    let client = r#"{"user":"[MASKED:email]","card":"[MASKED:card_number]","note":"key [MASKED:aws_access_key_id]"}"#;
    assert!(doc().contains(upstream) && doc().contains(client));
    assert_eq!(
        m.mask(ContentKind::Json, upstream.as_bytes()).0,
        client.as_bytes()
    );
    assert_eq!(
        m.mask(ContentKind::Json, br#"{"a":"a\njane@example.com"}"#)
            .0,
        br#"{"a":"a[MASKED:email]"}"#
    );
    assert_eq!(
        m.mask(ContentKind::Json, br#"{"card": 4111111111111111}"#)
            .0,
        br#"{"card": "[MASKED:card_number]"}"#
    );
    let sb = format!(
        "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={}=",
        "k".repeat(43)
    );
    let (out, _) = m.mask(ContentKind::Text, sb.as_bytes());
    assert!(
        out.ends_with(b"SharedAccessKey=[MASKED:azure_storage_key]"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn legacy_encrypted_pem_is_masked_whole() {
    let m = Masker::new(&MaskConfig::default()).unwrap();
    let key = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17D8D6D4E1C7A9\n\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n-----END RSA PRIVATE KEY-----\n";
    let (out, _) = m.mask(ContentKind::Text, key.as_bytes());
    assert_eq!(out, b"[MASKED:pem_private_key]\n");
}

#[test]
fn secret_values_match_in_their_json_forms() {
    let secret = "a/b\"c\\d-long-enough";
    let set = ExactValueSet::new(ExactValues::new([secret]).unwrap());
    let m = Masker::with_secrets(&MaskConfig::default(), std::sync::Arc::new(set)).unwrap();
    for body in [
        format!("raw {secret} end"),
        format!("{{\"v\":{}}}", serde_json::to_string(secret).unwrap()),
        r#"{"v":"a\/b\"c\\d-long-enough"}"#.to_owned(),
    ] {
        let (out, counts) = m.mask(ContentKind::Json, body.as_bytes());
        assert_eq!(
            counts.get("secret"),
            1,
            "{body} → {}",
            String::from_utf8_lossy(&out)
        );
        assert!(!String::from_utf8_lossy(&out).contains("long-enough"));
    }
    let _ = EMAIL;
}
