//! Issue 20 point 7: what anonymous clients can make `keyward serve` store, and how much they may
//! send. Every route refuses a body one byte over its limit before any other work; every
//! unauthenticated endpoint that writes rows (device logins, SSO sign-in starts and answers,
//! password sign-in, invitations, first-run setup) holds a flood to a documented number of rows,
//! answers it 429 (or 503 for a server-wide cap) with `Retry-After`, and still lets a legitimate
//! person through afterwards.
//!
//! The floods come from many client addresses through `X-Forwarded-For`, which the server
//! believes from its trusted proxy (loopback here). Figures (requests, req/s, 429s, rows) are
//! printed for the note; `bench/flood.sh` measures the same against a release build.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use keyward_server::people::{device, pending_bounds, throttle};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::people::{
    PASSWORD, advance_to_next_minute, browser, local_options, poll, set_owner_password,
};

/// Requests in flight at once during a flood. Server-wide caps are checked before the row is
/// written, so each request in flight when a cap is reached may add one row past it.
const CONCURRENCY: usize = 16;

/// Row counts of every table, and the totals inside the counter tables (a counter that moves
/// is a write, too).
async fn snapshot(options: &ServerOptions) -> BTreeMap<String, i64> {
    use sqlx::Row;
    let mut counts = BTreeMap::new();
    let extra = [
        (
            "rate_counters.count",
            "SELECT COALESCE(SUM(count), 0) AS n FROM rate_counters",
        ),
        (
            "auth_failures.failures",
            "SELECT COALESCE(SUM(failures), 0) AS n FROM auth_failures",
        ),
    ];
    match &options.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", options.data_dir.join("keyward.db").display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let tables: Vec<String> = sqlx::query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
            for table in tables {
                let sql = format!("SELECT COUNT(*) AS n FROM {table}");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                counts.insert(table, row.get::<i64, _>("n"));
            }
            for (name, sql) in extra {
                let row = sqlx::query(sql).fetch_one(&mut conn).await.unwrap();
                counts.insert(name.to_owned(), row.get::<i64, _>("n"));
            }
        }
        Backend::Postgres { url } => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            let tables: Vec<String> =
                sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
            for table in tables {
                let sql = format!("SELECT COUNT(*)::BIGINT AS n FROM {table}");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                counts.insert(table, row.get::<i64, _>("n"));
            }
            for (name, sql) in extra {
                let sql = sql.replace("AS n", "::BIGINT AS n");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                counts.insert(name.to_owned(), row.get::<i64, _>("n"));
            }
        }
    }
    counts
}

/// Rows `table` gained between two snapshots.
fn grew(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>, table: &str) -> i64 {
    after.get(table).copied().unwrap_or(0) - before.get(table).copied().unwrap_or(0)
}

/// The server's clock (the wall clock plus what the test advanced).
fn server_now(server: &Server) -> i64 {
    let offset: i64 = std::fs::read_to_string(&server.clock_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    keyward_server::clock::now() + offset
}

/// What a flood got back.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    statuses: BTreeMap<u16, usize>,
    /// 429 and 503 answers without a usable `Retry-After`.
    missing_retry_after: usize,
    secs: f64,
}

impl Tally {
    fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    fn print(&self, what: &str, backend: &Backend, rows: &str) {
        eprintln!(
            "flood {what} ({}): {} requests, {:.0} req/s, statuses {:?}, {rows}",
            backend.name(),
            self.sent,
            self.sent as f64 / self.secs.max(1e-9),
            self.statuses,
        );
    }
}

/// Sends `n` requests, [`CONCURRENCY`] at a time; `request(i)` builds the i-th.
async fn flood<F>(n: usize, request: F) -> Tally
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let request = request.clone();
        let next = next.clone();
        workers.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let res = request(i).send().await.expect("flood request");
                let status = res.status().as_u16();
                let retry_ok = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|s| (1..=3600).contains(&s));
                seen.push((status, retry_ok));
            }
            seen
        });
    }
    let mut tally = Tally {
        sent: n,
        ..Tally::default()
    };
    while let Some(seen) = workers.join_next().await {
        for (status, retry_ok) in seen.unwrap() {
            *tally.statuses.entry(status).or_default() += 1;
            if matches!(status, 429 | 503) && !retry_ok {
                tally.missing_retry_after += 1;
            }
        }
    }
    tally.secs = started.elapsed().as_secs_f64();
    tally
}

