//! The fuzz smoke: per target, the checked-in corpus (crates/fuzz/corpus/<target>) and the
//! target's built-in seeds, then seeded mutations for `KEYWARD_FUZZ_SECONDS` seconds (10 when
//! unset; scripts/test sets 60). One test per target so nextest runs them side by side.
//! A failure prints the seed (`KEYWARD_FUZZ_SEED`) and the input as base64 and hex.

fn smoke(name: &str) {
    let report = keyward_fuzz::smoke(name);
    assert!(
        report.replayed > 0,
        "target {name} has no corpus: crates/fuzz/corpus/{name} is empty"
    );
}

#[test]
fn fuzz_jwt() {
    smoke("jwt");
}

#[test]
fn fuzz_jwks() {
    smoke("jwks");
}

#[test]
fn fuzz_secret_ref() {
    smoke("secret_ref");
}

#[test]
fn fuzz_saml_c14n() {
    smoke("saml_c14n");
}

#[test]
fn fuzz_saml_response() {
    smoke("saml_response");
}

#[test]
fn fuzz_cedar_request() {
    smoke("cedar_request");
}

#[test]
fn fuzz_mask_stream() {
    smoke("mask_stream");
}

#[test]
fn fuzz_cloudsim_state() {
    smoke("cloudsim_state");
}

#[test]
fn fuzz_route_toml() {
    smoke("route_toml");
}

#[test]
fn every_target_has_a_smoke_test_and_a_cargo_fuzz_target() {
    let this = include_str!("smoke.rs");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for t in keyward_fuzz::TARGETS {
        assert!(
            this.contains(&format!("fn fuzz_{}()", t.name)),
            "no smoke test for target {}",
            t.name
        );
        let file = root.join("fuzz_targets").join(format!("{}.rs", t.name));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("keyward_fuzz::{}(data)", t.name)),
            "{} does not call keyward_fuzz::{}",
            file.display(),
            t.name
        );
    }
}

/// Writes the seeds drawn from the project's own fixtures into crates/fuzz/corpus (run once by
/// hand when they change: `cargo test -p keyward-fuzz --test smoke -- --ignored`): tokens and
/// key sets of a key generated now, the cloudsim demo world, the route files of the docs, the
/// samlify responses.
#[test]
#[ignore = "writes the checked-in seed corpus"]
fn write_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = keyward_fuzz::engine::corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    for t in ["jwt", "jwks"] {
        let target = keyward_fuzz::target(t).unwrap();
        for (i, seed) in (target.seeds)().iter().enumerate() {
            write(t, &format!("minted-{i}"), seed);
        }
    }
    let state = keyward_cloudsim::demo::state_toml(
        "https://127.0.0.1:8443",
        "b1e7c3a4-0000-4000-8000-000000000001",
        Some("deploy"),
    );
    write("cloudsim_state", "demo", state.as_bytes());
    let broken =
        std::fs::read(root.join("../../tests/fixtures/cloudsim-broken-world.toml")).unwrap();
    write("cloudsim_state", "broken-world", &broken);
    for doc in ["gateway", "gateway-masking", "approvals", "api"] {
        let text = std::fs::read_to_string(root.join(format!("../../docs/{doc}.md"))).unwrap();
        let mut n = 0;
        for block in text.split("```toml\n").skip(1) {
            let Some((body, _)) = block.split_once("```") else {
                continue;
            };
            if body.contains("[[route]]") {
                write("route_toml", &format!("docs-{doc}-{n}"), body.as_bytes());
                n += 1;
            }
        }
    }
    for entry in std::fs::read_dir(root.join("fixtures/saml")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            write("saml_response", &name, &bytes);
            write("saml_c14n", &name, &bytes);
        }
    }
}
