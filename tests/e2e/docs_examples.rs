//! The README's and docs/' marked shell examples, run exactly as written so they cannot drift.
//!
//! A ```sh block preceded by `<!-- test: <group> -->` belongs to that group; a ```text block
//! preceded by `<!-- test: <group> output -->` lists lines the group's output must show: `…` stands
//! for any text, so the pieces between them must appear, in order, on one line. Group `quickstart` (the README's) runs alone; every other group runs
//! after the quickstart's blocks, then the blocks of group `quickstart-stop` end the processes.
//! Each group runs with bash -e in an empty directory, offline, with the test build's `keyward`
//! first on PATH and a free port in `KEYWARD_URL`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Pages whose examples are checked, relative to the workspace root.
const PAGES: &[&str] = &[
    "README.md",
    "docs/issuer.md",
    "docs/workload-identity.md",
    "docs/secrets.md",
    "docs/runtime.md",
    "docs/people.md",
    "docs/rbac.md",
    "docs/settings.md",
    "docs/operations.md",
    "docs/approvals.md",
    "docs/gateway-masking.md",
];

const TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
struct Block {
    page: String,
    line: usize,
    group: String,
    output: bool,
    text: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every marked block of `text` (page `page`), in order.
fn marked_blocks(page: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let marker = lines[i]
            .trim()
            .strip_prefix("<!-- test:")
            .and_then(|m| m.strip_suffix("-->"));
        let Some(marker) = marker else {
            i += 1;
            continue;
        };
        let mut words = marker.split_whitespace();
        let group = words.next().unwrap_or_default().to_owned();
        let output = words.next() == Some("output");
        let fence = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
        let expected = if output { "```text" } else { "```sh" };
        assert_eq!(
            fence,
            expected,
            "{page}:{}: the marker must be followed by a {expected} block",
            i + 1
        );
        let start = i + 2;
        let end = (start..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .unwrap_or_else(|| panic!("{page}:{}: unterminated block", i + 2));
        blocks.push(Block {
            page: page.to_owned(),
            line: i + 3,
            group,
            output,
            text: lines[start..end].join("\n"),
        });
        i = end + 1;
    }
    blocks
}

fn all_blocks() -> Vec<Block> {
    let root = root();
    PAGES
        .iter()
        .filter_map(|page| {
            let text = std::fs::read_to_string(root.join(page)).ok()?;
            Some(marked_blocks(page, &text))
        })
        .flatten()
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The script for `blocks`: each block as written, preceded by a line naming it for the error trap.
fn script(blocks: &[&Block]) -> String {
    // errtrace: a command failing inside a shell function (the README's `premium`) names itself too.
    let mut s = String::from(
        "set -E\ntrap 'KEYWARD_DOCS_STATUS=$?; echo \"docs example failed: $KEYWARD_DOCS_BLOCK: $BASH_COMMAND exited $KEYWARD_DOCS_STATUS\" >&2' ERR\n",
    );
    for b in blocks {
        s.push_str(&format!(
            "KEYWARD_DOCS_BLOCK='{} block at line {}'\n{}\n",
            b.page, b.line, b.text
        ));
    }
    s
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `script` with bash -e in a fresh directory; kills whatever it left running.
fn run_script(script: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_keyward")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-e")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("LANG", "C.UTF-8")
        .env("KEYWARD_URL", format!("https://127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(stdout));
    let err = read(Box::new(stderr));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Background servers the script started (and did not stop, on failure) share its group.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
    let mut stderr = err.join().unwrap();
    if status.is_none() {
        stderr.push_str(&format!("\n(timed out after {TIMEOUT:?})"));
    }
    if !status.is_some_and(|s| s.success()) {
        // What the servers the script started said (serve.log, gateway.log, …): a request that
        // failed with curl -s shows nothing else.
        let mut logs: Vec<_> = std::fs::read_dir(dir.path())
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log" || e == "out"));
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            stderr.push_str(&format!(
                "\n--- {} (last 20 lines)\n{}",
                log.file_name().unwrap_or_default().to_string_lossy(),
                last_lines(&text, 20)
            ));
        }
    }
    Outcome {
        ok: status.is_some_and(|s| s.success()),
        stdout: out.join().unwrap(),
        stderr,
    }
}

/// Whether `line` shows `want`: its pieces between `…` appear in `line` in order.
fn shows(line: &str, want: &str) -> bool {
    let mut rest = line;
    for piece in want.split('…').filter(|p| !p.is_empty()) {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `group` (after the quickstart unless it is the quickstart) and checks its output blocks.
fn run_group(group: &str) -> Outcome {
    let blocks = all_blocks();
    let of = |g: &str| -> Vec<&Block> {
        blocks
            .iter()
            .filter(|b| b.group == g && !b.output)
            .collect()
    };
    let mut chosen = of("quickstart");
    assert!(!chosen.is_empty(), "the README has no quickstart block");
    if group != "quickstart" {
        let own = of(group);
        assert!(!own.is_empty(), "no block marked `<!-- test: {group} -->`");
        chosen.extend(own);
    }
    chosen.extend(of("quickstart-stop"));
    let outcome = run_script(&script(&chosen));
    // stderr first and stdout's end only: CI logs keep the start and end of a long message.
    assert!(
        outcome.ok,
        "group {group} failed\n--- stderr\n{}\n--- stdout (last 40 lines)\n{}",
        outcome.stderr,
        last_lines(&outcome.stdout, 40)
    );
    for expected in blocks.iter().filter(|b| b.group == group && b.output) {
        for want in expected.text.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                outcome.stdout.lines().any(|line| shows(line, want)),
                "{} block at line {}: no output line shows {want:?}\n--- stdout\n{}\n--- stderr\n{}",
                expected.page,
                expected.line,
                outcome.stdout,
                outcome.stderr
            );
        }
    }
    outcome
}

#[test]
fn readme_quickstart_runs_as_written_and_reads_a_secret_from_each_cloud() {
    let outcome = run_group("quickstart");
    for store in [
        "GCP Secret Manager:",
        "Azure Key Vault:",
        "AWS Secrets Manager:",
    ] {
        let line = outcome
            .stdout
            .lines()
            .find(|l| l.starts_with(store))
            .unwrap_or_else(|| panic!("no {store} line in\n{}", outcome.stdout));
        assert!(line.contains("-demo-"), "{line}");
    }
}

#[test]
fn docs_every_marked_group_runs() {
    let mut groups: Vec<String> = all_blocks()
        .into_iter()
        .map(|b| b.group)
        .filter(|g| g != "quickstart" && g != "quickstart-stop")
        .collect();
    groups.sort();
    groups.dedup();
    for group in groups {
        run_group(&group);
    }
}

#[test]
fn docs_marker_parsing_finds_blocks_and_their_lines() {
    let text =
        "# T\n<!-- test: g -->\n```sh\necho hi\n```\n<!-- test: g output -->\n```text\nhi…\n```\n";
    let blocks = marked_blocks("x.md", text);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].text, "echo hi");
    assert_eq!(blocks[0].line, 4);
    assert!(blocks[1].output);
}

#[test]
fn docs_expected_output_pieces_must_appear_in_order_on_one_line() {
    assert!(shows("id=1  state=pending  route=r", "id=…state=pending…"));
    assert!(shows(
        "{\"error\":\"x\",\"ids\":[\"p\"]}",
        "{\"error\":\"x\",…\"p\"…"
    ));
    assert!(!shows("state=pending  id=1", "id=…state=pending"));
    assert!(!shows("ok: 1 routes", "ok: 2 routes"));
}

/// Every `"NAME"` string literal with one of `prefixes` in the product sources before their tests.
fn variables_read(prefixes: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let product = text.split("#[cfg(test)]").next().unwrap_or_default();
        for piece in product.split('"').skip(1).step_by(2) {
            let is_name = !piece.is_empty()
                && !piece.ends_with('_')
                && piece
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_name && prefixes.iter().any(|p| piece.starts_with(p)) {
                names.push(piece.to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn docs_settings_name_every_variable_the_code_reads() {
    let page = std::fs::read_to_string(root().join("docs/settings.md")).unwrap();
    let names = variables_read(&[
        "KEYWARD_",
        "AUTH_",
        "SAML_",
        "OIDC_",
        "ENTRA_ID_",
        "OKTA_",
        "AUTH0_",
        "KEYCLOAK_",
        "WORKOS_",
    ]);
    assert!(names.len() > 40, "{names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !page.contains(&format!("`{n}`")) && !page.contains(&format!("`{n}=")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/settings.md does not name {missing:?}"
    );
}
