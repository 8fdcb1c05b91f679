//! Security review M6: the audit chain's links are keyed from the master key. Someone who can
//! write the database rewrites an event and recomputes every later link — with plain SHA-256,
//! or with an HMAC under a key of their own — and moves the chain head: `keyward audit verify`
//! (offline, given the master key) still names the rewritten event.

use keyward_store::audit::{AuditKey, unkeyed_event_hash};
use keyward_store::crypto::MasterKey;
use reqwest::Method;

use crate::common::*;

struct Row {
    seq: i64,
    at_ms: i64,
    kind: String,
    org_id: Option<String>,
    actor: String,
    data: String,
    prev_hash: String,
    hash: String,
}

const SELECT: &str =
    "SELECT seq, at_ms, kind, org_id, actor, data, prev_hash, hash FROM audit_events ORDER BY seq";

async fn rows(options: &ServerOptions) -> Vec<Row> {
    macro_rules! read {
        ($conn:ty, $url:expr) => {{
            let mut conn = <$conn as sqlx::Connection>::connect($url)
                .await
                .expect("connect");
            let found: Vec<(
                i64,
                i64,
                String,
                Option<String>,
                String,
                String,
                String,
                String,
            )> = sqlx::query_as(SELECT)
                .fetch_all(&mut conn)
                .await
                .expect("select");
            found
        }};
    }
    let found = match &options.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", options.data_dir.join("keyward.db").display());
            read!(sqlx::SqliteConnection, &url)
        }
        Backend::Postgres { url } => read!(sqlx::PgConnection, url),
    };
    found
        .into_iter()
        .map(
            |(seq, at_ms, kind, org_id, actor, data, prev_hash, hash)| Row {
                seq,
                at_ms,
                kind,
                org_id,
                actor,
                data,
                prev_hash,
                hash,
            },
        )
        .collect()
}

/// Rewrites the actor of event `seq` (when `edit`), recomputes its link and every later one with
/// `hash`, and moves the chain head: what an attacker with database access does.
async fn rewrite(options: &ServerOptions, seq: i64, edit: bool, hash: &dyn Fn(&Row) -> String) {
    let mut all = rows(options).await;
    let mut prev: Option<String> = None;
    for row in all.iter_mut().filter(|r| r.seq >= seq) {
        if edit && row.seq == seq {
            row.actor = "user:someone-else".into();
        }
        if let Some(prev) = &prev {
            row.prev_hash = prev.clone();
        }
        row.hash = hash(row);
        prev = Some(row.hash.clone());
        let sql = format!(
            "UPDATE audit_events SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            row.actor, row.prev_hash, row.hash, row.seq
        );
        assert_eq!(exec_sql(options, &sql).await, 1);
    }
    let last = all.last().unwrap();
    let sql = format!(
        "UPDATE audit_head SET seq = {}, hash = '{}'",
        last.seq, last.hash
    );
    assert_eq!(exec_sql(options, &sql).await, 1);
}

fn sha256_link(row: &Row) -> String {
    unkeyed_event_hash(
        row.seq,
        row.at_ms,
        &row.kind,
        row.org_id.as_deref(),
        &row.actor,
        &row.data,
        &row.prev_hash,
    )
}

fn keyed_link(key: &AuditKey) -> impl Fn(&Row) -> String + '_ {
    move |row| {
        key.event_hash(
            row.seq,
            row.at_ms,
            &row.kind,
            row.org_id.as_deref(),
            &row.actor,
            &row.data,
            &row.prev_hash,
        )
    }
}

