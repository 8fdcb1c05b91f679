//! Gateway sessions as the audit log knows them: heads of a session in segment order with error
//! events after them, sessions listed newest first with their callers and routes, filters on the
//! whole session, and nothing of another organization — on SQLite and (when
//! `KEYWARD_TEST_DATABASE_URL` is set) PostgreSQL.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

use keyward_core::{OrgId, UserId};
use keyward_store::audit::AuditKey;
use keyward_store::*;
use serde_json::{Value, json};

mod common;
use common::stores;

async fn new_org(store: &dyn Store, name: &str) -> OrgId {
    let user = UserRow {
        id: UserId::new_random(),
        email: format!("{name}@example.com"),
        created_at: 1,
    };
    store.create_user(&user).await.unwrap();
    let org = OrgRow {
        id: OrgId::new_random(),
        name: name.into(),
        created_at: 1,
    };
    store.create_org(&org, user.id, "owner").await.unwrap();
    org.id
}

fn event(org: OrgId, at_ms: i64, actor: &str, route: &str, session: Value) -> NewAuditEvent {
    NewAuditEvent {
        at_ms,
        kind: "gateway.request".into(),
        org_id: Some(org),
        actor: actor.into(),
        data: json!({"route": route, "method": "POST", "path": "/v1", "status": 200, "decision": "allow", "session": session}),
    }
}

fn head(id: &str, segment: u64) -> Value {
    json!({"id": id, "segment": segment, "lines": 5 + segment, "head_hash": format!("{segment:064x}"), "bytes": 100 + segment})
}

#[tokio::test]
async fn session_heads_and_lists_are_per_organization() {
    let key: AuditKey = keyward_store::crypto::MasterKey::generate()
        .unwrap()
        .0
        .audit_key();
    for f in stores().await {
        let s = f.store.as_ref();
        let backend = s.backend();
        let org = new_org(s, "sess").await;
        let other = new_org(s, "sess-other").await;
        // Appended out of segment order, with an error event in between, plus noise: another
        // org's event with the same session id, a non-gateway event, a request without session.
        s.append_audit(
            &key,
            &[
                event(org, 1_000, "user:alice", "openai", head("build-42", 1)),
                event(org, 900, "user:alice", "openai", head("build-42", 0)),
                event(
                    org,
                    1_100,
                    "workload:crew",
                    "anthropic",
                    json!({"id": "build-42", "error": "S3 put failed"}),
                ),
                event(
                    org,
                    1_200,
                    "workload:crew",
                    "anthropic",
                    head("build-42", 2),
                ),
                event(org, 2_000, "user:bob", "openai", head("solo-1", 0)),
                event(other, 3_000, "user:eve", "openai", head("build-42", 0)),
                NewAuditEvent {
                    at_ms: 3_100,
                    kind: "approval.created".into(),
                    org_id: Some(org),
                    actor: "user:alice".into(),
                    data: json!({"session": {"id": "build-42"}}),
                },
                NewAuditEvent {
                    at_ms: 3_200,
                    kind: "gateway.request".into(),
                    org_id: Some(org),
                    actor: "user:alice".into(),
                    data: json!({"route": "openai", "status": 403}),
                },
            ],
        )
        .await
        .unwrap();

        let heads = s.session_heads(org, "build-42").await.unwrap();
        let segments: Vec<Option<u64>> = heads.iter().map(|h| h.segment).collect();
        assert_eq!(segments, [Some(0), Some(1), Some(2), None], "{backend}");
        assert_eq!(heads[0].lines, Some(5), "{backend}");
        assert_eq!(
            heads[0].head_hash.as_deref(),
            Some(&*format!("{:064x}", 0)),
            "{backend}"
        );
        assert_eq!(heads[0].bytes, Some(100), "{backend}");
        assert_eq!(heads[0].event.at_ms, 900, "{backend}");
        assert_eq!(heads[0].event.actor, "user:alice", "{backend}");
        assert_eq!(heads[0].route.as_deref(), Some("openai"), "{backend}");
        assert_eq!(heads[0].status, Some(200), "{backend}");
        assert_eq!(
            heads[3].error.as_deref(),
            Some("S3 put failed"),
            "{backend}"
        );
        assert_eq!(heads[3].head_hash, None, "{backend}");
        assert!(
            heads.iter().all(|h| key.is_keyed(&h.event)),
            "{backend}: the rows are the audit rows as chained"
        );
        assert!(
            s.session_heads(org, "nope").await.unwrap().is_empty(),
            "{backend}"
        );
        let theirs = s.session_heads(other, "build-42").await.unwrap();
        assert_eq!(
            theirs.len(),
            1,
            "{backend}: the other org sees only its own event"
        );
        assert_eq!(theirs[0].event.actor, "user:eve", "{backend}");

        let all = s
            .list_sessions(
                org,
                &SessionFilter {
                    limit: 50,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let ids: Vec<&str> = all.iter().map(|x| x.session_id.as_str()).collect();
        assert_eq!(
            ids,
            ["solo-1", "build-42"],
            "{backend}: newest first, no other org's"
        );
        let build = &all[1];
        assert_eq!(build.segments, 3, "{backend}");
        assert_eq!(build.errors, 1, "{backend}");
        assert_eq!((build.first_ms, build.last_ms), (900, 1_200), "{backend}");
        assert_eq!(build.callers, ["user:alice", "workload:crew"], "{backend}");
        assert_eq!(build.routes, ["anthropic", "openai"], "{backend}");

        let list = |f: SessionFilter| async move {
            s.list_sessions(org, &SessionFilter { limit: 50, ..f })
                .await
                .unwrap()
                .into_iter()
                .map(|x| x.session_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            list(SessionFilter {
                caller: Some("workload:crew".into()),
                ..Default::default()
            })
            .await,
            ["build-42"],
            "{backend}: a caller matches a session any of whose requests it made"
        );
        let crew = s
            .list_sessions(
                org,
                &SessionFilter {
                    caller: Some("workload:crew".into()),
                    limit: 5,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            crew[0].segments, 3,
            "{backend}: the filter keeps the counts whole"
        );
        assert_eq!(
            list(SessionFilter {
                route: Some("openai".into()),
                ..Default::default()
            })
            .await,
            ["solo-1", "build-42"],
            "{backend}"
        );
        assert_eq!(
            list(SessionFilter {
                route: Some("anthropic".into()),
                ..Default::default()
            })
            .await,
            ["build-42"],
            "{backend}"
        );
        assert_eq!(
            list(SessionFilter {
                since_ms: Some(1_500),
                ..Default::default()
            })
            .await,
            ["solo-1"],
            "{backend}"
        );
        assert_eq!(
            list(SessionFilter {
                until_ms: Some(1_500),
                ..Default::default()
            })
            .await,
            ["build-42"],
            "{backend}"
        );
        assert_eq!(
            list(SessionFilter {
                since_ms: Some(1_150),
                until_ms: Some(1_160),
                ..Default::default()
            })
            .await,
            ["build-42"],
            "{backend}: a session spanning the window overlaps it"
        );
        assert_eq!(
            s.list_sessions(
                org,
                &SessionFilter {
                    limit: 1,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .len(),
            1,
            "{backend}"
        );
        assert!(
            list(SessionFilter {
                caller: Some("user:eve".into()),
                ..Default::default()
            })
            .await
            .is_empty(),
            "{backend}"
        );
    }
}
