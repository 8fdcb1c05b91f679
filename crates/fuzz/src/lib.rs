//! Fuzz target bodies for issue 20: each `pub fn <target>(data: &[u8])` parses or verifies
//! `data` the way the product does and asserts the invariants that must hold for every input
//! (a roundtrip, split-invariance, a verifier that never accepts what its key did not sign), not
//! only the absence of a panic.
//!
//! Two drivers call them: the smoke tests (`tests/smoke.rs`, this crate's [`engine`]: the
//! checked-in corpus, then seeded mutations for `KEYWARD_FUZZ_SECONDS`) and cargo-fuzz
//! (`fuzz/` at the repository root, libFuzzer with coverage, run by `scripts/fuzz`).
//!
//! A panic is the finding: the harness itself may `expect` on its fixtures and `assert!` its
//! invariants.

pub mod engine;
mod http_facts;
mod jose;
mod mask;
mod routes;
mod saml;
mod secrets;
mod state;

pub use crate::http_facts::cedar_request;
pub use crate::jose::{jwks, jwt};
pub use crate::mask::mask_stream;
pub use crate::routes::route_toml;
pub use crate::saml::{saml_c14n, saml_response};
pub use crate::secrets::secret_ref;
pub use crate::state::cloudsim_state;

/// One fuzz target: its name (the corpus directory and the cargo-fuzz target), its body, the
/// tokens the mutation engine inserts, and inputs built at run time (e.g. tokens signed by a key
/// generated in this process, which no checked-in file can hold).
pub struct Target {
    pub name: &'static str,
    pub body: fn(&[u8]),
    pub dict: &'static [&'static [u8]],
    pub seeds: fn() -> Vec<Vec<u8>>,
}

fn no_seeds() -> Vec<Vec<u8>> {
    Vec::new()
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "jwt",
        body: jwt,
        dict: jose::JWT_DICT,
        seeds: jose::jwt_seeds,
    },
    Target {
        name: "jwks",
        body: jwks,
        dict: jose::JWKS_DICT,
        seeds: jose::jwks_seeds,
    },
    Target {
        name: "secret_ref",
        body: secret_ref,
        dict: secrets::DICT,
        seeds: no_seeds,
    },
    Target {
        name: "saml_c14n",
        body: saml_c14n,
        dict: saml::DICT,
        seeds: no_seeds,
    },
    Target {
        name: "saml_response",
        body: saml_response,
        dict: saml::DICT,
        seeds: no_seeds,
    },
    Target {
        name: "cedar_request",
        body: cedar_request,
        dict: http_facts::DICT,
        seeds: no_seeds,
    },
    Target {
        name: "mask_stream",
        body: mask_stream,
        dict: mask::DICT,
        seeds: no_seeds,
    },
    Target {
        name: "cloudsim_state",
        body: cloudsim_state,
        dict: state::DICT,
        seeds: no_seeds,
    },
    Target {
        name: "route_toml",
        body: route_toml,
        dict: routes::DICT,
        seeds: no_seeds,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs the smoke of target `name` (see [`engine::smoke`]).
pub fn smoke(name: &str) -> engine::Report {
    let Some(t) = target(name) else {
        panic!("no fuzz target named {name}");
    };
    engine::smoke(t.name, t.body, t.dict, (t.seeds)())
}
