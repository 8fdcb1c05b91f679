//! Masking throughput on one core: a 1 MiB JSON body dense with personal data and secrets
//! (emails, card numbers, JWTs, AWS keys and exact secret values every few hundred bytes),
//! masked whole and as a stream of 16 KiB chunks, and its first 4 KiB masked as separate bodies
//! (the per-body cost). Prints `mask_mb_per_sec=<n>` per mode.
//!
//! `cargo run --release -p keyward-mask --example mask_rate [-- <seconds per mode>]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_mask::{ContentKind, ExactValueSet, ExactValues, MaskConfig, Masker};

const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJhZ2VudC0xIiwiYXVkIjoiYXBpIiwiZXhwIjoxNzMzNDkwMDAwfQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtYmFzZTY0dXJs";
const CARDS: [&str; 3] = [
    "4111 1111 1111 1111",
    "5555555555554444",
    "4111111111111112",
];

fn secrets() -> Vec<String> {
    (0..64)
        .map(|i| format!("sk_live_{i:02}_Zq8Lr2Vt7Yp4Wm9Xc3Bn"))
        .collect()
}

fn body(secrets: &[String]) -> Vec<u8> {
    let mut out = String::from("{\"records\":[");
    let mut i = 0usize;
    while out.len() < 1 << 20 {
        if i > 0 {
            out.push(',');
        }
        let secret = &secrets[i % secrets.len()];
        let card = CARDS[i % CARDS.len()];
        out.push_str(&format!(
            concat!(
                "{{\"id\":{i},\"name\":\"Customer number {i}\",\"email\":\"customer.{i}@example.com\",",
                "\"card\":\"{card}\",\"note\":\"The agent used key AKIAIOSFODNN7EXAMPL{d} to read ",
                "the bucket and answered with token {jwt} after checking the account settings.\",",
                "\"config\":\"api_key={secret} region=eu-west-1 retries=3\",",
                "\"text\":\"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod ",
                "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam.\",",
                "\"amount\":{amount},\"tags\":[\"a\",\"b\",\"c\"]}}"
            ),
            i = i,
            card = card,
            d = i % 10,
            jwt = JWT,
            secret = secret,
            amount = i * 37 % 10007,
        ));
        i += 1;
    }
    out.push_str("]}");
    out.into_bytes()
}

/// CPU time this thread has used (user + system), from /proc: on a shared machine wall time
/// counts the other tenants' share of the core too.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux the bench runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// MB/s by CPU time (falls back to wall time without /proc) and by wall time.
fn rate(seconds: f64, bytes: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm: lazy DFA states, allocations
    let start = Instant::now();
    let cpu0 = cpu_time();
    let mut n = 0usize;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        f();
        n += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => wall,
    };
    let mb = (n * bytes) as f64 / 1e6;
    (mb / cpu, mb / wall)
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let secrets = secrets();
    let set = ExactValueSet::new(ExactValues::new(secrets.iter()).expect("secret values"));
    let masker = Masker::with_secrets(&MaskConfig::default(), Arc::new(set)).expect("masker");
    let body = body(&secrets);
    if let Ok(p) = std::env::var("MASK_RATE_WRITE_BODY") {
        std::fs::write(p, &body).expect("write body");
    }

    let (masked, counts) = masker.mask(ContentKind::Json, &body);
    serde_json::from_slice::<serde_json::Value>(&masked).expect("masked body is JSON");
    let per_kib = counts.total() as f64 / (body.len() as f64 / 1024.0);
    println!(
        "body_bytes={} replacements={} per_kib={per_kib:.1} counts={}",
        body.len(),
        counts.total(),
        serde_json::to_string(&counts).unwrap_or_default()
    );

    let whole = rate(seconds, body.len(), || {
        std::hint::black_box(masker.mask(ContentKind::Json, &body));
    });
    println!(
        "mode=whole mask_mb_per_sec={:.0} wall_mb_per_sec={:.0}",
        whole.0, whole.1
    );

    let streamed = rate(seconds, body.len(), || {
        let mut s = masker.stream(ContentKind::Json);
        let mut n = 0;
        for chunk in body.chunks(16 * 1024) {
            n += s.push(chunk).len();
        }
        n += s.finish().0.len();
        std::hint::black_box(n);
    });
    println!(
        "mode=stream_16k mask_mb_per_sec={:.0} wall_mb_per_sec={:.0}",
        streamed.0, streamed.1
    );

    // Many small responses: what a stream costs to start (one per body).
    let small = &body[..4096];
    let per_body = 256;
    let smalls = rate(seconds, small.len() * per_body, || {
        for _ in 0..per_body {
            std::hint::black_box(masker.mask(ContentKind::Json, small));
        }
    });
    println!(
        "mode=bodies_4k mask_mb_per_sec={:.0} wall_mb_per_sec={:.0} bodies_per_sec={:.0}",
        smalls.0,
        smalls.1,
        smalls.0 * 1e6 / small.len() as f64
    );
}
