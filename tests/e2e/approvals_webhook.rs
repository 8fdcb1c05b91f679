//! The approval webhook (issue 17 item 1): each new request is announced to a real HTTP
//! receiver with an HMAC-SHA256 signature it can verify, and retried when refused.

use std::time::Duration;

use keyward_server::domain::approval_webhook::{
    ApprovalWebhook, SIGNATURE_HEADER, verify_signature,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::approvals::{approval_events, audit_verifies, fixture};
use crate::common::*;

const SECRET: &[u8] = b"webhook-shared-secret-for-tests";

/// One received POST: its headers (lower-cased names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A receiver answering 503 to the first POST and 200 after, handing each over.
async fn receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/approvals", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed mid-request");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap_or(0);
                    break (i + 4, length);
                }
            };
            while buf.len() < head_end + length {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                .collect();
            served += 1;
            let status = if served == 1 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            sock.write_all(answer.as_bytes()).await.unwrap();
            let _ = tx
                .send(Received {
                    headers,
                    body: buf[head_end..head_end + length].to_vec(),
                })
                .await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn each_new_request_is_announced_signed_and_retried() {
    let (url, mut rx) = receiver().await;
    let hook = ApprovalWebhook::new(
        &url,
        SECRET.to_vec(),
        Some("https://keyward.acme.example".into()),
    )
    .unwrap();
    let f = fixture(&Backend::Sqlite, Some(hook)).await;
    let row = f.request("ci@acme.example", None).await;

    // Refused once (503), delivered on the retry: both carry a valid signature of the body.
    for attempt in 1..=2 {
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt} never arrived"))
            .unwrap();
        let header = got
            .headers
            .iter()
            .find(|(k, _)| *k == SIGNATURE_HEADER.to_lowercase())
            .map(|(_, v)| v.clone())
            .expect("signature header");
        assert!(
            header.starts_with("t=") && header.contains(",v1="),
            "{header}"
        );
        let t = verify_signature(SECRET, &header, &got.body).expect("the signature verifies");
        assert!((t - crate::approvals::now()).abs() < 60);
        assert!(verify_signature(b"another-secret-entirely", &header, &got.body).is_none());
        let mut tampered = got.body.clone();
        tampered[0] ^= 1;
        assert!(verify_signature(SECRET, &header, &tampered).is_none());

        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["id"], row.id.to_string());
        assert_eq!(body["org_id"], f.org.to_string());
        assert_eq!(body["route"], "openai");
        assert_eq!(body["reason"], "nightly eval run needs gpt-4o");
        assert_eq!(body["requester"]["subject"], "ci@acme.example");
        assert_eq!(body["summary"]["model"], "gpt-4o");
        assert!(
            body["decide"]["cli"]
                .as_str()
                .unwrap()
                .contains(&format!("keyward approval approve {}", row.id))
        );
        assert_eq!(
            body["decide"]["api"],
            format!("https://keyward.acme.example/api/v1/approvals/{}", row.id)
        );
        // The secret itself is never in what is sent.
        assert!(!String::from_utf8_lossy(&got.body).contains("webhook-shared-secret"));
    }
    assert!(
        approval_events(&f)
            .await
            .contains(&("approval.requested".into(), row.id.to_string()))
    );
    audit_verifies(&f);
}
