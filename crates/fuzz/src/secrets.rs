//! Secret references, `name` or `name#json_key` (`keyward_core::secrets::SecretRef`), and the
//! field a variable then takes from the secret's JSON value (`SecretUse::take`).
//!
//! Input: the reference, then optionally a newline and the secret's value.

use keyward_core::secrets::{ProviderKind, ResolveError, SecretRef, SecretUse};
use serde_json::Value;

pub(crate) const DICT: &[&[u8]] = &[
    b"#",
    b"##",
    b"\n",
    b"{\"password\":\"p\"}",
    b"\"",
    b"\\u0000",
    b" ",
    b"\t",
    b"_",
    b"\xc2\x85",
];

pub fn secret_ref(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (reference, value) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(parsed) = SecretRef::parse(reference) else {
        return;
    };
    let name = &parsed.name;
    assert!(
        !name.is_empty() && name.len() <= 512,
        "accepted name of {} bytes",
        name.len()
    );
    assert!(!name.contains('#'), "the name kept a '#'");
    assert!(
        !name.chars().any(|c| c.is_control() || c.is_whitespace()),
        "the name kept a space or control character"
    );
    if let Some(key) = &parsed.json_key {
        assert!(!key.is_empty() && !key.contains('#'), "bad json key kept");
    }
    // Lossless: the parts written back are the reference, which parses to the same parts.
    let printed = match &parsed.json_key {
        Some(key) => format!("{name}#{key}"),
        None => name.clone(),
    };
    assert_eq!(printed, reference, "parse lost part of the reference");
    assert_eq!(
        SecretRef::parse(&printed).ok().as_ref(),
        Some(&parsed),
        "reparse differs"
    );
    for provider in ProviderKind::ALL {
        let at_provider = parsed.provider_name(provider);
        assert_eq!(at_provider.len(), name.len());
        if provider == ProviderKind::AzureKeyVault {
            assert!(!at_provider.contains('_'), "Key Vault names have no '_'");
        }
    }

    let use_ = SecretUse {
        key: "VAR".into(),
        provider: "gcp".into(),
        secret: name.clone(),
        credential: "cred".into(),
        json_key: parsed.json_key.clone(),
    };
    match use_.take(value) {
        Ok(None) => assert!(parsed.json_key.is_none(), "a json key took nothing"),
        Ok(Some(taken)) => {
            let key = parsed
                .json_key
                .as_deref()
                .expect("only a json key takes a field");
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(value).expect("a field was taken from a non-object");
            let field = object
                .get(key)
                .expect("a field was taken that is not there");
            let expected = match field {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(taken, expected, "the taken field differs from the JSON's");
        }
        Err(error) => {
            assert!(parsed.json_key.is_some(), "no json key, yet take failed");
            // The sentence names the variable and the secret, never the secret's value: it is
            // the same whatever the value was.
            let same_kind = match error {
                ResolveError::NotJsonObject { .. } => "null",
                ResolveError::JsonKeyNotFound { .. } => "{}",
                _ => panic!("take failed with neither of its two errors: {error}"),
            };
            let expected = use_.take(same_kind).err().map(|e| e.to_string());
            assert_eq!(
                Some(error.to_string()),
                expected,
                "the error depends on the secret's value"
            );
        }
    }
}
