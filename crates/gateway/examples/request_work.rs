//! What the work the gateway must do for each request costs on its own, one core, no network:
//! the figures behind bench/README.md's account of the gateway's CPU per request against
//! nginx's. `cargo run --release -p keyward-gateway --example request_work [iterations]`
//!
//! Each line is the mean wall time of one operation over `iterations` (default 100 000):
//! parsing the JSON body for the policy, deciding bench/gateway/bench.cedar (which reads
//! `context.body.model`), the SHA-256 that keys the verified-token cache (a 700-byte token),
//! and appending one hash-chained audit event to SQLite in batches of 1000 (as the gateway's
//! writer does).

use std::sync::Arc;
use std::time::Instant;

use keyward_policy::{
    BodyFacts, NoMatch, Policies, PolicySource, Principal, PrincipalKind, RequestFacts,
};
use keyward_store::NewAuditEvent;
use keyward_store::crypto::MasterKey;

const BODY: &[u8] =
    br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;

fn per_op(label: &str, iterations: u32, mut op: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        op();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        op();
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{label:<48} {us:8.2} µs");
    us
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let policy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/gateway/bench.cedar"),
    )?;
    let policies = Policies::load(&[PolicySource {
        name: "bench.cedar".into(),
        text: policy,
    }])?;
    let principal = Principal {
        kind: PrincipalKind::Workload,
        org: "8f6c0d1e-0000-4000-8000-000000000001".into(),
        subject: "automation:bench-agent".into(),
        email: None,
        groups: Vec::new(),
        role: None,
        automation: Some("bench-agent".into()),
    };
    let facts = RequestFacts {
        route: "llm".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        body: BodyFacts::from_json_bytes(BODY),
        ..RequestFacts::default()
    };
    let mut total = 0.0;
    total += per_op("parse the JSON body (BodyFacts)", iterations, || {
        std::hint::black_box(BodyFacts::from_json_bytes(std::hint::black_box(BODY)));
    });
    total += per_op(
        "decide bench.cedar (Cedar, reads body.model)",
        iterations,
        || {
            let decision = policies.decide(&principal, &facts, NoMatch::Deny);
            std::hint::black_box(decision);
        },
    );
    let token = "x".repeat(700);
    total += per_op(
        "hash a 700-byte token (verified-token cache key)",
        iterations,
        || {
            std::hint::black_box(keyward_store::secret::hash_token(std::hint::black_box(
                &token,
            )));
        },
    );

    let dir = tempfile::tempdir()?;
    let store = keyward_store::open(None, dir.path()).await?;
    let key = MasterKey::load_or_create(None, dir.path())?.audit_key();
    let store: Arc<dyn keyward_store::Store> = store;
    let batches = (iterations / 1000).max(10);
    let event = |i: u32| NewAuditEvent {
        at_ms: 1_765_000_000_000 + i64::from(i),
        kind: "gateway.request".into(),
        org_id: None,
        actor: "automation:bench-agent".into(),
        data: serde_json::json!({
            "route": "llm", "method": "POST", "path": "/v1/chat/completions",
            "decision": "allow", "policy_ids": ["bench-allowed-models"], "status": 200,
            "bytes_in": 83, "bytes_out": 250, "duration_ms": 0, "principal_kind": "workload",
            "upstream_status": 200, "automation": "bench-agent",
        }),
    };
    let started = Instant::now();
    for b in 0..batches {
        let events: Vec<NewAuditEvent> = (0..1000).map(|i| event(b * 1000 + i)).collect();
        store.append_audit(&key, &events).await?;
    }
    let audit = started.elapsed().as_secs_f64() * 1e6 / f64::from(batches * 1000);
    println!(
        "{:<48} {audit:8.2} µs",
        "append one audit event (SQLite, batches of 1000)"
    );
    total += audit;
    println!("{:<48} {total:8.2} µs", "sum of the work above");
    Ok(())
}
