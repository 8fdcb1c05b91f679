//! Gateway session recordings read back (issue 17 item 3, acceptance c): sessions are recorded
//! here the way the gateway records them (`SessionRecorder` into the server's recording store,
//! `<data-dir>/sessions/<org id>`, and one `gateway.request` audit event per segment, with the
//! server's own audit key), then listed, shown, replayed and verified through the real API and
//! the `keyward session` CLI. Editing a byte, deleting a line, cutting an object short or deleting
//! the last segment makes verify fail naming the place; another organization's session is 404;
//! a person whose role has no `gateway` access gets 403.

use std::sync::Arc;

use keyward_core::{OrgId, UserId};
use keyward_recording::{SegmentMeta, SessionRecorder, Storage};
use keyward_store::crypto::MasterKey;
use keyward_store::{NewAuditEvent, OrgRow, Store, UserRow};
use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::{Fixture, fixture};
use crate::common::*;

/// Records one request of `session` as the gateway would (masked body, decision, streamed
/// response) and appends its `gateway.request` event; returns the segment number.
pub(crate) async fn record_request(
    store: &Arc<dyn Store>,
    data_dir: &std::path::Path,
    org: OrgId,
    session: &str,
    caller: &str,
) -> u64 {
    let storage = Storage::local(data_dir.join("sessions"))
        .within(&org.to_string())
        .unwrap();
    let recorder = SessionRecorder::new(storage);
    let mut w = recorder
        .open_segment(
            session,
            SegmentMeta {
                caller: Some(caller.into()),
                route: Some("openai".into()),
                request_id: None,
            },
        )
        .unwrap();
    w.request(
        "POST",
        "/v1/chat/completions",
        [("content-type", "application/json")],
        Some(br#"{"model":"gpt-4o","messages":[{"content":"mail [MASKED:email]"}]}"#),
    );
    w.record(
        keyward_recording::Kind::Decision,
        json!({"effect": "allow", "policies": ["p1"]}),
    );
    w.response(200, [("content-type", "text/event-stream")]);
    w.response_chunk(b"data: hello\n\n");
    w.response_chunk(b"data: key [MASKED:aws_secret_key]\n\n");
    let head = w.close().await.unwrap();
    let master = MasterKey::load_or_create(None, data_dir).unwrap();
    store
        .append_audit(
            &master.audit_key(),
            &[NewAuditEvent {
                at_ms: keyward_server::clock::now() * 1000,
                kind: "gateway.request".into(),
                org_id: Some(org),
                actor: caller.into(),
                data: json!({
                    "route": "openai", "method": "POST", "path": "/v1/chat/completions",
                    "status": 200, "decision": "allow",
                    "session": {"id": head.session_id, "segment": head.segment, "lines": head.lines,
                                "head_hash": head.head_hash, "bytes": head.bytes},
                }),
            }],
        )
        .await
        .unwrap();
    head.segment
}

async fn api(f: &Fixture, token: &str, path: &str) -> (u16, Value) {
    f.api(token, Method::GET, path, None).await
}

fn org_storage(f: &Fixture) -> Storage {
    Storage::local(f.options.data_dir.join("sessions"))
        .within(&f.org.to_string())
        .unwrap()
}

/// Runs `verify` through the API and the CLI: both must fail, naming `place`.
async fn verify_fails(f: &Fixture, what: &str, place: &str) {
    let (status, body) = api(f, BOOTSTRAP_TOKEN, "/sessions/build-42/verify").await;
    assert_eq!(status, 200, "{what}: {body}");
    assert_eq!(body["ok"], false, "{what}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(place),
        "{what}: expected {place:?} in {error:?}"
    );
    let (ok, out, err) = admin_cli(&f.server, &["session", "verify", "build-42"]);
    assert!(!ok, "{what}: the CLI must exit non-zero: {out}");
    assert!(err.contains(place), "{what}: expected {place:?} in {err:?}");
}

#[tokio::test]
async fn sessions_list_show_replay_and_verify_and_tampering_is_named() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let dir = f.options.data_dir.clone();
        record_request(&f.store, &dir, f.org, "build-42", "user:alice").await;
        record_request(&f.store, &dir, f.org, "build-42", "automation:crew").await;
        record_request(&f.store, &dir, f.org, "solo-1", "user:alice").await;

        // Listed newest first, with callers and routes; filters apply to the whole session.
        let (status, list) = api(&f, BOOTSTRAP_TOKEN, "/sessions").await;
        assert_eq!(status, 200, "{list}");
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert_eq!(ids.len(), 2, "{list}");
        let build = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "build-42")
            .unwrap();
        assert_eq!(build["segments"], 2, "{build}");
        assert_eq!(
            build["callers"],
            json!(["automation:crew", "user:alice"]),
            "{build}"
        );
        assert_eq!(build["routes"], json!(["openai"]), "{build}");
        let (_, crew) = api(&f, BOOTSTRAP_TOKEN, "/sessions?caller=automation:crew").await;
        assert_eq!(crew.as_array().map(Vec::len), Some(1), "{crew}");
        assert_eq!(crew[0]["id"], "build-42", "{crew}");
        let (status, bad) = api(&f, BOOTSTRAP_TOKEN, "/sessions?since=yesterday").await;
        assert_eq!(
            (status, bad["field"].as_str()),
            (400, Some("since")),
            "{bad}"
        );

        // Show: the heads from the audit log and the store's view.
        let (status, shown) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42").await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["heads"].as_array().map(Vec::len), Some(2), "{shown}");
        assert_eq!(shown["heads"][1]["segment"], 1, "{shown}");
        assert_eq!(shown["stored"]["segments"], 2, "{shown}");
        assert_eq!(shown["stored"]["caller"], "user:alice", "{shown}");

        // Records: the masked exchange, in order.
        let (status, records) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42/records").await;
        assert_eq!(status, 200, "{records}");
        let all = records["records"].as_array().unwrap();
        assert_eq!(all.first().unwrap()["kind"], "segment", "{records}");
        assert!(
            records.to_string().contains("[MASKED:aws_secret_key]"),
            "{records}"
        );
        let (_, page) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42/records?limit=3").await;
        assert_eq!(page["records"].as_array().map(Vec::len), Some(3), "{page}");
        assert_eq!(page["next_after_seq"], 2, "{page}");
        let (_, rest) = api(
            &f,
            BOOTSTRAP_TOKEN,
            "/sessions/build-42/records?after_seq=2&limit=10000",
        )
        .await;
        assert_eq!(
            rest["records"].as_array().map(Vec::len),
            Some(all.len() - 3),
            "{rest}"
        );
        assert!(rest.get("next_after_seq").is_none(), "{rest}");

        // Verify: intact and anchored.
        let (status, verdict) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42/verify").await;
        assert_eq!(status, 200, "{verdict}");
        assert_eq!(
            (verdict["ok"].as_bool(), verdict["anchored"].as_bool()),
            (Some(true), Some(true)),
            "{verdict}"
        );
        assert_eq!(
            verdict["records"].as_u64(),
            Some(all.len() as u64),
            "{verdict}"
        );

        // The CLI, as another process with the owner's token.
        let (ok, out, err) = admin_cli(&f.server, &["session", "list"]);
        assert!(
            ok && out.contains("id=build-42") && out.contains("id=solo-1"),
            "{out}{err}"
        );
        let (ok, out, err) = admin_cli(&f.server, &["session", "show", "build-42", "-o", "text"]);
        assert!(
            ok && out.contains("segment 1 at") && out.contains("caller=automation:crew"),
            "{out}{err}"
        );
        let (ok, out, err) = admin_cli(&f.server, &["session", "replay", "build-42", "--no-wait"]);
        assert!(ok, "{err}");
        assert!(out.contains("> POST /v1/chat/completions"), "{out}");
        assert!(
            out.contains("[MASKED:email]") && out.contains("[MASKED:aws_secret_key]"),
            "{out}"
        );
        assert!(
            out.contains("< 200") && out.contains("== session build-42 segment 1"),
            "{out}"
        );
        assert!(!err.contains("warning"), "{err}");
        let (ok, out, err) = admin_cli(&f.server, &["session", "verify", "build-42"]);
        assert!(ok, "{out}{err}");
        assert!(
            out.contains("ok: ") && out.contains("in 2 segments, anchored: true"),
            "{out}"
        );

        // Ids are checked; unknown and other organizations' sessions are 404.
        let (status, bad) = api(&f, BOOTSTRAP_TOKEN, "/sessions/..x").await;
        assert_eq!(
            (status, bad["error"].as_str()),
            (400, Some("invalid_session_id")),
            "{bad}"
        );
        assert!(
            bad["message"].as_str().unwrap_or("").contains("dot"),
            "{bad}"
        );
        assert_eq!(api(&f, BOOTSTRAP_TOKEN, "/sessions/nope").await.0, 404);
        let other = other_org(f.store.as_ref()).await;
        record_request(&f.store, &dir, other, "theirs-1", "user:eve").await;
        record_request(&f.store, &dir, other, "build-42", "user:eve").await;
        for path in [
            "/sessions/theirs-1",
            "/sessions/theirs-1/records",
            "/sessions/theirs-1/verify",
        ] {
            let (status, body) = api(&f, BOOTSTRAP_TOKEN, path).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        let (_, list) = api(&f, BOOTSTRAP_TOKEN, "/sessions").await;
        assert!(!list.to_string().contains("theirs-1"), "{list}");
        let (_, shown) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42").await;
        assert!(!shown.to_string().contains("user:eve"), "{shown}");
        let (_, verdict) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42/verify").await;
        assert_eq!(
            verdict["ok"], true,
            "another org's same-named session is apart: {verdict}"
        );

        // A role without gateway access cannot read recordings; the default Member can.
        let (status, role) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                "/roles",
                Some(json!({"name": "auditor", "grants": {"audit_log": "read"}})),
            )
            .await;
        assert_eq!(status, 201, "{role}");
        let outsider = f.member("nogw@acme.example", "auditor").await;
        for path in [
            "/sessions",
            "/sessions/build-42",
            "/sessions/build-42/records",
            "/sessions/build-42/verify",
        ] {
            let (status, body) = api(&f, &outsider, path).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
        // The default Member (gateway read) sees only the sessions it took part in: the
        // recordings are other people's prompts and answers.
        let member = f.member("member@acme.example", "member").await;
        let (status, listed) = api(&f, &member, "/sessions").await;
        assert_eq!(status, 200, "{listed}");
        assert!(!listed.to_string().contains("build-42"), "{listed}");
        for path in [
            "/sessions/build-42",
            "/sessions/build-42/records",
            "/sessions/build-42/verify",
        ] {
            let (status, body) = api(&f, &member, path).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        // ...and does see one it took part in, with the others' requests in it.
        let member_id = f
            .store
            .find_user_by_email("member@acme.example")
            .await
            .unwrap()
            .unwrap()
            .id;
        record_request(&f.store, &dir, f.org, "pairing-1", "automation:crew").await;
        record_request(
            &f.store,
            &dir,
            f.org,
            "pairing-1",
            &format!("user:{member_id}"),
        )
        .await;
        let (status, listed) = api(&f, &member, "/sessions").await;
        assert_eq!(status, 200, "{listed}");
        assert!(listed.to_string().contains("pairing-1"), "{listed}");
        assert!(!listed.to_string().contains("build-42"), "{listed}");
        let (status, verdict) = api(&f, &member, "/sessions/pairing-1/verify").await;
        assert_eq!((status, &verdict["ok"]), (200, &json!(true)), "{verdict}");

        // Tampering, each undone before the next.
        let storage = org_storage(&f);
        let original = storage.get_segment("build-42", 1).await.unwrap();
        let mut flipped = original.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x01;
        storage
            .overwrite_segment("build-42", 1, flipped)
            .await
            .unwrap();
        verify_fails(&f, "a flipped byte", "segment 1").await;
        let (_, out, err) = admin_cli(&f.server, &["session", "replay", "build-42", "--no-wait"]);
        assert!(
            err.contains("does not verify") || out.is_empty(),
            "{out}{err}"
        );

        let text =
            String::from_utf8(zstd::stream::decode_all(original.as_slice()).unwrap()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        let cut =
            zstd::stream::encode_all(format!("{}\n", lines.join("\n")).as_bytes(), 3).unwrap();
        storage.overwrite_segment("build-42", 1, cut).await.unwrap();
        verify_fails(&f, "a deleted line", "segment 1 line 3").await;

        storage
            .overwrite_segment("build-42", 1, original[..original.len() - 7].to_vec())
            .await
            .unwrap();
        verify_fails(&f, "an object cut short", "segment 1").await;

        storage.delete_segment("build-42", 1).await.unwrap();
        verify_fails(&f, "the last segment deleted", "segment 1 is missing").await;

        storage
            .overwrite_segment("build-42", 1, original)
            .await
            .unwrap();
        let (_, verdict) = api(&f, BOOTSTRAP_TOKEN, "/sessions/build-42/verify").await;
        assert_eq!(verdict["ok"], true, "restored: {verdict}");

        // A session planted in the store with no audit event is found by no one but verify.
        let planted = SessionRecorder::new(storage.clone());
        let mut w = planted
            .open_segment("planted", SegmentMeta::default())
            .unwrap();
        w.response(200, std::iter::empty::<(&str, &str)>());
        w.close().await.unwrap();
        assert_eq!(api(&f, BOOTSTRAP_TOKEN, "/sessions/planted").await.0, 404);
        let (status, verdict) = api(&f, BOOTSTRAP_TOKEN, "/sessions/planted/verify").await;
        assert_eq!(
            (status, verdict["ok"].as_bool()),
            (200, Some(false)),
            "{verdict}"
        );
        assert!(
            verdict["error"]
                .as_str()
                .unwrap_or("")
                .contains("no gateway.request event"),
            "{verdict}"
        );
    }
}

/// Another organization, made straight in the store.
async fn other_org(store: &dyn Store) -> OrgId {
    let user = UserRow {
        id: UserId::new_random(),
        email: "eve@other.example".into(),
        created_at: 1,
    };
    store.create_user(&user).await.unwrap();
    let org = OrgRow {
        id: OrgId::new_random(),
        name: "Other".into(),
        created_at: 1,
    };
    store.create_org(&org, user.id, "owner").await.unwrap();
    org.id
}

#[tokio::test]
async fn with_recording_off_reading_a_session_says_so() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&Backend::Sqlite, dir.path()).env("KEYWARD_RECORDINGS", "off");
    let server = Server::start(&options);
    let store = crate::rbac::open_store(&Backend::Sqlite, dir.path()).await;
    let org: OrgId = org_id(&server).parse().unwrap();
    record_request(&store, dir.path(), org, "s1", "user:alice").await;
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &format!("{}/api/v1/sessions/s1/verify", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("recording_off")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("KEYWARD_RECORDINGS"),
        "{body}"
    );
}
