//! Each built-in detector masks what it is for and leaves look-alikes alone; configuration
//! errors name what is wrong.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use keyward_mask::{ContentKind, CustomPattern, MaskConfig, MaskError, Masker};

fn masker() -> Masker {
    Masker::new(&MaskConfig::default()).unwrap()
}

fn text(m: &Masker, input: &str) -> (String, keyward_mask::Counts) {
    let (out, counts) = m.mask(ContentKind::Text, input.as_bytes());
    (String::from_utf8(out).unwrap(), counts)
}

/// `input` is masked to exactly `expected`, counted once under `name`.
fn masks(input: &str, expected: &str, name: &str) {
    let (out, counts) = text(&masker(), input);
    assert_eq!(out, expected, "input: {input}");
    assert_eq!(counts.get(name), 1, "{name} counts {counts:?}");
    assert_eq!(counts.total(), 1, "{counts:?}");
}

fn passes(input: &str) {
    let (out, counts) = text(&masker(), input);
    assert_eq!(out, input);
    assert!(counts.is_empty(), "{input}: {counts:?}");
}

#[test]
fn aws_access_key_id() {
    masks(
        &format!("id {AWS_KEY_ID} ok"),
        "id [MASKED:aws_access_key_id] ok",
        "aws_access_key_id",
    );
    masks(
        "ASIAY34FZKBOKMUTVV7A",
        "[MASKED:aws_access_key_id]",
        "aws_access_key_id",
    );
    passes("AKIAIOSFODNN7EXAMPLEX is too long, AKIA1234 too short, akiaiosfodnn7example lower");
}

#[test]
fn aws_secret_access_key_only_in_a_key_context() {
    masks(
        &format!("aws_secret_access_key = {AWS_SECRET}\n"),
        "aws_secret_access_key = [MASKED:aws_secret_access_key]\n",
        "aws_secret_access_key",
    );
    masks(
        &format!(r#"{{"SecretAccessKey": "{AWS_SECRET}"}}"#),
        r#"{"SecretAccessKey": "[MASKED:aws_secret_access_key]"}"#,
        "aws_secret_access_key",
    );
    masks(
        &format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}"),
        "AWS_SECRET_ACCESS_KEY=[MASKED:aws_secret_access_key]",
        "aws_secret_access_key",
    );
    // A 40-character token without a secret key before it is left alone, as is a 41-character one.
    passes(&format!(
        "commit {AWS_SECRET} and sha=da39a3ee5e6b4b0d3255bfef95601890afd80709"
    ));
    passes(&format!("secret_key={AWS_SECRET}A"));
}

