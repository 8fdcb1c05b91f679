//! The streaming masker (`keyward_mask::StreamMasker`): the same body split at points the input
//! chooses gives the output of the unsplit body, the carry-over stays bounded, and no secret
//! value configured for exact matching survives in the output.
//!
//! Input: byte 0 chooses the content kind, byte 1 the number of cut points (up to 7), then two
//! bytes per cut point (little endian, modulo the body's length), then the body.

use std::sync::{Arc, OnceLock};

use keyward_mask::{ContentKind, ExactValueSet, ExactValues, MaskConfig, Masker};

/// Exact secret values, as a secrets manager holds them (quotes, a backslash, a newline, a
/// slash: their JSON-escaped forms are matched too).
const SECRETS: &[&str] = &[
    "pa\"ss\\wo\nrd-7Hq2Zr",
    "sk_live_51HxQ2eZvKYlo2C9",
    "tok/en+with/slashes==",
];

pub(crate) const DICT: &[&[u8]] = &[
    b"pa\"ss\\wo\nrd-7Hq2Zr",
    b"pa\\\"ss\\\\wo\\nrd-7Hq2Zr",
    b"sk_live_51HxQ2eZvKYlo2C9",
    b"tok/en+with/slashes==",
    b"tok\\/en+with\\/slashes==",
    b"AKIAIOSFODNN7EXAMPLE",
    b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    b"4111 1111 1111 1111",
    b"GB82 WEST 1234 5698 7654 32",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    b"jane.doe+ops@example.co.uk",
    b"-----BEGIN PRIVATE KEY-----",
    b"-----END PRIVATE KEY-----",
    b"data: ",
    b"\n\n",
    b"\r\n",
    b"\"password\":",
    b"\\u0022",
    b"[MASKED:secret]",
];

fn masker() -> &'static Masker {
    static MASKER: OnceLock<Masker> = OnceLock::new();
    MASKER.get_or_init(|| {
        let config = MaskConfig {
            json_paths: vec!["$..password".into(), "$.items[*].token".into()],
            ..MaskConfig::default()
        };
        let values = ExactValues::new(SECRETS).expect("the secret values compile");
        Masker::with_secrets(&config, Arc::new(ExactValueSet::new(values)))
            .expect("the mask config compiles")
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn mask_stream(data: &[u8]) {
    let (Some(&kind), Some(&cuts)) = (data.first(), data.get(1)) else {
        return;
    };
    let kind = match kind % 3 {
        0 => ContentKind::Json,
        1 => ContentKind::Text,
        _ => ContentKind::EventStream,
    };
    let cuts = usize::from(cuts % 8);
    let Some(positions) = data.get(2..2 + 2 * cuts) else {
        return;
    };
    let body = &data[2 + 2 * cuts..];
    let mut points: Vec<usize> = positions
        .chunks(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (body.len() + 1))
        .collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();

    let m = masker();
    let mut whole = m.stream(kind);
    let mut expected = whole.push(body);
    let (tail, expected_counts) = whole.finish();
    expected.extend(tail);

    let mut split = m.stream(kind);
    let mut out = Vec::new();
    for pair in points.windows(2) {
        out.extend(split.push(&body[pair[0]..pair[1]]));
        assert!(
            split.carry_len() <= split.carry_bound(),
            "the carry-over grew past its bound: {} > {}",
            split.carry_len(),
            split.carry_bound()
        );
    }
    let (tail, counts) = split.finish();
    out.extend(tail);
    assert!(
        out == expected,
        "split at {points:?} the output differs from the unsplit output"
    );
    assert_eq!(counts, expected_counts, "split counts differ");

    let mut outputs = vec![out];
    if kind == ContentKind::Json {
        // A whole JSON body also goes through the JSON paths first.
        outputs.push(m.mask_json_document(body, m.json_document_limit()).0);
    }
    for out in &outputs {
        for secret in SECRETS {
            assert!(
                !contains(out, secret.as_bytes()),
                "a configured secret value survived masking"
            );
        }
    }
}
