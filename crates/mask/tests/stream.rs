//! Streams: a match split across two chunks at every offset is still masked, the output equals
//! the whole-body output, complete SSE events are emitted at once, and the carry-over stays
//! bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use keyward_mask::{ContentKind, Counts, ExactValueSet, ExactValues, MaskConfig, Masker};

/// A secret value as the secrets manager holds it: quotes, a backslash and a newline, so inside
/// JSON it only ever appears escaped.
const SECRET: &str = "pa\"ss\\wo\nrd-7Hq2Zr";
const SECRET_JSON: &str = r#"pa\"ss\\wo\nrd-7Hq2Zr"#;
const PLAIN_SECRET: &str = "sk_live_51HxQ2eZvKYlo2C9";

fn masker() -> Masker {
    let set = ExactValueSet::new(ExactValues::new([SECRET, PLAIN_SECRET]).unwrap());
    Masker::with_secrets(&MaskConfig::default(), Arc::new(set)).unwrap()
}

fn sse_body() -> String {
    format!(
        concat!(
            "event: message\ndata: {{\"delta\":\"the key is {secret} ok\"}}\n\n",
            "data: {{\"delta\":\"card {card} thanks\",\"n\":{card_plain}}}\n\n",
            ": comment\n",
            "data: {{\"cfg\":\"aws_secret_access_key={aws}\"}}\n\n",
            "data: plain text {plain} and {bad_luhn}\n\n",
            "data: [DONE]\n\n"
        ),
        secret = SECRET_JSON,
        card = CARD,
        card_plain = CARD_PLAIN,
        aws = AWS_SECRET,
        plain = PLAIN_SECRET,
        bad_luhn = CARD_BAD_LUHN,
    )
}

fn run(m: &Masker, kind: ContentKind, chunks: &[&[u8]]) -> (Vec<u8>, Counts) {
    let mut s = m.stream(kind);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.push(c));
        assert!(s.carry_len() <= s.carry_bound());
    }
    let (tail, counts) = s.finish();
    out.extend(tail);
    (out, counts)
}

fn assert_clean(out: &str) {
    for leaked in [
        SECRET_JSON,
        SECRET,
        PLAIN_SECRET,
        CARD,
        CARD_PLAIN,
        AWS_SECRET,
        "pa\\\"ss",
        "7Hq2Zr",
        "4111 1111",
    ] {
        assert!(!out.contains(leaked), "{leaked} leaked in {out}");
    }
}

#[test]
fn sse_split_at_every_offset_masks_everything() {
    let m = masker();
    let body = sse_body();
    let (whole, counts) = run(&m, ContentKind::EventStream, &[body.as_bytes()]);
    let whole = String::from_utf8(whole).unwrap();
    assert_clean(&whole);
    assert!(
        whole.contains(CARD_BAD_LUHN),
        "a Luhn-failing number passes: {whole}"
    );
    assert_eq!(counts.get("secret"), 2, "{counts:?}");
    assert_eq!(counts.get("card_number"), 2, "{counts:?}");
    assert_eq!(counts.get("aws_secret_access_key"), 1, "{counts:?}");
    // Every JSON data line is still JSON.
    for line in whole.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
    let b = body.as_bytes();
    for at in 0..=b.len() {
        let (out, c) = run(&m, ContentKind::EventStream, &[&b[..at], &b[at..]]);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, whole, "split at {at}");
        assert_eq!(c, counts, "split at {at}");
    }
}

#[test]
fn every_three_way_split_of_an_event() {
    let m = masker();
    let body = format!("data: {{\"a\":\"{SECRET_JSON} {CARD} secret: {AWS_SECRET}\"}}\n\n");
    let (whole, _) = run(&m, ContentKind::EventStream, &[body.as_bytes()]);
    let b = body.as_bytes();
    for i in 0..=b.len() {
        for j in i..=b.len() {
            let (out, _) = run(&m, ContentKind::EventStream, &[&b[..i], &b[i..j], &b[j..]]);
            assert_eq!(out, whole, "split at {i}, {j}");
        }
    }
    assert_clean(std::str::from_utf8(&whole).unwrap());
}

