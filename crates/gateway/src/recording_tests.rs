//! Recording through the real pipeline (stand-in identity and credential phases, a real
//! upstream, a real local store): what a segment holds, what it never holds, and that its head
//! reaches the audit event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use keyward_recording::{SegmentHead, Storage, read_session, verify};
use serde_json::Value;

use super::*;
use crate::audit::AuditReceiver;
use crate::pipeline::Gateway;
use crate::pipeline::tests::{AllowAll, echo_upstream, request, route_to, test_gateway};

const ORG: &str = "00000000-0000-4000-8000-000000000001";
// Shaped like an AWS access key id; the route does not mask, the recording must.
const AWS_KEY_ID: &str = "AKIAQWERTYUIOPASDFGH";

fn recorded_gateway(dir: &std::path::Path, addr: std::net::SocketAddr) -> (Gateway, AuditReceiver) {
    let mut route = route_to(addr, Arc::new(AllowAll));
    route.org = Some(ORG.parse().unwrap());
    route.inspect_limit = 4096;
    let (mut gateway, rx) = test_gateway(vec![route]);
    gateway.recordings = Some(Arc::new(Recordings::new(Storage::local(dir))));
    (gateway, rx)
}

async fn send(
    gateway: &Gateway,
    rx: &mut AuditReceiver,
    request: http::Request<Full<Bytes>>,
) -> (
    StatusCode,
    http::HeaderMap,
    String,
    crate::audit::GatewayEvent,
) {
    let response = gateway.handle(request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&body).into_owned(),
        event,
    )
}

fn head_of(event: &crate::audit::GatewayEvent) -> SegmentHead {
    let s = &event.data["session"];
    assert!(s.get("error").is_none(), "recording failed: {s}");
    SegmentHead {
        session_id: s["id"].as_str().unwrap().to_owned(),
        segment: s["segment"].as_u64().unwrap(),
        lines: s["lines"].as_u64().unwrap(),
        head_hash: s["head_hash"].as_str().unwrap().to_owned(),
        bytes: s["bytes"].as_u64().unwrap(),
    }
}

#[tokio::test]
async fn a_request_is_one_masked_segment_whose_head_is_in_its_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = echo_upstream().await;
    let (gw, mut rx) = recorded_gateway(dir.path(), addr);
    let body = format!(r#"{{"note":"key {AWS_KEY_ID}"}}"#);
    let mut req = request("POST", "/openai/chat?q=1", Some("good"), &body);
    req.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let (status, headers, answer, event) = send(&gw, &mut rx, req).await;
    assert_eq!(status, StatusCode::OK);
    // The route does not mask: the caller gets what the upstream said.
    assert!(answer.contains(AWS_KEY_ID));
    let session = headers[SESSION_HEADER].to_str().unwrap().to_owned();
    let head = head_of(&event);
    assert_eq!(head.session_id, session);
    assert_eq!(head.segment, 0);

    let storage = Storage::local(dir.path()).within(ORG).unwrap();
    let report = verify(&storage, &session, std::slice::from_ref(&head))
        .await
        .unwrap();
    assert!(report.anchored);
    let records = read_session(&storage, &session).await.unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "segment",
            "identity",
            "request",
            "decision",
            "response",
            "response_chunk",
            "timing",
            "close"
        ]
    );
    assert_eq!(records[1].data["subject"], "automation:bot");
    assert_eq!(records[2].data["method"], "POST");
    assert_eq!(records[2].data["path"], "/openai/chat?q=1");
    assert_eq!(
        records[3].data["policy_ids"],
        serde_json::json!(["allow-all"])
    );
    assert_eq!(records[4].data["status"], 200);
    let stored = serde_json::to_string(&records).unwrap();
    // Neither in the request nor in the echoed response, nor any caller credential.
    assert!(!stored.contains(AWS_KEY_ID), "{stored}");
    assert!(stored.contains("[MASKED:aws_access_key_id]"), "{stored}");
    for secret in ["caller-secret", "session=caller", "Bearer good"] {
        assert!(!stored.contains(secret), "{secret} was recorded");
    }
}

#[tokio::test]
async fn a_declared_session_chains_its_requests_and_never_reaches_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = echo_upstream().await;
    let (gw, mut rx) = recorded_gateway(dir.path(), addr);
    let mut heads = Vec::new();
    for _ in 0..3 {
        let mut req = request("GET", "/openai/models", Some("good"), "");
        req.headers_mut()
            .insert(SESSION_HEADER, "build-42".parse().unwrap());
        let (status, headers, answer, event) = send(&gw, &mut rx, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[SESSION_HEADER], "build-42");
        let echo: Value = serde_json::from_str(&answer).unwrap();
        assert!(echo["headers"].get(SESSION_HEADER).is_none());
        heads.push(head_of(&event));
    }
    assert_eq!(
        heads.iter().map(|h| h.segment).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let storage = Storage::local(dir.path()).within(ORG).unwrap();
    let report = verify(&storage, "build-42", &heads).await.unwrap();
    assert_eq!(report.segments.len(), 3);
    // Cut the last segment: the audit heads notice.
    std::fs::remove_file(dir.path().join(ORG).join("build-42/00000002.jsonl.zst")).unwrap();
    let error = verify(&storage, "build-42", &heads).await.unwrap_err();
    assert!(error.to_string().contains("segment 2"), "{error}");
}

#[tokio::test]
async fn a_malformed_session_id_is_refused_naming_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, hits) = echo_upstream().await;
    let (gw, mut rx) = recorded_gateway(dir.path(), addr);
    for bad in ["../other-org", ".hidden", "a b"] {
        let mut req = request("GET", "/openai/models", Some("good"), "");
        req.headers_mut()
            .insert(SESSION_HEADER, bad.parse().unwrap());
        let (status, _, answer, event) = send(&gw, &mut rx, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.contains(SESSION_HEADER), "{answer}");
        assert!(event.data.get("session").is_none());
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Nothing was written outside the organization's directory.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

#[tokio::test]
async fn an_unidentified_caller_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = echo_upstream().await;
    let (gw, mut rx) = recorded_gateway(dir.path(), addr);
    let (status, headers, _, event) =
        send(&gw, &mut rx, request("GET", "/openai/models", None, "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(SESSION_HEADER).is_none());
    assert!(event.data.get("session").is_none());
}
