//! The auditor's script in docs/gateway-sessions.md, run with python3 on a real recording: it
//! agrees with `verify` on the head, and rejects a tampered line. Skipped when python3 is absent.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{decompress, edit_lines, record_session, recorder};
use keyward_recording::Storage;

fn script_from_docs() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/gateway-sessions.md"
    ))
    .unwrap();
    let start = doc.find("```python\n").expect("a python block in the docs") + 10;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

fn run_script(script: &std::path::Path, session: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("python3")
        .arg(script)
        .arg(session)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn session_text(storage: &Storage, session: &str) -> String {
    let mut text = String::new();
    for s in storage.list_segments(session).await.unwrap() {
        text += &decompress(&storage.get_segment(session, s.segment).await.unwrap());
    }
    text
}

#[tokio::test]
async fn the_documented_python_script_verifies_a_recording_and_catches_an_edit() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path().join("store"));
    let (rec, clock) = recorder(storage.clone());
    let heads = record_session(&rec, &clock, "audit-me", 3).await;
    let script = dir.path().join("verify_session.py");
    std::fs::write(&script, script_from_docs()).unwrap();

    let (ok, out) = run_script(
        &script,
        "audit-me",
        &session_text(&storage, "audit-me").await,
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        format!("ok 30 records, head {}", heads[2].head_hash)
    );

    // The wrong session id: the genesis differs.
    let (ok, out) = run_script(
        &script,
        "someone-else",
        &session_text(&storage, "audit-me").await,
    );
    assert!(!ok && out.contains("record 1 "), "{out}");

    edit_lines(&storage, "audit-me", 1, |lines| {
        lines[2] = lines[2].replace("hello", "jello");
    })
    .await;
    let (ok, out) = run_script(
        &script,
        "audit-me",
        &session_text(&storage, "audit-me").await,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("record 13 (seq 12): hash does not match"),
        "{out}"
    );
}