#[test]
fn complete_events_are_emitted_at_once() {
    let m = masker();
    let mut s = m.stream(ContentKind::EventStream);
    let event = format!("data: {{\"t\":\"mail {EMAIL}\"}}\n\n");
    let out = s.push(event.as_bytes());
    assert_eq!(out, b"data: {\"t\":\"mail [MASKED:email]\"}\n\n");
    // A partial event waits for its blank line: its reader could not use it before.
    let out = s.push(b"data: {\"t\":\"hello");
    assert_eq!(out, b"");
    let out = s.push(b" world\"}\n\n");
    assert_eq!(out, b"data: {\"t\":\"hello world\"}\n\n");
    assert_eq!(s.carry_len(), 0);
    // CRLF framing.
    let out = s.push(format!("data: {{\"t\":\"{CARD}\"}}\r\n\r\n").as_bytes());
    assert_eq!(out, b"data: {\"t\":\"[MASKED:card_number]\"}\r\n\r\n");
    assert_eq!(s.carry_len(), 0);
}

#[test]
fn json_bodies_stay_json_at_every_split() {
    let m = masker();
    let doc = serde_json::json!({
        "user": {"email": EMAIL, "note": format!("creds {SECRET} and {PLAIN_SECRET}")},
        "card": CARD_PLAIN.parse::<u64>().unwrap(),
        "cards": [CARD, CARD_BAD_LUHN],
        "token": format!("Bearer {JWT}"),
        "list": [1, 2.5, null, true, "x\\\"y"],
    });
    let body = serde_json::to_vec(&doc).unwrap();
    let (whole, counts) = m.mask(ContentKind::Json, &body);
    let parsed: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    assert_eq!(parsed["card"], "[MASKED:card_number]");
    assert_eq!(parsed["cards"][0], "[MASKED:card_number]");
    assert_eq!(parsed["cards"][1], CARD_BAD_LUHN);
    assert_eq!(parsed["user"]["email"], "[MASKED:email]");
    assert_eq!(
        parsed["user"]["note"],
        "creds [MASKED:secret] and [MASKED:secret]"
    );
    assert_eq!(parsed["token"], "Bearer [MASKED:bearer_token]");
    assert_eq!(parsed["list"], doc["list"]);
    assert_eq!(counts.get("secret"), 2);
    for at in 0..=body.len() {
        let (out, _) = run(&m, ContentKind::Json, &[&body[..at], &body[at..]]);
        assert_eq!(out, whole, "split at {at}");
    }
}

#[test]
fn escapes_are_never_cut() {
    // An email right after `\n` and a secret right after `\"`: the replacement takes the escape
    // with it rather than leaving a lone backslash.
    let m = masker();
    let doc = serde_json::json!({ "a": format!("x\n{EMAIL}"), "b": format!("\"{PLAIN_SECRET}\\"), "c": "\u{1}é\u{2028}" });
    let body = serde_json::to_vec(&doc).unwrap();
    let (out, _) = m.mask(ContentKind::Json, &body);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["c"], doc["c"]);
    assert!(!String::from_utf8(out).unwrap().contains(PLAIN_SECRET));
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn carry_stays_bounded_over_ten_mib() {
    let m = masker();
    // Base64-like text with no byte a stream may cut after, so only the bound limits the carry,
    // with secrets every few KiB.
    let mut body = Vec::with_capacity(10 << 20);
    let mut seed = 7u64;
    while body.len() < 10 << 20 {
        let filler: String = (0..3000)
            .map(|_| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ "
                    [(lcg(&mut seed) % 65) as usize] as char
            })
            .collect();
        body.extend_from_slice(filler.as_bytes());
        body.extend_from_slice(format!(" {PLAIN_SECRET} {AWS_KEY_ID} {CARD} ").as_bytes());
    }
    let (whole, wc) = m.mask(ContentKind::Text, &body);
    let bound = m.carry_bound();
    assert!(bound <= 16 * 1024, "{bound}");
    let mut s = m.stream(ContentKind::Text);
    let mut out = Vec::with_capacity(body.len());
    let mut rest = &body[..];
    let mut max_carry = 0;
    let sizes = [1usize, 3, 17, 255, 4096, 16384, 65536];
    while !rest.is_empty() {
        let r = lcg(&mut seed) as usize;
        // Mostly large chunks, with runs of 1-byte and small ones.
        let n = (sizes[r % sizes.len()] + r % 64).min(rest.len()).max(1);
        let (chunk, tail) = rest.split_at(n);
        out.extend(s.push(chunk));
        assert!(s.carry_len() <= bound, "carry {} > {bound}", s.carry_len());
        max_carry = max_carry.max(s.carry_len());
        rest = tail;
    }
    let (tail, counts) = s.finish();
    out.extend(tail);
    assert!(max_carry > 0);
    assert_eq!(counts, wc);
    assert!(
        out == whole,
        "streamed output differs from the whole-body output"
    );
    assert!(!String::from_utf8_lossy(&out).contains(PLAIN_SECRET));
}

