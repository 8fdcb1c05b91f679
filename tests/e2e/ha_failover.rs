//! Issue 20 point 6, high availability: two `keyward serve` replicas on one PostgreSQL (a private
//! server of this test's own), which crashes (`pg_ctl stop -m immediate`) in the middle of load
//! and comes back seconds later on the same port.
//!
//! Every response of the load is classified: a success, a clear 503 naming the database (with
//! `Retry-After`), or a wrong answer (a 500, a refused credential, a missing object, a token the
//! replica's JWKS cannot verify). Wrong answers fail the test. A device login and a pending
//! approval begun before the crash are finished on the other replica after it, the rotation lease
//! keeps rotating exactly once per cycle, and both replicas become ready again by themselves.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keyward_core::AutomationId;
use keyward_server::audit::Auditor;
use keyward_server::domain::approval_service::Approvals;
use keyward_store::crypto::MasterKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::{asked, now};
use crate::common::*;
use crate::people::{poll, start_device_flow};
use crate::private_postgres::PrivatePostgres;
use crate::rbac::open_store;
use crate::rotation::short_schedule;

const MASTER: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const AUDIENCE: &str = "sts.amazonaws.com";
/// How long PostgreSQL stays down.
const OUTAGE: Duration = Duration::from_secs(5);

/// What one request of the load got.
#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// 503 `database_unavailable` with `Retry-After`.
    Unavailable,
    Wrong(String),
}

#[derive(Debug, Clone)]
struct Record {
    replica: usize,
    started: Instant,
    finished: Instant,
    outcome: Outcome,
}

struct Replica {
    name: &'static str,
    url: String,
    client: reqwest::Client,
}

/// The 503 a client may see while the database is away: JSON naming the database, with a
/// `Retry-After` to wait.
fn clear_unavailable(status: u16, retry_after: Option<&str>, body: &Value) -> bool {
    status == 503
        && body["error"] == "database_unavailable"
        && body["message"]
            .as_str()
            .is_some_and(|m| m.contains("database"))
        && retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1))
}

async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Option<String>, Value), String> {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = res.text().await.map_err(|e| format!("body: {e}"))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, retry_after, body))
}

/// One mint and one read on `replica`, each classified.
async fn one_round(replica: &Replica, issuer: &str, token: &str) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let minted = send(
        &replica.client,
        Method::POST,
        &format!("{}/api/v1/workload-identity/token", replica.url),
        token,
        Some(json!({"audience": AUDIENCE})),
    )
    .await;
    outcomes.push(match minted {
        Ok((200, _, body)) => {
            // The JWKS is served from memory, so it answers during the outage too; a token must
            // verify against the set its replica publishes right after handing it out.
            let jwt = body["token"].as_str().unwrap_or_default();
            match replica
                .client
                .get(format!("{}/oauth2/jwks", replica.url))
                .send()
                .await
            {
                Ok(res) if res.status() == 200 => {
                    let set: Value = res.json().await.unwrap_or(Value::Null);
                    match verify(jwt, &set, issuer, AUDIENCE) {
                        Ok(_) => Outcome::Ok,
                        Err(e) => Outcome::Wrong(format!("{}: minted token: {e}", replica.name)),
                    }
                }
                Ok(res) => {
                    Outcome::Wrong(format!("{}: jwks answered {}", replica.name, res.status()))
                }
                Err(e) => Outcome::Wrong(format!("{}: jwks: {e}", replica.name)),
            }
        }
        Ok((status, retry_after, body))
            if clear_unavailable(status, retry_after.as_deref(), &body) =>
        {
            Outcome::Unavailable
        }
        Ok((status, _, body)) => Outcome::Wrong(format!("{}: mint {status} {body}", replica.name)),
        Err(e) => Outcome::Wrong(format!("{}: mint {e}", replica.name)),
    });
    let read = send(
        &replica.client,
        Method::GET,
        &format!("{}/api/v1/automations/crew", replica.url),
        BOOTSTRAP_TOKEN,
        None,
    )
    .await;
    outcomes.push(match read {
        Ok((200, _, body)) if body["name"] == "crew" => Outcome::Ok,
        Ok((status, retry_after, body))
            if clear_unavailable(status, retry_after.as_deref(), &body) =>
        {
            Outcome::Unavailable
        }
        Ok((status, _, body)) => Outcome::Wrong(format!("{}: read {status} {body}", replica.name)),
        Err(e) => Outcome::Wrong(format!("{}: read {e}", replica.name)),
    });
    outcomes
}

