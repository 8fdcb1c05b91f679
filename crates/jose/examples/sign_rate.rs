//! Raw RS256 signing rate of this machine, the yardstick for the mint benchmark
//! (`bench/mint.sh`). Usage: `cargo run --release -p keyward-jose --example sign_rate -- [threads] [seconds]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyward_jose::{SigningKey, WorkloadClaims, mint};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let threads: usize = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let key = Arc::new(SigningKey::generate()?);
    // A message of the size a real mint signs: the same claims the server puts in a token.
    let claims = WorkloadClaims {
        iss: "https://keyward.example.com".into(),
        sub: "organization:6f0c1f7e-1111-4222-8333-944455556666".into(),
        aud: "sts.amazonaws.com".into(),
        organization_id: "6f0c1f7e-1111-4222-8333-944455556666".into(),
        iat: 1_800_000_000,
        nbf: 1_799_999_995,
        exp: 1_800_003_600,
        jti: "0d9e8f4a-1111-4222-8333-944455556666".into(),
        automation_id: "7a1b2c3d-1111-4222-8333-944455556666".into(),
        automation_name: "research-crew".into(),
        kickoff_id: None,
    };
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (key, claims, count, stop) =
                (key.clone(), claims.clone(), count.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if mint(&key, &claims).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("raw_rs256_signs_per_sec={rate:.0} threads={threads}");
    Ok(())
}
