//! The cloudsim state file (`keyward_cloudsim::state::State::parse`): TOML, then the semantic
//! checks with the line of the value they refuse.

use keyward_cloudsim::state::{State, StateError};

pub(crate) const DICT: &[&[u8]] = &[
    b"[gcp]\n",
    b"[azure]\n",
    b"[aws]\n",
    b"[[gcp.providers]]\n",
    b"[[gcp.secrets]]\n",
    b"[[aws.roles]]\n",
    b"[aws.roles.trust]\n",
    b"attribute_condition = \"",
    b"assertion.sub == '",
    b"' && ",
    b" || ",
    b"!",
    b".startsWith(",
    b" in [",
    b"\"\"\"",
    b"'''",
    b" = ",
    b"principalSet://iam.googleapis.com/",
    b"arn:aws:iam::123456789012:",
    b"11111111-1111-1111-1111-111111111111",
];

pub fn cloudsim_state(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match State::parse("state.toml", text) {
        Ok(state) => {
            let providers = state.file.gcp.as_ref().map_or(0, |g| g.providers.len());
            assert_eq!(
                state.gcp_rules.len(),
                providers,
                "one checked rule per GCP provider"
            );
        }
        Err(StateError::Invalid { line, .. }) => {
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(&line),
                "an error names line {line} of a {lines}-line file"
            );
        }
        Err(_) => {}
    }
}
