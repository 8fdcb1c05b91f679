//! Sample secrets shared by the test files (all invalid, made up or the vendors' documented
//! examples).
#![allow(dead_code)]

pub const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const CARD: &str = "4111 1111 1111 1111";
pub const CARD_PLAIN: &str = "4111111111111111";
pub const CARD_BAD_LUHN: &str = "4111111111111112";
pub const IBAN: &str = "GB82 WEST 1234 5698 7654 32";
pub const IBAN_BAD: &str = "GB82 WEST 1234 5698 7654 33";
pub const JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const EMAIL: &str = "jane.doe+ops@example.co.uk";

pub fn gcp_api_key() -> String {
    format!("AIza{}", "Sy9x_Kq-3".repeat(4)[..35].to_owned())
}

pub fn azure_key() -> String {
    format!("{}==", "Ab3+/xYz9Q".repeat(9)[..86].to_owned())
}

/// A PEM private key body of `lines` 64-character lines, joined with `nl` (a real newline or
/// the JSON escape `\n`).
pub fn pem(kind: &str, lines: usize, nl: &str) -> String {
    let line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
    let mut s = format!("-----BEGIN {kind}PRIVATE KEY-----{nl}");
    for _ in 0..lines {
        s.push_str(line);
        s.push_str(nl);
    }
    s.push_str(&format!("-----END {kind}PRIVATE KEY-----"));
    s
}