#[test]
fn gcp_private_key_in_service_account_json() {
    let key = pem("", 3, "\\n");
    let input =
        format!(r#"{{"type":"service_account","private_key":"{key}\n","client_email":"x"}}"#);
    let (out, counts) = masker().mask(ContentKind::Json, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        r#"{"type":"service_account","private_key":"[MASKED:gcp_private_key]\n","client_email":"x"}"#
    );
    assert_eq!(counts.get("gcp_private_key"), 1);
    serde_json::from_str::<serde_json::Value>(&out).unwrap();
    passes(r#"{"private_key":"not a key"}"#);
}

#[test]
fn gcp_api_key_detector() {
    let key = gcp_api_key();
    masks(
        &format!("key={key}&q=1"),
        "key=[MASKED:gcp_api_key]&q=1",
        "gcp_api_key",
    );
    passes("AIzaShort and AIz");
}

#[test]
fn azure_storage_key_in_connection_strings() {
    let key = azure_key();
    masks(
        &format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net"
        ),
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[MASKED:azure_storage_key];EndpointSuffix=core.windows.net",
        "azure_storage_key",
    );
    masks(
        "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&sig=abc%2Bdef%3D",
        "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=[MASKED:azure_storage_key]",
        "azure_storage_key",
    );
    passes("AccountName=acct;AccountKey=short==;");
}

#[test]
fn pem_private_key_with_newlines_and_escapes() {
    for nl in ["\n", "\\n", "\r\n"] {
        for kind in ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "] {
            let key = pem(kind, 5, nl);
            masks(
                &format!("key: {key}{nl}done"),
                &format!("key: [MASKED:pem_private_key]{nl}done"),
                "pem_private_key",
            );
        }
    }
    passes(
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    );
    passes("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
}

#[test]
fn jwt_and_bearer_token() {
    masks(&format!("token {JWT} end"), "token [MASKED:jwt] end", "jwt");
    masks(
        &format!("Authorization: Bearer {JWT}"),
        "Authorization: Bearer [MASKED:bearer_token]",
        "bearer_token",
    );
    masks(
        "authorization: bearer ya29.a0AfH6SMBx-opaque_token~1/2",
        "authorization: bearer [MASKED:bearer_token]",
        "bearer_token",
    );
    passes("eyJhbGciOiJIUzI1NiJ9 alone, a.b.c, and bearer of bad news");
}

#[test]
fn email_detector() {
    masks(
        &format!("write to {EMAIL}."),
        "write to [MASKED:email].",
        "email",
    );
    passes("user@localhost, @handle, a@b, 2@3.4");
}

#[test]
fn card_numbers_are_luhn_checked() {
    masks(
        &format!("card {CARD} exp"),
        "card [MASKED:card_number] exp",
        "card_number",
    );
    masks("4111-1111-1111-1111", "[MASKED:card_number]", "card_number");
    masks("378282246310005", "[MASKED:card_number]", "card_number");
    // Sixteen digits failing Luhn pass unchanged, as do longer digit runs.
    passes(&format!("order {CARD_BAD_LUHN} and 4111 1111 1111 1112"));
    passes("id 41111111111111110000 ts 1733490000");
}

#[test]
fn iban_is_mod97_checked() {
    masks(
        &format!("pay to {IBAN} today"),
        "pay to [MASKED:iban] today",
        "iban",
    );
    masks("DE89370400440532013000", "[MASKED:iban]", "iban");
    masks(
        "DE89 3704 0044 0532 0130 00 EUR",
        "[MASKED:iban] EUR",
        "iban",
    );
    passes(&format!("pay to {IBAN_BAD} today, DE89370400440532013001"));
}

#[test]
fn a_detector_list_selects_detectors() {
    let config = MaskConfig {
        detectors: vec!["email".into()],
        ..MaskConfig::default()
    };
    let m = Masker::new(&config).unwrap();
    let (out, counts) = text(&m, &format!("{EMAIL} {AWS_KEY_ID}"));
    assert_eq!(out, format!("[MASKED:email] {AWS_KEY_ID}"));
    assert_eq!(counts.total(), 1);
}

#[test]
fn unknown_detector_names_the_name_and_the_valid_ones() {
    let config = MaskConfig {
        detectors: vec!["emails".into()],
        ..MaskConfig::default()
    };
    let err = Masker::new(&config).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MaskError::UnknownDetector { ref name, .. } if name == "emails"));
    assert!(
        msg.contains("`emails`") && msg.contains("card_number") && msg.contains("\"all\""),
        "{msg}"
    );
}

fn custom(name: &str, pattern: &str) -> Result<Masker, MaskError> {
    Masker::new(&MaskConfig {
        detectors: vec![],
        custom: vec![CustomPattern {
            name: name.into(),
            pattern: pattern.into(),
        }],
        ..MaskConfig::default()
    })
}

#[test]
fn custom_patterns_mask_under_their_name() {
    let m = custom("employee_id", r"\bEMP-[0-9]{6}\b").unwrap();
    let (out, counts) = text(&m, "by EMP-123456 and EMP-12345");
    assert_eq!(out, "by [MASKED:employee_id] and EMP-12345");
    assert_eq!(counts.get("employee_id"), 1);
}

#[test]
fn custom_pattern_errors_name_the_pattern() {
    let err = custom("ahead", r"foo(?=bar)").unwrap_err().to_string();
    assert!(
        err.contains("`ahead`") && err.contains("foo(?=bar)") && err.contains("look-around"),
        "{err}"
    );
    let err = custom("backref", r"(a)\1").unwrap_err().to_string();
    assert!(
        err.contains("`backref`") && err.contains("backreferences"),
        "{err}"
    );
    let err = custom("unbounded", r"x[0-9]+").unwrap_err().to_string();
    assert!(
        err.contains("`unbounded`") && err.contains("max_match_bytes"),
        "{err}"
    );
    let err = custom("empty", r"a*").unwrap_err().to_string();
    assert!(err.contains("empty string"), "{err}");
    let err = custom("Email", r"x").unwrap_err().to_string();
    assert!(err.contains("a-z, 0-9"), "{err}");
    let err = custom("email", r"x").unwrap_err().to_string();
    assert!(err.contains("built-in"), "{err}");
}

#[test]
fn config_from_a_route_table() {
    let config: MaskConfig = toml::from_str(
        r#"
detectors = ["email", "card_number"]
custom = [{ name = "ticket", pattern = 'TCK-[0-9]{8}' }]
json_paths = ["$.user.password", "$..token"]
requests = true
"#,
    )
    .unwrap();
    assert!(config.secrets);
    assert!(config.requests);
    let m = Masker::new(&config).unwrap();
    assert!(m.masks_requests());
    assert_eq!(
        MaskConfig::default(),
        toml::from_str::<MaskConfig>("").unwrap()
    );
    let err = toml::from_str::<MaskConfig>("detector = []")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `detector`"), "{err}");
}