/// One device-flow poll on `replica` before anyone approved: pending (or told to slow down), or
/// a 503 `temporarily_unavailable` naming the database, with Retry-After.
async fn poll_device(replica: &Replica, device_code: &str) -> Outcome {
    let res = replica
        .client
        .post(format!("{}/oauth2/token", replica.url))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", "keyward-cli"),
        ])
        .send()
        .await;
    let res = match res {
        Ok(res) => res,
        Err(e) => return Outcome::Wrong(format!("{}: device poll: {e}", replica.name)),
    };
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    match (status, body["error"].as_str()) {
        (400, Some("authorization_pending" | "slow_down")) => Outcome::Ok,
        // The CLI waits out Retry-After rather than giving up on its login.
        (503, Some("temporarily_unavailable"))
            if retry_after.is_some_and(|s| s > 0)
                && body["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains("database")) =>
        {
            Outcome::Unavailable
        }
        _ => Outcome::Wrong(format!("{}: device poll {status} {body}", replica.name)),
    }
}

/// `/readyz` of `replica`: Some(true) ready, Some(false) a 503 saying the database is
/// unreachable; a panic for anything else.
async fn ready(replica: &Replica) -> bool {
    let res = replica
        .client
        .get(format!("{}/readyz", replica.url))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    match status {
        200 => true,
        503 => {
            assert_eq!(body["database"], "unreachable", "{}: {body}", replica.name);
            false
        }
        other => panic!("{}: /readyz answered {other}: {body}", replica.name),
    }
}