#[test]
fn a_new_secret_set_applies_to_new_streams() {
    // Values come from the secrets manager as `Zeroizing` strings.
    let values = vec![zeroize::Zeroizing::new("old-secret-value".to_owned())];
    let set = Arc::new(ExactValueSet::new(ExactValues::new(&values).unwrap()));
    let m = Masker::with_secrets(&MaskConfig::default(), set.clone()).unwrap();
    let running = m.stream(ContentKind::Text);
    set.replace(ExactValues::new(["new-secret-value"]).unwrap());
    let (out, _) = m.mask(ContentKind::Text, b"old-secret-value new-secret-value");
    assert_eq!(out, b"old-secret-value [MASKED:secret]");
    let mut running = running;
    let mut out = running.push(b"old-secret-value new-secret-value");
    out.extend(running.finish().0);
    assert_eq!(out, b"[MASKED:secret] new-secret-value");
    // `secrets = false` ignores the set.
    let off = MaskConfig {
        secrets: false,
        ..MaskConfig::default()
    };
    let m = Masker::with_secrets(&off, set).unwrap();
    assert_eq!(
        m.mask(ContentKind::Text, b"new-secret-value").0,
        b"new-secret-value"
    );
}

#[test]
fn secret_values_never_show_in_debug() {
    let values = ExactValues::new([PLAIN_SECRET, "abc"]).unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values.skipped_short(), 1);
    let set = Arc::new(ExactValueSet::new(values));
    let m = Masker::with_secrets(&MaskConfig::default(), set.clone()).unwrap();
    let debug = format!("{set:?} {m:?} {:?}", m.stream(ContentKind::Json));
    assert!(
        !debug.contains(PLAIN_SECRET) && !debug.contains("sk_live"),
        "{debug}"
    );
    let long = "x".repeat(16 * 1024 + 1);
    let err = ExactValues::new(["fine-value", long.as_str()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("#1") && !err.contains("xxxx"), "{err}");
}

#[test]
fn text_flows_line_by_line_but_a_pem_block_is_held_whole() {
    // (A secret value holding a newline would make newlines no cut point: not this set.)
    let set = ExactValueSet::new(ExactValues::new([PLAIN_SECRET]).unwrap());
    let m = Masker::with_secrets(&MaskConfig::default(), Arc::new(set)).unwrap();
    let mut s = m.stream(ContentKind::Text);
    assert_eq!(
        s.push(format!("mail {EMAIL}\nnext li").as_bytes()),
        b"mail [MASKED:email]\n"
    );
    assert_eq!(s.push(b"ne\n"), b"next line\n");
    let key = pem("RSA ", 4, "\n");
    let (first, rest) = key.split_at(key.len() / 2);
    assert_eq!(s.push(first.as_bytes()), b"");
    let mut out = s.push(format!("{rest}\nafter\n").as_bytes());
    out.extend(s.finish().0);
    assert_eq!(out, b"[MASKED:pem_private_key]\nafter\n");

    let body = format!("key:\n{key}\n{AWS_KEY_ID}\n");
    let (whole, _) = m.mask(ContentKind::Text, body.as_bytes());
    assert_eq!(
        whole,
        b"key:\n[MASKED:pem_private_key]\n[MASKED:aws_access_key_id]\n"
    );
    let b = body.as_bytes();
    for at in 0..=b.len() {
        let (out, _) = run(&m, ContentKind::Text, &[&b[..at], &b[at..]]);
        assert_eq!(out, whole, "split at {at}");
    }
}