/// A server that wrote a few events, stopped; its master key is in the data directory's file.
async fn written(backend: &Backend, dir: &std::path::Path) -> ServerOptions {
    let options = ServerOptions::new(backend, dir);
    let server = Server::start(&options);
    let (_, token) = automation_with_token(&server, "crew").await;
    for _ in 0..3 {
        mint(&server, &token, "sts.amazonaws.com").await;
    }
    drop(server);
    let (ok, out, err) = keyward_cli(&options, &["audit", "verify"]);
    assert!(ok, "an untouched log verifies offline: {out}{err}");
    options
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_and_relinked_audit_log_does_not_verify() {
    install_crypto();
    for backend in backends().await {
        for attack in ["sha256", "hmac-under-another-key"] {
            let backend = match &backend {
                Backend::Postgres { .. } => fresh_postgres().await.unwrap(),
                Backend::Sqlite => Backend::Sqlite,
            };
            let name = backend.name();
            let dir = tempfile::tempdir().unwrap();
            let options = written(&backend, dir.path()).await;
            let (wrong, _) = MasterKey::generate().unwrap();
            let wrong = wrong.audit_key();
            match attack {
                "sha256" => rewrite(&options, 4, true, &sha256_link).await,
                _ => rewrite(&options, 4, true, &keyed_link(&wrong)).await,
            }
            let (ok, out, _) = keyward_cli(&options, &["audit", "verify"]);
            assert!(!ok, "{name} {attack}: a recomputed chain must fail: {out}");
            assert!(
                out.contains("first broken event: 4"),
                "{name} {attack}: {out}"
            );

            // The server says the same, and restarting it does not launder the rewrite.
            let server = Server::start(&options);
            let (status, body) = call(
                &server.client(),
                Method::GET,
                &format!("{}/api/v1/audit/verify", server.url),
                Some(BOOTSTRAP_TOKEN),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["ok"], false, "{name} {attack}: {body}");
            assert_eq!(body["first_broken_seq"], 4, "{name} {attack}: {body}");
        }

        // Verifying with another master key says so, at the first event.
        let dir = tempfile::tempdir().unwrap();
        let backend = match &backend {
            Backend::Postgres { .. } => fresh_postgres().await.unwrap(),
            Backend::Sqlite => Backend::Sqlite,
        };
        let options = written(&backend, dir.path()).await;
        let (_, other) = MasterKey::generate().unwrap();
        let options = options.env("KEYWARD_MASTER_KEY", &other);
        let (ok, out, _) = keyward_cli(&options, &["audit", "verify"]);
        assert!(!ok, "{out}");
        assert!(out.contains("first broken event: 1"), "{out}");
        assert!(out.contains("another master key"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_written_before_keyed_links_is_anchored_once_and_then_verifies() {
    install_crypto();
    for backend in backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let options = written(&backend, dir.path()).await;
        let count = rows(&options).await.len() as i64;
        // As an earlier Keyward wrote it: every link plain SHA-256, and no record in the data
        // directory that a keyed log was kept.
        rewrite(&options, 1, false, &sha256_link).await;
        std::fs::remove_file(dir.path().join("audit-chain-keyed")).unwrap();
        let (ok, out, _) = keyward_cli(&options, &["audit", "verify"]);
        assert!(!ok, "{name}: an unkeyed log is not vouched for: {out}");
        assert!(out.contains("no audit event is keyed"), "{name}: {out}");

        // The first start anchors it with one keyed event; then it verifies, and says how.
        let server = Server::start(&options);
        assert!(
            server
                .stderr()
                .contains("anchoring them under the master key")
        );
        drop(server);
        let (ok, out, err) = keyward_cli(&options, &["audit", "verify"]);
        assert!(ok, "{name}: {out}{err}");
        assert!(
            out.contains(&format!(
                "events 1 to {count} were written before keyed links"
            )),
            "{name}: {out}"
        );
        let kinds: Vec<String> = rows(&options).await.into_iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "audit.chain_keyed").count(),
            1,
            "{name}: {kinds:?}"
        );
        // A second start adds no second anchor.
        drop(Server::start(&options));
        let kinds: Vec<String> = rows(&options).await.into_iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "audit.chain_keyed").count(),
            1,
            "{name}"
        );

        // Now the whole log is rewritten without the key, anchor included, as if it had never
        // been keyed: the data directory remembers, so the next start does not vouch for it,
        // and the keyed events appended after it do not either.
        rewrite(&options, 1, true, &sha256_link).await;
        let server = Server::start(&options);
        let (_, token) = automation_with_token(&server, "after").await;
        mint(&server, &token, "sts.amazonaws.com").await;
        assert!(
            server
                .stderr()
                .contains("it was rewritten by someone without the master key"),
            "{name}"
        );
        drop(server);
        let (ok, out, _) = keyward_cli(&options, &["audit", "verify"]);
        assert!(
            !ok,
            "{name}: a log rewritten without the key is not re-anchored: {out}"
        );
        assert!(out.contains("is not the anchor"), "{name}: {out}");
    }
}