async fn jwks_kids(replica: &Replica) -> Vec<String> {
    let set: Value = replica
        .client
        .get(format!("{}/oauth2/jwks", replica.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids = kids(&set);
    kids.sort();
    kids
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_ride_out_a_postgres_crash_under_load() {
    install_crypto();
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let backend = pg.fresh_database().await;
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port_a, port_b) = (free_port(), free_port());
    // Both replicas stand behind one public address (A's), as behind a load balancer: one
    // issuer for their tokens, one audience for device-login tokens.
    let public = format!("https://127.0.0.1:{port_a}");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let options = |dir: &std::path::Path, port: u16| {
        let mut o = short_schedule(ServerOptions::new(&backend, dir))
            .env("KEYWARD_MASTER_KEY", MASTER)
            .env("KEYWARD_PUBLIC_URL", &public)
            .env("KEYWARD_DEVICE_INTERVAL", "1");
        o.listen = format!("127.0.0.1:{port}");
        o
    };
    let a_opts = options(dir_a.path(), port_a);
    let mut b_opts = options(dir_b.path(), port_b);
    b_opts.bootstrap = false;
    let a = Server::start(&a_opts);
    let b = Server::start(&b_opts);
    let replicas = Arc::new([
        Replica {
            name: "A",
            url: format!("https://127.0.0.1:{port_a}"),
            client: a.client(),
        },
        Replica {
            name: "B",
            url: format!("https://127.0.0.1:{port_b}"),
            client: b.client(),
        },
    ]);
    let (automation_id, token) = automation_with_token(&a, "crew").await;
    let automation_id: AutomationId = automation_id.parse().unwrap();

    // Begun before the crash: a device login (on A) and a request waiting for approval.
    let device = start_device_flow(&a).await;
    let device_code = device["device_code"].as_str().unwrap().to_owned();
    let (status, body) = poll(&a, &device_code).await;
    assert_eq!(body["error"], "authorization_pending", "{status} {body}");
    let approval = {
        let store = open_store(&backend, dir_a.path()).await;
        let master = MasterKey::load_or_create(Some(MASTER), dir_a.path()).unwrap();
        let audit = Auditor::new(store.clone(), master.audit_key());
        let approvals = Approvals::new(store.clone(), audit, None);
        let org = org_id(&a).parse().unwrap();
        let subject = format!("automation:{automation_id}");
        approvals
            .request_approval(asked(org, &subject, Some(automation_id)), now())
            .await
            .unwrap()
            .id
            .to_string()
    };

    // The load: four clients, each alternating between the replicas.
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..4usize {
        let (replicas, records, stop) = (replicas.clone(), records.clone(), stop.clone());
        let (issuer, token) = (public.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let replica = i % 2;
                let started = Instant::now();
                let outcomes = one_round(&replicas[replica], &issuer, &token).await;
                let finished = Instant::now();
                records
                    .lock()
                    .unwrap()
                    .extend(outcomes.into_iter().map(|outcome| Record {
                        replica,
                        started,
                        finished,
                        outcome,
                    }));
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The CLI keeps polling its device code on B throughout, at the advertised interval.
    let device_poller = {
        let (replicas, records, stop) = (replicas.clone(), records.clone(), stop.clone());
        let device_code = device_code.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = poll_device(&replicas[1], &device_code).await;
                records.lock().unwrap().push(Record {
                    replica: 1,
                    started,
                    finished: Instant::now(),
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        })
    };

    // Readiness probes of both replicas throughout, as a load balancer would send them.
    let probes: Arc<Mutex<Vec<(usize, Instant, bool)>>> = Arc::default();
    let mut probers = Vec::new();
    for n in 0..2usize {
        let (replicas, probes, stop) = (replicas.clone(), probes.clone(), stop.clone());
        probers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = ready(&replicas[n]).await;
                probes.lock().unwrap().push((n, Instant::now(), answer));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // The crash, a few seconds of outage under load, and the restart on the same port.
    let kids_before = jwks_kids(&replicas[0]).await;
    let crashed = Instant::now();
    pg.crash();
    tokio::time::sleep(OUTAGE).await;
    pg.start_again();
    let back = Instant::now();
    let outage = back - crashed;

    // Both replicas become ready by themselves.
    let ready_after = loop {
        let seen = probes.lock().unwrap().clone();
        let first_ready = |n: usize| {
            seen.iter()
                .find(|(r, at, ok)| *r == n && *at >= back && *ok)
                .map(|(_, at, _)| *at - back)
        };
        if let (Some(a), Some(b)) = (first_ready(0), first_ready(1)) {
            break [a, b];
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "not ready 30 s after PostgreSQL came back\nA: {}\nB: {}",
            a.stderr(),
            b.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let all_ready = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in workers.into_iter().chain(probers).chain([device_poller]) {
        task.await.unwrap();
    }
    let not_ready_seen: Vec<bool> = (0..2)
        .map(|n| {
            probes
                .lock()
                .unwrap()
                .iter()
                .any(|(r, at, ok)| *r == n && *at > crashed && !ok)
        })
        .collect();
    let records = records.lock().unwrap().clone();

    // The figures.
    let count = |f: &dyn Fn(&Record) -> bool| records.iter().filter(|r| f(r)).count();
    let ok = count(&|r| matches!(r.outcome, Outcome::Ok));
    let unavailable = count(&|r| matches!(r.outcome, Outcome::Unavailable));
    let wrong: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Wrong(what) => Some(what.as_str()),
            _ => None,
        })
        .collect();
    let first_ok_after_back: Vec<Option<Duration>> = (0..2)
        .map(|n| {
            records
                .iter()
                .filter(|r| r.replica == n && r.started >= back)
                .filter(|r| matches!(r.outcome, Outcome::Ok))
                .map(|r| r.finished - back)
                .min()
        })
        .collect();
    let slowest = records
        .iter()
        .map(|r| r.finished - r.started)
        .max()
        .unwrap_or_default();
    println!(
        "HA failover: outage {:.1} s; ready again after PostgreSQL came back: A {:.2} s, B {:.2} s; \
         first 200 of a request sent after it: A {:?}, B {:?}; {} requests: {ok} succeeded, \
         {unavailable} answered 503 database_unavailable, {} wrong; slowest request {:.1} s \
         (waited out the restart)",
        outage.as_secs_f64(),
        ready_after[0].as_secs_f64(),
        ready_after[1].as_secs_f64(),
        first_ok_after_back[0],
        first_ok_after_back[1],
        records.len(),
        wrong.len(),
        slowest.as_secs_f64()
    );

    // Never a wrong answer.
    assert!(
        wrong.is_empty(),
        "{} wrong answers, e.g. {:?}\nA: {}\nB: {}",
        wrong.len(),
        wrong.iter().take(5).collect::<Vec<_>>(),
        a.stderr(),
        b.stderr()
    );
    // The load really overlapped the outage, and /readyz told it.
    assert!(
        records
            .iter()
            .any(|r| r.started > crashed && r.started < back),
        "no request was sent while PostgreSQL was down"
    );
    assert_eq!(
        not_ready_seen,
        [true, true],
        "/readyz reported not ready during the outage"
    );
    // Recovered: every request sent once both were ready succeeded, on both replicas.
    for n in 0..2 {
        let after: Vec<&Record> = records
            .iter()
            .filter(|r| r.replica == n && r.started >= all_ready)
            .collect();
        assert!(
            !after.is_empty(),
            "no requests to replica {n} after recovery"
        );
        assert!(
            after.iter().all(|r| matches!(r.outcome, Outcome::Ok)),
            "replica {n} after recovery: {:?}",
            after
                .iter()
                .filter(|r| !matches!(r.outcome, Outcome::Ok))
                .take(5)
                .collect::<Vec<_>>()
        );
    }

    // The device login begun on A before the crash is approved and completed on B.
    let (status, body) = call(
        &replicas[1].client,
        Method::POST,
        &format!("{}/api/v1/device/approve", replicas[1].url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"user_code": device["user_code"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let issued = loop {
        let res = replicas[1]
            .client
            .post(format!("{}/oauth2/token", replicas[1].url))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code.as_str()),
                ("client_id", "keyward-cli"),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        match (status, body["error"].as_str()) {
            (200, _) => break body,
            (400, Some("authorization_pending" | "slow_down")) => {
                tokio::time::sleep(Duration::from_millis(1100)).await
            }
            other => panic!("device poll on B after the restart: {other:?} {body}"),
        }
    };
    let access = issued["access_token"].as_str().unwrap();
    let (status, orgs) = call(
        &replicas[0].client,
        Method::GET,
        &format!("{}/crewai_plus/api/v1/me/organizations", replicas[0].url),
        Some(access),
        None,
    )
    .await;
    assert_eq!(status, 200, "{orgs}");

    // The approval requested before the crash is decided on B and read back on A.
    let (status, body) = call(
        &replicas[1].client,
        Method::POST,
        &format!("{}/api/v1/approvals/{approval}/approve", replicas[1].url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, shown) = call(
        &replicas[0].client,
        Method::GET,
        &format!("{}/api/v1/approvals/{approval}", replicas[0].url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, shown["state"].as_str()),
        (200, Some("approved")),
        "{shown}"
    );

    // Rotation goes on after the restart: a key neither replica published before the crash
    // appears on both, and they end up serving the same set.
    let deadline = back + Duration::from_secs(20);
    loop {
        let (ka, kb) = (jwks_kids(&replicas[0]).await, jwks_kids(&replicas[1]).await);
        let fresh = |k: &Vec<String>| k.iter().any(|kid| !kids_before.contains(kid));
        if ka == kb && fresh(&ka) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rotation on both replicas 20 s after the restart: before {kids_before:?}, A {ka:?}, B {kb:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly one replica rotated in each cycle, across the crash.
    let (listed, listing, err) = keyward_cli(&a_opts, &["keys", "list", "--json"]);
    assert!(listed, "{err}");
    let keys: Vec<Value> = serde_json::from_str(&listing).unwrap();
    let mut activations: Vec<i64> = keys
        .iter()
        .map(|k| k["activates_at"].as_i64().unwrap())
        .collect();
    activations.sort();
    for pair in activations.windows(2) {
        assert!(
            pair[1] - pair[0] >= 6,
            "two keys in one cycle: {activations:?}"
        );
    }
    let published = exec_sql(
        &a_opts,
        "SELECT 1 FROM audit_events WHERE kind = 'signing_key.published'",
    )
    .await;
    assert_eq!(published as usize, keys.len(), "one publication per key");
    let (verified, out, err) = keyward_cli(&a_opts, &["audit", "verify"]);
    assert!(verified, "{out}{err}\n{}", pg.log());
}

/// Two gateway replicas on the same database (they share it directly, SPEC §1): a request held
/// for approval on one of them before the crash is released by a decision made on the other
/// server replica after it, and reads through both gateways during the outage are answered or
/// refused clearly, never with a wrong answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_held_on_a_gateway_across_a_postgres_crash_is_released_after_it() {
    use crate::approvals::fixture;
    use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream, write_routes};

    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let backend = pg.fresh_database().await;
    let f = fixture(&backend, None).await;
    let alice = f.member("alice@acme.example", "member").await;
    // The second server replica uses the first one's master key.
    let master = std::fs::read_to_string(f.options.data_dir.join("master.key")).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut b_opts =
        ServerOptions::new(&backend, dir_b.path()).env("KEYWARD_MASTER_KEY", master.trim());
    b_opts.bootstrap = false;
    let b = Server::start(&b_opts);

    let upstream = Upstream::start().await;
    let gateway = |dir: &std::path::Path| {
        std::fs::write(
            dir.join("policy.cedar"),
            "@id(\"reads\")\npermit(principal, action, resource) when { context.method == \"GET\" };\n\
             @id(\"writes-need-approval\")\n@approval(\"required\")\n\
             permit(principal, action, resource) when { context.method == \"POST\" };\n",
        )
        .unwrap();
        let config = write_routes(
            dir,
            &format!(
                "organization = \"Acme\"\n\n[[route]]\nname = \"tools\"\npath_prefix = \"/tools\"\n\
                 upstream = \"{}\"\npolicies = [\"policy.cedar\"]\napproval_timeout = \"60s\"\n",
                upstream.url()
            ),
        );
        GatewayProcess::start(&GatewayOptions::new(&f.options, &f.server, &config))
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gateways = Arc::new([gateway(one.path()), gateway(two.path())]);

    // Held on the first gateway.
    let held = {
        let (client, url, alice) = (
            gateways[0].client(false),
            gateways[0].url.clone(),
            alice.clone(),
        );
        tokio::spawn(async move {
            let res = client
                .post(format!("{url}/tools/run"))
                .bearer_auth(alice)
                .header(
                    "X-Keyward-Approval-Reason",
                    "ship the hotfix for incident 7",
                )
                .json(&json!({"tool": "deploy"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap(), Instant::now())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let approval = loop {
        let (status, page) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::GET,
                "/approvals?state=pending",
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        if let Some(id) = page[0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway asked for no approval"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Reads through both gateways throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(usize, u16, String)>>> = Arc::default();
    let mut readers = Vec::new();
    for n in 0..2usize {
        let (gateways, stop, answers, alice) = (
            gateways.clone(),
            stop.clone(),
            answers.clone(),
            alice.clone(),
        );
        readers.push(tokio::spawn(async move {
            let client = gateways[n].client(false);
            while !stop.load(Ordering::Relaxed) {
                let answer = match client
                    .get(format!("{}/tools/list", gateways[n].url))
                    .bearer_auth(&alice)
                    .send()
                    .await
                {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        (n, status, res.text().await.unwrap_or_default())
                    }
                    Err(e) => (n, 0, format!("transport: {e}")),
                };
                answers.lock().unwrap().push(answer);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (n, gateway) in gateways.iter().enumerate() {
        let (status, body) = gateway.readyz().await;
        assert_eq!(
            status, 200,
            "gateway {n} not ready before the crash: {body}"
        );
    }
    let crashed = Instant::now();
    pg.crash();
    // Both gateways tell their load balancer to send them nothing while the database is away.
    let mut not_ready = [false, false];
    while crashed.elapsed() < OUTAGE && not_ready != [true, true] {
        for (n, seen) in not_ready.iter_mut().enumerate() {
            if *seen {
                continue;
            }
            let (status, body) = gateways[n].readyz().await;
            match status {
                503 => {
                    assert_eq!(body["database"], "unreachable", "gateway {n}: {body}");
                    *seen = true;
                }
                200 => {}
                _ => panic!("gateway {n} /readyz answered {status}: {body}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        not_ready,
        [true, true],
        "a gateway's /readyz stayed 200 while PostgreSQL was down"
    );
    tokio::time::sleep(OUTAGE.saturating_sub(crashed.elapsed())).await;
    pg.start_again();
    let back = Instant::now();

    // Decided on the other server replica once it answers again; the held request goes through.
    let decided = loop {
        let (status, body) = call(
            &b.client(),
            Method::POST,
            &format!("{}/api/v1/approvals/{approval}/approve", b.url),
            Some(BOOTSTRAP_TOKEN),
            Some(json!({})),
        )
        .await;
        match status {
            200 => break Instant::now(),
            503 if body["error"] == "database_unavailable" => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            _ => panic!("approving on B after the restart: {status} {body}"),
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "B did not recover"
        );
    };
    let (status, body, released) = tokio::time::timeout(Duration::from_secs(20), held)
        .await
        .expect("the held request was not released within 20 s of the decision")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        upstream
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.method == "POST")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let ok = answers.iter().filter(|a| a.1 == 200).count();
    let refused: Vec<&(usize, u16, String)> = answers.iter().filter(|a| a.1 != 200).collect();
    println!(
        "HA gateways: outage {:.1} s; approved on B {:.2} s after PostgreSQL came back, held request \
         released {:.2} s after the decision; {} reads through two gateways: {ok} succeeded, {} not \
         ({:?})",
        (back - crashed).as_secs_f64(),
        (decided - back).as_secs_f64(),
        released.saturating_duration_since(decided).as_secs_f64(),
        answers.len(),
        refused.len(),
        refused.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        refused
            .iter()
            .all(|(_, status, body)| *status == 503 && body.contains("database")),
        "only clear 503s naming the database: {:?}\n{}\n{}",
        refused.iter().take(5).collect::<Vec<_>>(),
        gateways[0].stderr(),
        gateways[1].stderr()
    );
    // Both gateways answer again.
    for n in 0..2 {
        assert!(
            answers
                .iter()
                .rev()
                .take(4)
                .filter(|a| a.0 == n)
                .all(|a| a.1 == 200),
            "gateway {n} did not recover"
        );
    }
    // And say so to their load balancer, without a restart.
    for (n, gateway) in gateways.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = gateway.readyz().await;
            if status == 200 {
                assert_eq!(body["database"], "ok", "gateway {n}: {body}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gateway {n} /readyz not ready 30 s after the restart: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
