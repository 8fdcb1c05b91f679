//! Open-loop load for `bench/soak.sh`: requests are scheduled at a fixed rate whatever the server
//! answers (a slow answer does not slow the load down, so latency is measured from when the
//! request was due: no coordinated omission). Eight in ten are workload-token mints, one a
//! kickoff plan, one an API read. Prints one line per window and a summary; exits 1 on any error.
//!
//!   soak_load <url> <ca.pem> <automation token> <admin token> <rate/s> <seconds> [window s]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 7 {
        return Err(format!(
            "usage: {} <url> <ca.pem> <automation token> <admin token> <rate/s> <seconds> [window s]",
            args[0]
        )
        .into());
    }
    let url = args[1].trim_end_matches('/').to_owned();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&args[2])?)?;
    let automation = args[3].clone();
    let admin = args[4].clone();
    let rate: f64 = args[5].parse()?;
    let seconds: u64 = args[6].parse()?;
    let window_secs: u64 = args.get(7).map(|w| w.parse()).transpose()?.unwrap_or(10);
    if rate <= 0.0 || seconds == 0 || window_secs == 0 {
        return Err("rate, seconds and window must be positive".into());
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(512)
        .build()?;

    let windows = (seconds / window_secs).max(1) as usize;
    let stats: Arc<Vec<Mutex<Window>>> = Arc::new(
        (0..windows)
            .map(|_| Mutex::new(Window::default()))
            .collect(),
    );
    let in_flight = Arc::new(AtomicU64::new(0));
    let max_in_flight = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * seconds as f64) as u64;
    let start = Instant::now();

    // Reports each window once it has ended and its requests (10 s timeout) are settled.
    let reporter = {
        let stats = stats.clone();
        let max_in_flight = max_in_flight.clone();
        tokio::spawn(async move {
            for (i, window) in stats.iter().enumerate() {
                let settled = start + Duration::from_secs((i as u64 + 1) * window_secs + 11);
                tokio::time::sleep_until(settled.into()).await;
                let mut w = window.lock().await;
                w.latencies_us.sort_unstable();
                println!(
                    "window={} t={}s requests={} errors={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} max_in_flight={}",
                    i + 1,
                    (i as u64 + 1) * window_secs,
                    w.latencies_us.len() as u64 + w.errors,
                    w.errors,
                    percentile(&w.latencies_us, 50.0),
                    percentile(&w.latencies_us, 99.0),
                    percentile(&w.latencies_us, 100.0),
                    max_in_flight.swap(0, Ordering::Relaxed),
                );
                if let Some(e) = &w.first_error {
                    println!("  first error: {e}");
                }
            }
        })
    };

    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let window = ((due - start).as_secs() / window_secs) as usize;
        if window >= windows {
            break;
        }
        let request = match n % 10 {
            0..=7 => client
                .post(format!("{url}/api/v1/workload-identity/token"))
                .bearer_auth(&automation)
                .json(&serde_json::json!({"audience": "sts.amazonaws.com"})),
            8 => client
                .post(format!("{url}/api/v1/runtime/kickoff"))
                .bearer_auth(&automation),
            _ => client
                .get(format!("{url}/api/v1/environment-variables"))
                .bearer_auth(&admin),
        };
        let stats = stats.clone();
        let in_flight = in_flight.clone();
        let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        max_in_flight.fetch_max(now, Ordering::Relaxed);
        tokio::spawn(async move {
            let outcome = match request.send().await {
                Ok(res) if res.status().is_success() => {
                    res.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                }
                Ok(res) => Err(format!("HTTP {}", res.status())),
                Err(e) => Err(e.to_string()),
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let mut w = stats[window].lock().await;
            match outcome {
                Ok(()) => w.latencies_us.push(due.elapsed().as_micros() as u64),
                Err(e) => {
                    w.errors += 1;
                    w.first_error.get_or_insert(e);
                }
            }
        });
    }
    reporter.await?;

    let mut all = Vec::new();
    let mut errors = 0;
    for window in stats.iter() {
        let w = window.lock().await;
        all.extend_from_slice(&w.latencies_us);
        errors += w.errors;
    }
    all.sort_unstable();
    println!(
        "summary requests={} errors={} rate_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        all.len() as u64 + errors,
        errors,
        (all.len() as u64 + errors) as f64 / seconds as f64,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        percentile(&all, 100.0)
    );
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
