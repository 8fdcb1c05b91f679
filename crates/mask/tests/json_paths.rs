//! JSON paths mask whole values in a JSON document and leave the rest byte for byte.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use keyward_mask::{MaskConfig, Masker};

fn masker(paths: &[&str]) -> Masker {
    Masker::new(&MaskConfig {
        json_paths: paths.iter().map(|p| p.to_string()).collect(),
        ..MaskConfig::default()
    })
    .unwrap()
}

#[test]
fn paths_mask_values_and_keep_the_rest_as_written() {
    let m = masker(&[
        "$.a.b",
        "$.items[*].secret",
        "$..password",
        "$['odd key']",
        "$.list[1]",
    ]);
    let body = br#"{ "z": 1, "a": {"b": {"deep": [1,2]}, "c": 3},
  "items": [{"secret": "s1", "id": 1}, {"secret": 42}, {"id": 3}],
  "nested": {"x": [{"password": "hunter2"}], "password": null},
  "odd key": true, "list": [10, 20, 30], "password": "top"}"#;
    let (out, counts) = m.mask_json_document(body, 1 << 20);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        r#"{ "z": 1, "a": {"b": "[MASKED:json_path]", "c": 3},
  "items": [{"secret": "[MASKED:json_path]", "id": 1}, {"secret": "[MASKED:json_path]"}, {"id": 3}],
  "nested": {"x": [{"password": "[MASKED:json_path]"}], "password": "[MASKED:json_path]"},
  "odd key": "[MASKED:json_path]", "list": [10, "[MASKED:json_path]", 30], "password": "[MASKED:json_path]"}"#
    );
    assert_eq!(counts.get("json_path"), 8);
    serde_json::from_str::<serde_json::Value>(&out).unwrap();
}

#[test]
fn escaped_keys_and_wildcards() {
    let m = masker(&["$.*.token", r#"$["k\"q"]"#]);
    let body =
        br#"{"svc":{"token":"t1"},"other":{"token":"t2","keep":"k"},"k\"q":"v","token":"top"}"#;
    let (out, counts) = m.mask_json_document(body, 1 << 20);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["svc"]["token"], "[MASKED:json_path]");
    assert_eq!(v["other"]["token"], "[MASKED:json_path]");
    assert_eq!(v["other"]["keep"], "k");
    assert_eq!(v["token"], "top");
    assert_eq!(counts.get("json_path"), 2);
}

#[test]
fn detectors_run_after_paths_and_without_them_over_the_limit() {
    let m = masker(&["$.password"]);
    let body = format!(r#"{{"password":"pw","email":"{EMAIL}"}}"#);
    let (out, counts) = m.mask_json_document(body.as_bytes(), 1 << 20);
    assert_eq!(
        out,
        br#"{"password":"[MASKED:json_path]","email":"[MASKED:email]"}"#
    );
    assert_eq!(
        (counts.get("json_path"), counts.get("email"), counts.total()),
        (1, 1, 2)
    );

    // Over the limit: detectors only, and the skip is counted.
    let (out, counts) = m.mask_json_document(body.as_bytes(), 10);
    assert_eq!(out, br#"{"password":"pw","email":"[MASKED:email]"}"#);
    assert_eq!(counts.get("json_path_skipped"), 1);
    assert_eq!(counts.total(), 1);

    // Not JSON: the same (outside any string, a replacement is written as a JSON string).
    let (out, counts) = m.mask_json_document(format!("oops {EMAIL}").as_bytes(), 1 << 20);
    assert_eq!(out, b"oops \"[MASKED:email]\"");
    assert_eq!(counts.get("json_path_skipped"), 1);
}

#[test]
fn bad_paths_are_refused_with_the_place() {
    for (path, at) in [("a.b", 0), ("$.a..", 5), ("$[x]", 2), ("$.a[1", 3)] {
        let err = Masker::new(&MaskConfig {
            json_paths: vec![path.into()],
            ..MaskConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("`{path}`")) && err.contains(&format!("byte {at}")),
            "{err}"
        );
    }
}