#[test]
fn maskers_are_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Masker>();
    send_sync::<ExactValueSet>();
    send::<keyward_mask::StreamMasker>();
}

#[test]
fn no_match_spans_two_events_however_the_stream_is_chunked() {
    let m = masker();
    // A PEM block cut in two by the upstream's events: each event is masked on its own, so the
    // BEGIN line's event is masked to its end and the rest passes, split or not.
    let key = pem("", 2, "\n");
    let (a, b) = key.split_at(40);
    let body = format!("data: {a}\n\ndata: {b}\n\n");
    let (whole, _) = run(&m, ContentKind::EventStream, &[body.as_bytes()]);
    assert!(
        whole.starts_with(b"data: [MASKED:pem_private_key]\n\ndata: "),
        "{}",
        String::from_utf8_lossy(&whole)
    );
    let bytes = body.as_bytes();
    for at in 0..=bytes.len() {
        let (out, _) = run(&m, ContentKind::EventStream, &[&bytes[..at], &bytes[at..]]);
        assert_eq!(out, whole, "split at {at}");
    }
}

#[test]
fn a_pattern_that_could_span_events_still_matches_within_one_only() {
    // Events are searched together first; a match crossing a blank line sends them back to one
    // search per event, so the result is the same as masking each event alone.
    let m = Masker::new(&MaskConfig {
        detectors: Vec::new(),
        custom: vec![keyward_mask::CustomPattern {
            name: "block".into(),
            pattern: r"(?s)BEGIN.{0,40}?END".into(),
        }],
        ..MaskConfig::default()
    })
    .unwrap();
    let body = b"data: BEGIN open\n\ndata: still END\n\ndata: BEGIN x END\n\ndata: tail\n\n";
    let want = b"data: BEGIN open\n\ndata: still END\n\ndata: [MASKED:block]\n\ndata: tail\n\n";
    let (whole, counts) = m.mask(ContentKind::EventStream, body);
    assert_eq!(
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(want)
    );
    assert_eq!(counts.get("block"), 1);
    for split in 0..body.len() {
        let mut s = m.stream(ContentKind::EventStream);
        let mut out = s.push(&body[..split]);
        out.extend(s.push(&body[split..]));
        out.extend(s.finish().0);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(want),
            "split at {split}"
        );
    }
}

#[test]
fn a_damaged_pem_end_line_masks_the_same_however_the_stream_is_split() {
    // Found by the mask_stream fuzz target (issue 20): a cut after the byte that broke the END
    // line ended the block there, while the whole body ran it on to the next line's label.
    let body: &[u8] = b"\x85.\xdd\x9b-----BEGIN PRIVATE KEY-----\nMIIpEvQIBADANs8cKj\n-----END PRIV\x9e----BEGIN PRIVATE KEY-----\nMII\x9bn2r\xfd-1\x01\x03\n\x00\x0b\x00rd \x141_1se";
    let m = masker();
    for kind in [ContentKind::Json, ContentKind::Text] {
        let whole = run(&m, kind, &[body]);
        for cut in 0..=body.len() {
            let split = run(&m, kind, &[&body[..cut], &body[cut..]]);
            assert_eq!(split, whole, "{kind:?} split at {cut}");
        }
    }
}

