//! Session recording end to end (issue 17, acceptance c): the real `keyward gateway` records a
//! caller-declared session into a real S3-compatible server (moto's server mode), the real
//! `keyward serve` reads the same bucket, and the `keyward session` CLI lists, replays (masked,
//! with its original timing) and verifies it. Editing one byte, deleting a line, cutting an
//! object short or deleting the last segment in the bucket makes `verify` fail naming the place;
//! restored, it verifies again.

use std::time::{Duration, Instant};

use keyward_recording::{S3Credentials, Storage};
use tokio::io::AsyncWriteExt;

use crate::common::{self, BOOTSTRAP_TOKEN, Backend, Server, ServerOptions, admin_cli};
use crate::gateway_common::{GatewayOptions, GatewayProcess, write_routes};
use crate::moto::start_moto;

/// Shaped like an AWS access key id: the route does not mask, so the caller gets it and the
/// recording must not.
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const GAP: Duration = Duration::from_millis(150);

/// `/v1/stream`: three SSE events, 150 ms apart, the second holding an access key id.
async fn sse_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(_) = crate::gateway_common::read_request_head(&mut socket).await else {
                    return;
                };
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for event in [
                    "data: hello\n\n".to_owned(),
                    format!("data: key {KEY_ID}\n\n"),
                    "data: done\n\n".to_owned(),
                ] {
                    let frame = format!("{:x}\r\n{event}\r\n", event.len());
                    if socket.write_all(frame.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(GAP).await;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    url
}

fn credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".to_owned().into(),
        session_token: None,
    }
}

fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    admin_cli(server, args)
}

/// `verify` must fail and name `place`, on stderr, with exit status 1.
fn verify_fails(server: &Server, what: &str, place: &str) {
    let (ok, out, err) = cli(server, &["session", "verify", "build-7"]);
    assert!(!ok, "{what}: verify passed: {out}");
    assert!(err.contains(place), "{what}: expected {place:?} in {err:?}");
}

fn verify_passes(server: &Server, what: &str) {
    let (ok, out, err) = cli(server, &["session", "verify", "build-7"]);
    assert!(ok, "{what}: {err}");
    assert!(
        out.contains("3 segments") && out.contains("anchored: true"),
        "{what}: {out}"
    );
}

#[tokio::test]
async fn gateway_records_a_session_into_s3_that_the_cli_replays_and_verifies() {
    let Some(moto) = start_moto().await else {
        return;
    };
    common::install_crypto();
    let http = reqwest::Client::new();
    let bucket = http
        .put(format!("{}/keyward-rec", moto.url))
        .send()
        .await
        .unwrap();
    assert!(bucket.status().is_success(), "{}", bucket.status());
    let recordings = format!("s3://keyward-rec/gw?endpoint={}&region=us-east-1", moto.url);

    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, &dir.path().join("kw"));
    for (k, v) in [
        ("KEYWARD_RECORDINGS", recordings.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ] {
        options = options.env(k, v);
    }
    let server = Server::start(&options);
    let org = common::org_id(&server);
    let upstream = sse_upstream().await;
    let routes_dir = dir.path().join("routes");
    std::fs::create_dir_all(&routes_dir).unwrap();
    let config = write_routes(
        &routes_dir,
        &format!(
            r#"organization = "{org}"

[[route]]
name = "llm"
path_prefix = "/llm"
upstream = "{upstream}"
policy = 'permit(principal, action, resource);'
"#
        ),
    );
    let mut gateway_options = GatewayOptions::new(&options, &server, &config);
    gateway_options.env = options.env.clone();
    let gateway = GatewayProcess::start(&gateway_options);
    let client = gateway.client(false);

    for _ in 0..3 {
        let response = client
            .get(format!("{}/llm/stream", gateway.url))
            .bearer_auth(BOOTSTRAP_TOKEN)
            .header("x-keyward-session", "build-7")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-keyward-session"], "build-7");
        // The route does not mask: the caller gets the stream as the upstream sent it.
        assert!(response.text().await.unwrap().contains(KEY_ID));
    }

    // Segments are written after each response, their heads appended to the audit log after.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (ok, out, err) = cli(&server, &["session", "list"]);
        assert!(ok, "{err}");
        if out.contains("build-7") && verify_ok(&server) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session never verified: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    verify_passes(&server, "as recorded");

    // Replay shows the masked exchange and keeps its timing: three responses of two 150 ms gaps.
    let started = Instant::now();
    let (ok, out, err) = cli(&server, &["session", "replay", "build-7"]);
    let took = started.elapsed();
    assert!(ok, "{err}");
    assert!(!out.contains(KEY_ID), "the replay shows the key: {out}");
    assert!(out.contains("[MASKED:aws_access_key_id]"), "{out}");
    assert!(
        out.contains("data: hello") && out.contains("data: done"),
        "{out}"
    );
    assert!(
        took >= 6 * GAP - Duration::from_millis(100),
        "replayed in {took:?}"
    );
    let (ok, fast, _) = cli(&server, &["session", "replay", "build-7", "--speed", "0"]);
    assert!(ok);
    assert_eq!(fast.lines().count(), out.lines().count());

    // The attacker's moves, straight on the bucket.
    let storage = Storage::s3(&recordings, credentials())
        .unwrap()
        .within(&org.to_string())
        .unwrap();
    let original = storage.get_segment("build-7", 1).await.unwrap();
    let text = String::from_utf8(zstd::decode_all(original.as_slice()).unwrap()).unwrap();
    let compress = |t: &str| zstd::encode_all(t.as_bytes(), 3).unwrap();

    let edited = text.replacen("data: hello", "data: jello", 1);
    assert_ne!(edited, text);
    storage
        .overwrite_segment("build-7", 1, compress(&edited))
        .await
        .unwrap();
    verify_fails(&server, "one byte edited", "segment 1 line");

    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    let deleted = lines.join("\n") + "\n";
    storage
        .overwrite_segment("build-7", 1, compress(&deleted))
        .await
        .unwrap();
    verify_fails(&server, "a line deleted", "segment 1 line 3");

    storage
        .overwrite_segment("build-7", 1, original[..original.len() / 2].to_vec())
        .await
        .unwrap();
    verify_fails(&server, "an object cut short", "segment 1");

    storage
        .overwrite_segment("build-7", 1, original.clone())
        .await
        .unwrap();
    verify_passes(&server, "restored");

    let last = storage.get_segment("build-7", 2).await.unwrap();
    storage.delete_segment("build-7", 2).await.unwrap();
    verify_fails(&server, "the last segment deleted", "segment 2");
    storage.overwrite_segment("build-7", 2, last).await.unwrap();
    verify_passes(&server, "restored again");
}

fn verify_ok(server: &Server) -> bool {
    let (ok, out, _) = cli(server, &["session", "verify", "build-7"]);
    ok && out.contains("3 segments")
}
