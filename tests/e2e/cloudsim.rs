//! `keyward cloudsim` driven from outside: state files, the demo world, the admin CLI, and
//! Keyward's own cloud clients against it (happy paths, every refusal, faults and retries).

use std::process::Command;

fn cloudsim(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("cloudsim")
        .args(args)
        .output()
        .expect("run keyward cloudsim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_state_files_are_refused_at_load_with_the_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[gcp]\nproject_id = \"keyward-demo\"\nproject_number = \"keyward-demo\"\n",
            "line 3: gcp.project_number",
        ),
        (
            "[gcp]\nproject_id = \"keyward-demo\"\nproject_number = \"1234\"\n\n[[gcp.providers]]\npool = \"keyward-pool\"\nid = \"kw-provider\"\nissuer = \"https://kw.example\"\nattribute_condition = \"assertion.organization_id = 'x'\"\n",
            "line 9: gcp.providers[0].attribute_condition",
        ),
        (
            "[aws]\naccount_id = \"123456789012\"\nregion = \"us-east-1\"\nsecrets = [{ name = \"a\", valu = \"x\" }]\n",
            "line 4",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (ok, _, stderr) = cloudsim(&[
            "--state",
            path.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ]);
        assert!(!ok, "case {i} should be refused");
        assert!(
            stderr.contains(expected),
            "case {i}: expected {expected:?} in {stderr}"
        );
        assert!(
            stderr.contains(path.to_str().unwrap()),
            "case {i} names the file: {stderr}"
        );
    }
}

#[test]
fn a_world_is_required_and_print_ca_prints_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = cloudsim(&["--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("--state") && stderr.contains("--demo"),
        "{stderr}"
    );
    let (ok, stdout, _) = cloudsim(&["--print-ca", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(ok);
    assert!(
        stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{stdout}"
    );
    let (_, again, _) = cloudsim(&["--print-ca", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(stdout, again, "the CA is kept in the data dir");
}
