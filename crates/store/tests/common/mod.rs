//! The stores every store test runs against: SQLite always, and a fresh PostgreSQL database when
//! `KEYWARD_TEST_DATABASE_URL` is set (required when `KEYWARD_REQUIRE_POSTGRES=1`).

use std::sync::Arc;

use keyward_store::{Store, open};

pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// The data directory (SQLite's file lives here); kept alive as long as the store.
    #[allow(dead_code)] // only the tests that reopen a store read it
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database's URL, for the PostgreSQL fixture.
    #[allow(dead_code)]
    pub url: Option<String>,
}

pub async fn stores() -> Vec<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![Fixture {
        store: open(None, dir.path()).await.unwrap(),
        dir,
        url: None,
    }];
    let admin = std::env::var("KEYWARD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if admin.is_none() && std::env::var("KEYWARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("KEYWARD_REQUIRE_POSTGRES=1 but KEYWARD_TEST_DATABASE_URL is not set");
    }
    if let Some(admin) = admin {
        let name = format!("kwstore_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap().to_owned();
        let url = format!("{base}/{name}");
        let dir = tempfile::tempdir().unwrap();
        let store = open(Some(&url), dir.path()).await.unwrap();
        assert_eq!(store.backend(), "postgres");
        all.push(Fixture {
            store,
            dir,
            url: Some(url),
        });
    }
    all
}
