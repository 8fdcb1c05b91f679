//! Acceptance f: the audit log is hash-chained; editing or deleting a row is detected.

use reqwest::Method;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn editing_or_deleting_an_audit_row_is_detected_and_named() {
    install_crypto();
    for backend in backends().await {
        for tamper in ["edit", "delete", "delete-newest"] {
            let backend = match (&backend, tamper) {
                (Backend::Postgres { .. }, "edit") => backend.clone(),
                (Backend::Postgres { .. }, _) => fresh_postgres().await.unwrap(),
                _ => Backend::Sqlite,
            };
            let dir = tempfile::tempdir().unwrap();
            let options = ServerOptions::new(&backend, dir.path());
            let server = Server::start(&options);
            let (_, token) = automation_with_token(&server, "crew").await;
            for _ in 0..3 {
                mint(&server, &token, "sts.amazonaws.com").await;
            }
            let (status, body) = call(
                &server.client(),
                Method::GET,
                &format!("{}/api/v1/audit/verify", server.url),
                Some(BOOTSTRAP_TOKEN),
                None,
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(body["ok"], true, "{body}");
            drop(server);

            let (ok, out, err) = keyward_cli(&options, &["audit", "verify"]);
            assert!(ok, "an untouched log verifies: {out}{err}");
            let total: u64 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(total >= 8, "{out}");

            let (sql, broken) = match tamper {
                "edit" => (
                    "UPDATE audit_events SET actor = 'user:someone-else' WHERE seq = 4".to_owned(),
                    4,
                ),
                "delete" => ("DELETE FROM audit_events WHERE seq = 5".to_owned(), 6),
                _ => (
                    format!("DELETE FROM audit_events WHERE seq = {total}"),
                    total as i64,
                ),
            };
            assert_eq!(exec_sql(&options, &sql).await, 1);
            let (ok, out, _) = keyward_cli(&options, &["audit", "verify"]);
            assert!(
                !ok,
                "{tamper} on {} must fail verification: {out}",
                backend.name()
            );
            assert!(
                out.contains(&format!("first broken event: {broken}")),
                "{tamper}: {out}"
            );
        }
    }
}
