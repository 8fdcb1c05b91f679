//! Every stored signing key has its `signing_key.published` event in the audit chain, even when
//! the database refused the event after it had stored the key (ha_failover saw PostgreSQL crash
//! in between: a served key without its event).
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use keyward_server::audit::Auditor;
use keyward_server::clock::Clock;
use keyward_server::config::ServerConfig;
use keyward_server::keyring::Keyring;
use keyward_store::crypto::MasterKey;
use sqlx::Connection;

async fn count(conn: &mut sqlx::SqliteConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

#[tokio::test]
async fn a_publication_the_audit_log_refused_is_recorded_on_the_next_tick() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::for_test(dir.path().to_owned());
    let store = keyward_store::open(None, dir.path()).await.unwrap();
    let master = Arc::new(MasterKey::generate().unwrap().0);
    let keyring = Keyring::new(store.clone(), master.clone(), config.rotation);
    let audit = Auditor::new(store.clone(), master.audit_key());
    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();

    // The audit log refuses events; the key table still takes rows.
    sqlx::query(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events \
         BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let now = Clock::system().now();
    assert!(keyring.tick(now, &audit).await.is_err());
    let keys = count(&mut conn, "SELECT COUNT(*) FROM signing_keys").await;
    assert!(keys >= 1, "the first key was not stored");
    let published = "SELECT COUNT(*) FROM audit_events WHERE kind = 'signing_key.published'";
    assert_eq!(count(&mut conn, published).await, 0);

    // Back: the next tick writes the event the outage kept out, and publishes nothing twice.
    sqlx::query("DROP TRIGGER audit_down")
        .execute(&mut conn)
        .await
        .unwrap();
    keyring.tick(now, &audit).await.unwrap();
    keyring.tick(now, &audit).await.unwrap();
    let keys = count(&mut conn, "SELECT COUNT(*) FROM signing_keys").await;
    assert_eq!(
        count(&mut conn, published).await,
        keys,
        "one publication per key"
    );
    let kid: String = sqlx::query_scalar("SELECT kid FROM signing_keys LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let data: String = sqlx::query_scalar(
        "SELECT data FROM audit_events WHERE kind = 'signing_key.published' LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(data.contains(&kid), "{data}");
}