#[test]
fn a_malformed_unicode_escape_after_a_pem_block_masks_the_same_however_split() {
    // Found by the mask_stream fuzz target (issue 20): the block's body stops at DEL, right after
    // `\u0`; the whole body took the escape to be `\u0` and the next three bytes and masked them
    // too, a stream cut after DEL masked one byte of them.
    let body: &[u8] = b"rd-7Hq2Zr_liOiJIUzI1Ni-----BEGIN PRIVATE KEY-----J\\u0\x7f229.eyJzdWIiOi\x9c\x1f\xbc\xdcMIxMjM0NTY3ODkwIn0.dBjft`ta: ";
    let m = masker();
    for kind in [
        ContentKind::Json,
        ContentKind::Text,
        ContentKind::EventStream,
    ] {
        let whole = run(&m, kind, &[body]);
        for cut in 0..=body.len() {
            let split = run(&m, kind, &[&body[..cut], &body[cut..]]);
            assert_eq!(split, whole, "{kind:?} split at {cut}");
        }
    }
    let (text, _) = run(&m, ContentKind::Text, &[body]);
    assert!(text.ends_with(b"\x7f229.eyJzdWIiOi\x9c\x1f\xbc\xdcMIxMjM0NTY3ODkwIn0.dBjft`ta: "));
}

#[test]
fn an_escape_is_not_cut_where_no_pattern_holds_hex_digits() {
    // Only digits are in a pattern here, so `u` and `a`–`f` are cut bytes: a stream cut inside
    // `\u00e9` must not leave half the escape outside the replacement.
    let config = MaskConfig {
        detectors: Vec::new(),
        custom: vec![keyward_mask::CustomPattern {
            name: "digits".into(),
            pattern: r"\d{2,12}".into(),
        }],
        ..MaskConfig::default()
    };
    let m = Masker::new(&config).unwrap();
    let body = br#"{"a":"x\u00e9 and 12345 \u0041"}"#;
    let whole = run(&m, ContentKind::Json, &[body]);
    for cut in 0..=body.len() {
        let split = run(&m, ContentKind::Json, &[&body[..cut], &body[cut..]]);
        assert_eq!(split, whole, "split at {cut}");
    }
}

#[test]
fn a_value_is_masked_when_the_hold_back_falls_between_it_and_its_key_name() {
    // Found by the mask_stream fuzz target's long run (issue 20): an AWS secret is recognised by
    // the key name in front of it. When the hold-back cut (`max_match_bytes` before the end) fell
    // between the name and the value, the name went out with the bytes before the cut and the
    // search after it, no longer seeing the name, let the value through: unmasked when the body
    // came in one chunk, masked when it was split elsewhere.
    let m = masker();
    let hold = MaskConfig::default().max_match_bytes;
    let name = "aws_secret_access_key=";
    for kind in [
        ContentKind::Json,
        ContentKind::Text,
        ContentKind::EventStream,
    ] {
        // d: where the cut falls, counted from the start of the name (the match starts at
        // `secret`, 4 bytes in; the value 22 bytes in).
        for d in 0..=name.len() + 2 {
            let before = "x".repeat(hold / 4 + 100);
            // A space after the value: a secret runs exactly 40 characters.
            let after = "x".repeat(hold - name.len() - AWS_SECRET.len() - 1 + d);
            let body = format!("{before}{name}{AWS_SECRET} {after}");
            assert_eq!(body.len() - hold, before.len() + d);
            let (whole, counts) = run(&m, kind, &[body.as_bytes()]);
            let whole = String::from_utf8(whole).unwrap();
            assert!(
                !whole.contains(AWS_SECRET),
                "{kind:?}: the hold-back cut {d} bytes into the key name let the value through"
            );
            assert_eq!(
                counts.get("aws_secret_access_key"),
                1,
                "{kind:?} cut at {d}"
            );
            let cut = before.len() + d;
            let split = run(
                &m,
                kind,
                &[&body.as_bytes()[..cut], &body.as_bytes()[cut..]],
            );
            assert_eq!(
                String::from_utf8(split.0).unwrap(),
                whole,
                "{kind:?} split at {cut}"
            );
        }
    }
}