/// Every route of the table with its path parameters filled in.
fn every_route() -> Vec<(Method, String, usize)> {
    let api = keyward_server::routes::table();
    let console = keyward_server::console::table();
    let mut routes = Vec::new();
    for (decl, _) in api.into_iter().chain(console) {
        let mut path = String::new();
        let mut in_param = false;
        for c in decl.path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    path.push_str("abuse-limits");
                }
                c if !in_param => path.push(c),
                _ => {}
            }
        }
        let method = Method::from_bytes(decl.method.as_str().as_bytes()).unwrap();
        // The API's fixed limit (`max_body_bytes`), and the routes' own overrides.
        let limit = keyward_server::routes::body_limit(&decl, 64 * 1024);
        routes.push((method, path, limit));
    }
    routes
}

/// Every route: one byte over its limit is a 413 with a JSON error naming the limit, ahead of
/// authentication (an unknown bearer token would be a 401) and without a single row written or
/// counter moved; exactly at the limit it is not refused for size.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_a_body_over_its_limit_before_any_other_work() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = local_options(&backend, dir.path());
        let server = Server::start(&options);
        let client = browser(&server);
        let routes = every_route();
        assert!(routes.len() > 100, "{} routes", routes.len());
        assert!(
            routes
                .iter()
                .any(|(_, p, limit)| p == "/auth/saml/acs" && *limit > 64 * 1024),
            "the SAML ACS keeps its own, larger limit"
        );
        let send = |method: &Method, path: &str, len: usize| {
            client
                .request(method.clone(), format!("{}{path}", server.url))
                .bearer_auth("kwp_not-a-token-of-this-server-0123456789abcdef")
                .header("content-type", "application/json")
                .body(vec![b'a'; len])
                .send()
        };

        let before = snapshot(&options).await;
        let mut wrong = Vec::new();
        for (method, path, limit) in &routes {
            let res = send(method, path, limit + 1).await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            let names_limit = body["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("{} KiB", limit / 1024)));
            if status != 413 || body["error"] != "body_too_large" || !names_limit {
                wrong.push(format!("{method} {path} (limit {limit}): {status} {body}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} routes did not refuse a body one byte over the limit:\n{}",
            wrong.len(),
            routes.len(),
            wrong.join("\n")
        );
        let after = snapshot(&options).await;
        assert_eq!(
            before,
            after,
            "a refused body wrote to the database ({})",
            backend.name()
        );

        for (method, path, limit) in &routes {
            let status = send(method, path, *limit).await.unwrap().status().as_u16();
            if status == 413 {
                wrong.push(format!(
                    "{method} {path}: a body of exactly {limit} bytes got 413"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        eprintln!(
            "body limits ({}): {} routes refuse limit + 1 bytes with 413 and accept the limit",
            backend.name(),
            routes.len()
        );
    }
}

/// One client per flood: a connection per request would measure TLS handshakes.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
}

impl Target {
    fn of(server: &Server) -> Self {
        Target {
            client: browser(server),
            url: server.url.clone(),
        }
    }

    fn get(&self, path: &str, address: String) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .header("x-forwarded-for", address)
    }

    fn post(&self, path: &str, address: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .header("x-forwarded-for", address)
    }
}

fn device_start(t: &Target, address: String) -> reqwest::RequestBuilder {
    t.client
        .post(format!("{}/oauth2/device_authorization", t.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", address)
        .body("client_id=keyward-cli&scope=openid")
}

/// Device logins: one address gets [`device::STARTS_PER_MINUTE`] rows, then 429; many addresses
/// together stop at [`device::MAX_DEVICE_CODES`] rows with a 503; once the flood's codes expire
/// a person signs in with the CLI as usual; idle rate counters are swept after an hour.
#[tokio::test(flavor = "multi_thread")]
async fn device_login_floods_leave_bounded_rows() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options =
            local_options(&backend, dir.path()).env("KEYWARD_TRUSTED_PROXIES", "127.0.0.1/32");
        let server = Server::start(&options);
        let target = Target::of(&server);
        advance_to_next_minute(&server);

        // One address.
        let before = snapshot(&options).await;
        let s = target.clone();
        let tally = flood(2000, move |_| device_start(&s, "203.0.113.1".into())).await;
        let after = snapshot(&options).await;
        let rows = grew(&before, &after, "device_codes");
        tally.print(
            "POST /oauth2/device_authorization, one address",
            &backend,
            &format!("device_codes +{rows}"),
        );
        let per_address = device::STARTS_PER_MINUTE as usize;
        assert_eq!(tally.count(200), per_address, "{tally:?}");
        assert_eq!(tally.count(429), 2000 - per_address, "{tally:?}");
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
        assert_eq!(rows, device::STARTS_PER_MINUTE);
        assert_eq!(grew(&before, &after, "rate_counters"), 1);

        // Many addresses, with the table already near its cap.
        advance_to_next_minute(&server);
        let now = server_now(&server);
        let prefill = device::MAX_DEVICE_CODES - 200;
        exec_sql(
            &options,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {prefill}) \
                 INSERT INTO device_codes (device_hash, user_code_hash, client_id, scope, status, \
                 interval_secs, created_at, expires_at) \
                 SELECT 'flood-' || i, 'flood-uc-' || i, 'keyward-cli', '', 'pending', 5, {now}, {} FROM n",
                now + 600
            ),
        )
        .await;
        let before = snapshot(&options).await;
        let s = target.clone();
        // 100 addresses × 10 starts: each within its own budget, together over the cap.
        let tally = flood(1000, move |i| {
            device_start(&s, format!("198.51.{}.{}", i % 100 / 50, i % 50 + 1))
        })
        .await;
        let after = snapshot(&options).await;
        tally.print(
            "POST /oauth2/device_authorization, 100 addresses, table near its cap",
            &backend,
            &format!(
                "device_codes {} -> {}",
                before["device_codes"], after["device_codes"]
            ),
        );
        assert!(
            after["device_codes"] <= device::MAX_DEVICE_CODES + CONCURRENCY as i64,
            "{} rows, cap {}",
            after["device_codes"],
            device::MAX_DEVICE_CODES
        );
        assert!(tally.count(503) > 0, "{tally:?}");
        assert_eq!(tally.count(200) + tally.count(503), 1000, "{tally:?}");
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
        assert!(grew(&before, &after, "rate_counters") <= 100);

        // Once the flood's codes expire, a person signs in with the CLI as usual.
        server.advance_clock(601);
        let res = device_start(&target, "192.0.2.7".into())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let started: Value = res.json().await.unwrap();
        let (status, body) = call(
            &server.client(),
            Method::POST,
            &format!("{}/api/v1/device/approve", server.url),
            Some(BOOTSTRAP_TOKEN),
            Some(json!({"user_code": started["user_code"]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = poll(&server, started["device_code"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string(), "{body}");
        assert!(
            snapshot(&options).await["device_codes"] < 100,
            "the expired codes were swept to make room"
        );

        // Counters of addresses gone quiet for an hour are swept by the next request.
        let counters = snapshot(&options).await["rate_counters"];
        assert!(counters > 100, "{counters}");
        server.advance_clock(keyward_store::RATE_COUNTER_RETENTION + 60);
        assert_eq!(
            device_start(&target, "192.0.2.8".into())
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert!(
            snapshot(&options).await["rate_counters"] <= 2,
            "idle rate counters stay after an hour"
        );
    }
}

fn login_form(t: &Target, address: &str, email: &str, password: &str) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .finish();
    t.post("/login", address)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// Password sign-in and invitation links: a flood from one address is checked (and audited) at
/// most [`throttle::REQUESTS_PER_MINUTE`] times a minute, the rest is 429 with `Retry-After` and
/// writes nothing, and the owner still signs in from their own address.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_and_invitation_floods_leave_bounded_rows() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options =
            local_options(&backend, dir.path()).env("KEYWARD_TRUSTED_PROXIES", "127.0.0.1/32");
        let server = Server::start(&options);
        let target = Target::of(&server);
        set_owner_password(&server).await;
        advance_to_next_minute(&server);
        let budget = throttle::REQUESTS_PER_MINUTE;

        let before = snapshot(&options).await;
        let s = target.clone();
        let tally = flood(2000, move |i| {
            login_form(&s, "203.0.113.9", &format!("u{i}@flood.example"), "wrong")
        })
        .await;
        let after = snapshot(&options).await;
        let audit = grew(&before, &after, "audit_events");
        let failures = grew(&before, &after, "auth_failures");
        tally.print(
            "POST /login, one address",
            &backend,
            &format!("audit_events +{audit}, auth_failures +{failures}"),
        );
        // 503: a request that waited too long for a password-hashing slot.
        assert!(
            tally.count(429) + tally.count(503) >= 2000 - budget as usize,
            "{tally:?}"
        );
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
        assert!(audit <= budget, "{audit} audit events for one address");
        // One per email checked, and the address's own.
        assert!(failures <= budget + 1, "{failures} failure counters");
        assert!(grew(&before, &after, "rate_counters") <= 1);
        assert_eq!(grew(&before, &after, "web_sessions"), 0);

        // The owner, elsewhere, is not held up.
        let res = login_form(&target, "192.0.2.20", "owner@acme.example", PASSWORD)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);

        // Invitation links guessed from another address.
        advance_to_next_minute(&server);
        let before = snapshot(&options).await;
        let s = target.clone();
        let tally = flood(1000, move |i| {
            s.post("/invite", "203.0.113.10")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token=kwi_guess-{i}&password=x-password-x-long"))
        })
        .await;
        let after = snapshot(&options).await;
        let written: i64 = after
            .keys()
            .filter(|t| !t.contains('.'))
            .map(|t| grew(&before, &after, t))
            .sum();
        tally.print(
            "POST /invite, one address",
            &backend,
            &format!("rows +{written}"),
        );
        assert!(tally.count(429) >= 1000 - budget as usize, "{tally:?}");
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
        // Its request counter and its failure counter: nothing per guess.
        assert!(written <= 2, "{written} rows: {before:?} -> {after:?}");
    }
}

/// First-run setup: guesses of the setup link from one address are checked and audited at most
/// [`throttle::REQUESTS_PER_MINUTE`] times a minute; the owner with the real link gets through.
#[tokio::test(flavor = "multi_thread")]
async fn setup_floods_leave_bounded_rows() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let mut options =
            ServerOptions::new(&backend, dir.path()).env("KEYWARD_TRUSTED_PROXIES", "127.0.0.1/32");
        options.bootstrap = false;
        let server = Server::start(&options);
        let target = Target::of(&server);
        let link = server
            .banner
            .iter()
            .find_map(|l| l.strip_prefix("First login (one-time setup link, valid 24 h): "))
            .expect("setup link printed")
            .to_owned();
        let secret = link.split("#token=").nth(1).unwrap().to_owned();
        advance_to_next_minute(&server);
        let attempt = |t: &Target, address: &str, token: String| {
            t.post("/api/v1/setup", address).json(
                &json!({"setup_token": token, "org_name": "Acme", "email": "me@acme.example"}),
            )
        };
        let before = snapshot(&options).await;
        let s = target.clone();
        let tally = flood(1500, move |i| {
            attempt(&s, "203.0.113.30", format!("kws_guess-{i}"))
        })
        .await;
        let after = snapshot(&options).await;
        let audit = grew(&before, &after, "audit_events");
        tally.print(
            "POST /api/v1/setup, one address",
            &backend,
            &format!("audit_events +{audit}"),
        );
        let budget = throttle::REQUESTS_PER_MINUTE;
        assert!(tally.count(429) >= 1500 - budget as usize, "{tally:?}");
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
        assert!(audit <= budget, "{audit}");
        assert!(grew(&before, &after, "auth_failures") <= 1);
        assert!(grew(&before, &after, "rate_counters") <= 1);
        let res = attempt(&target, "192.0.2.30", secret).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 201, "{:?}", res.text().await);
    }
}

/// SSO: sign-in starts write [`pending_bounds::STARTS_PER_WINDOW`] rows per address and stop at
/// [`pending_bounds::MAX_PENDING`] over all; junk answers to the OIDC callback and the SAML
/// assertion consumer are audited at most [`pending_bounds::FINISHES_PER_WINDOW`] times per
/// address; after the flood a new sign-in starts as usual.
#[tokio::test(flavor = "multi_thread")]
async fn sso_floods_leave_bounded_rows() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let keys = crate::sso_saml::idp_keys(dir.path());
        let port = crate::sso_oidc::free_port();
        let options = crate::sso_saml::options(&backend, dir.path(), port, &keys.2)
            .env("KEYWARD_TRUSTED_PROXIES", "127.0.0.1/32");
        let server = Server::start(&options);
        let target = Target::of(&server);
        advance_to_next_minute(&server);
        let per_window = pending_bounds::STARTS_PER_WINDOW;

        let before = snapshot(&options).await;
        let s = target.clone();
        let tally = flood(2000, move |_| {
            s.get("/auth/saml/login", "203.0.113.40".into())
        })
        .await;
        let after = snapshot(&options).await;
        let rows = grew(&before, &after, "sso_pending");
        tally.print(
            "GET /auth/saml/login, one address",
            &backend,
            &format!("sso_pending +{rows}"),
        );
        assert_eq!(tally.count(303), per_window as usize, "{tally:?}");
        assert_eq!(tally.count(429), 2000 - per_window as usize, "{tally:?}");
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
        assert_eq!(rows, per_window);

        // Junk answers: no sign-in behind them, each refusal audited until the address's budget.
        let finishes = pending_bounds::FINISHES_PER_WINDOW;
        for (what, address) in [
            ("GET /auth/entra_id/callback", "203.0.113.41"),
            ("POST /auth/saml/acs", "203.0.113.42"),
        ] {
            advance_to_next_minute(&server);
            let before = snapshot(&options).await;
            let s = target.clone();
            let tally = flood(1000, move |i| {
                if what.starts_with("GET") {
                    s.get(
                        &format!("/auth/entra_id/callback?state=s{i}&code=c{i}"),
                        address.into(),
                    )
                } else {
                    s.post("/auth/saml/acs", address)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("cookie", format!("keyward_saml_relay=r{i}"))
                        .body(format!(
                            "RelayState=r{i}&SAMLResponse=PHNhbWw%2BPC9zYW1sPg%3D%3D"
                        ))
                }
            })
            .await;
            let after = snapshot(&options).await;
            let audit = grew(&before, &after, "audit_events");
            tally.print(what, &backend, &format!("audit_events +{audit}"));
            assert_eq!(
                tally.count(429),
                1000 - finishes as usize,
                "{what}: {tally:?}"
            );
            assert_eq!(tally.missing_retry_after, 0, "{tally:?}");
            assert_eq!(audit, finishes, "{what}");
            assert_eq!(grew(&before, &after, "saml_replay"), 0, "{what}");
        }

        // Many addresses with the table near its cap.
        advance_to_next_minute(&server);
        let now = server_now(&server);
        let prefill = pending_bounds::MAX_PENDING - 100;
        exec_sql(
            &options,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {prefill}) \
                 INSERT INTO sso_pending (state_hash, protocol, nonce, pkce_verifier, next_path, \
                 created_at, expires_at) \
                 SELECT 'flood-' || i, 'saml', 'id-' || i, '', '/', {now}, {} FROM n",
                now + 600
            ),
        )
        .await;
        let before = snapshot(&options).await;
        let s = target.clone();
        let tally = flood(600, move |i| {
            s.get("/auth/saml/login", format!("198.51.100.{}", i % 30 + 1))
        })
        .await;
        let after = snapshot(&options).await;
        tally.print(
            "GET /auth/saml/login, 30 addresses, table near its cap",
            &backend,
            &format!(
                "sso_pending {} -> {}",
                before["sso_pending"], after["sso_pending"]
            ),
        );
        assert!(
            after["sso_pending"] <= pending_bounds::MAX_PENDING + CONCURRENCY as i64,
            "{}",
            after["sso_pending"]
        );
        assert!(tally.count(503) > 0, "{tally:?}");
        assert_eq!(tally.count(303) + tally.count(503), 600, "{tally:?}");
        assert_eq!(tally.missing_retry_after, 0, "{tally:?}");

        // The flood's sign-ins expire; a person's sign-in starts again.
        server.advance_clock(601);
        let res = target
            .get("/auth/saml/login", "192.0.2.40".into())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        assert!(
            res.headers()
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("keyward_saml_relay=")),
            "a new sign-in's cookie"
        );
        assert!(snapshot(&options).await["sso_pending"] < 100);
    }
}
