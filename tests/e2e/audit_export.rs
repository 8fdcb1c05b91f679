//! `keyward audit export` (issue 19, SPEC §11): JSON lines a SIEM can take, checked offline by
//! `keyward audit verify --file`. An edited byte, a deleted line or a swapped pair is named by
//! its line; an export starting mid-chain verifies from its first event's prev_hash.

use serde_json::Value;

use crate::common::{self, Server, ServerOptions};

fn verify_file(options: &ServerOptions, lines: &[String]) -> (bool, String) {
    let file = options.data_dir.join("check.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, out, err) = common::keyward_cli(
        options,
        &["audit", "verify", "--file", file.to_str().unwrap()],
    );
    (ok, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_verifies_offline_and_any_edit_is_named_by_its_line() {
    common::install_crypto();
    for backend in common::backends().await {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let (_, token) = common::automation_with_token(&server, "crew").await;
        for _ in 0..4 {
            let (status, _) = common::mint(&server, &token, "sts.amazonaws.com").await;
            assert_eq!(status, 200);
        }
        drop(server);

        let path = dir.path().join("export.jsonl");
        let (ok, _, err) = common::keyward_cli(
            &options,
            &[
                "audit",
                "export",
                "--since",
                "1h",
                "--format",
                "jsonl",
                "--output",
                path.to_str().unwrap(),
            ],
        );
        assert!(ok, "{name}: {err}");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert!(lines.len() >= 6, "{name}: {text}");
        let events: Vec<Value> = lines[..lines.len() - 1]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (i, e) in events.iter().enumerate() {
            for field in ["seq", "at", "kind", "actor", "data", "prev_hash", "hash"] {
                assert!(
                    !e[field].is_null(),
                    "{name}: line {} lacks {field}: {e}",
                    i + 1
                );
            }
        }
        assert_eq!(events[0]["seq"], 1, "{name}: --since 1h takes every event");
        let end: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(end["export_end"]["events"], events.len(), "{end}");

        let (ok, out) = verify_file(&options, &lines);
        assert!(ok, "{name}: {out}");
        assert!(
            out.contains(&format!("ok: {} audit events", events.len())),
            "{out}"
        );

        // One byte of line 3's actor changed.
        let mut edited = lines.clone();
        let at = edited[2].find("\"actor\":\"").unwrap() + 9;
        let mut bytes = edited[2].clone().into_bytes();
        bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
        edited[2] = String::from_utf8(bytes).unwrap();
        let (ok, out) = verify_file(&options, &edited);
        assert!(!ok, "{name}: {out}");
        assert!(out.contains("first broken line: 3"), "{name}: {out}");

        // Line 2 deleted; lines 3 and 4 swapped; the last event dropped.
        let mut deleted = lines.clone();
        deleted.remove(1);
        let (ok, out) = verify_file(&options, &deleted);
        assert!(!ok && out.contains("first broken line: 2"), "{name}: {out}");
        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        let (ok, out) = verify_file(&options, &swapped);
        assert!(!ok && out.contains("first broken line: 3"), "{name}: {out}");
        let mut cut = lines.clone();
        cut.remove(cut.len() - 2);
        let (ok, out) = verify_file(&options, &cut);
        assert!(!ok && out.contains("end record"), "{name}: {out}");

        // From a later event's time on: a mid-chain export, and to stdout.
        let later = events
            .iter()
            .position(|e| e["at_ms"] != events[0]["at_ms"])
            .unwrap_or_else(|| panic!("{name}: every event in one millisecond"));
        let since = events[later]["at"].as_str().unwrap();
        let (ok, out, err) = common::keyward_cli(&options, &["audit", "export", "--since", since]);
        assert!(ok, "{name}: {err}");
        let tail: Vec<String> = out.lines().map(str::to_owned).collect();
        let first: Value = serde_json::from_str(&tail[0]).unwrap();
        let seq = first["seq"].as_u64().unwrap() as usize;
        assert!(seq > 1, "{name}: {first}");
        assert_eq!(first["prev_hash"], events[seq - 2]["hash"], "{name}");
        let (ok, out) = verify_file(&options, &tail);
        assert!(ok, "{name}: {out}");

        // The same export checked with another master key does not verify.
        let (_, other) = keyward_store::crypto::MasterKey::generate().unwrap();
        let foreign = ServerOptions::new(&backend, dir.path()).env("KEYWARD_MASTER_KEY", &other);
        let (ok, out) = verify_file(&foreign, &lines);
        assert!(!ok && out.contains("first broken line: 1"), "{name}: {out}");
    }
}
