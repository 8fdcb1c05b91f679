//! Profiling aid: masks an event-stream body (argument 1) N times (argument 2) as 16 KiB chunks
//! with every built-in detector, and prints µs per body. Run under callgrind to see where time goes.
use std::time::Instant;

use keyward_mask::{ContentKind, MaskConfig, Masker};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let body = std::fs::read(&args[1]).expect("body file");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let masker = Masker::new(&MaskConfig::default()).expect("masker");
    let started = Instant::now();
    let mut out = 0;
    for _ in 0..n {
        let mut s = masker.stream(ContentKind::EventStream);
        let size: usize = std::env::var("CHUNK")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(16 << 10);
        for chunk in body.chunks(size) {
            out += s.push(chunk).len();
        }
        out += s.finish().0.len();
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "{us:.1} µs per {} byte body ({:.0} MB/s), {out}",
        body.len(),
        body.len() as f64 / us
    );
}
