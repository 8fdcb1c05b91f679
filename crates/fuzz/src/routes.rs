//! The gateway's route file (`keyward_policy::parse_route_file`: TOML with `[[route]]`,
//! `[route.credential]`, `[route.mask]`, inline and file policies), and the JSON form the API
//! stores the same routes in (`route_from_json`).

use keyward_policy::{RawRouteFile, parse_route_file, route_from_json};

pub(crate) const DICT: &[&[u8]] = &[
    b"[[route]]\n",
    b"[route.credential]\n",
    b"[route.mask]\n",
    b"[[route.mask.custom]]\n",
    b"name = \"",
    b"path_prefix = \"/",
    b"host = \"",
    b"upstream = \"https://",
    b"policies = [\"policy.cedar\"]\n",
    b"policy = '''\n",
    b"permit(principal, action, resource);\n",
    b"forbid(principal, action, resource) when { context.path like \"/admin*\" };\n",
    b"no_match = \"allow\"\n",
    b"inspect_limit = \"1MiB\"\n",
    b"timeout = \"5s\"\n",
    b"approval = \"async\"\n",
    b"detectors = [\"all\"]\n",
    b"json_paths = [\"$..password\"]\n",
    b"max_match_bytes = ",
    b"organization = \"",
    b"'''",
    b"\"\"\"",
];

const POLICY: &str = "@id(\"allow\")\npermit(principal, action, resource);\n";

/// A self-signed certificate, as the extra CA an `upstream_ca` file holds.
const CA_PEM: &str = include_str!("../fixtures/saml/idp-cert.pem");

/// The files a route file names: any `.cedar` is a policy, any `.pem` a CA, the rest missing.
fn read(name: &str) -> Result<String, String> {
    if name.ends_with(".cedar") {
        Ok(POLICY.to_owned())
    } else if name.ends_with(".pem") {
        Ok(CA_PEM.to_owned())
    } else {
        Err(format!("{name}: no such file"))
    }
}

pub fn route_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(raw) = toml::from_str::<RawRouteFile>(text) {
        // The JSON a stored route's `spec` is kept as reads back as the same route.
        for route in &raw.routes {
            let json = serde_json::to_value(route).expect("a parsed route serializes to JSON");
            let back = serde_json::from_value(json).expect("a route's JSON parses back");
            assert_eq!(route, &back, "route → JSON → route changed it");
        }
        // TOML written back parses to the same file (serializing may refuse shapes TOML
        // cannot write; reading what it wrote must not).
        if let Ok(printed) = toml::to_string(&raw) {
            let again: RawRouteFile = toml::from_str(&printed)
                .unwrap_or_else(|e| panic!("TOML written from a route file does not parse: {e}"));
            assert_eq!(again, raw, "route file → TOML → route file changed it");
        }
    }
    let lines = text.split('\n').count();
    match parse_route_file("routes.toml", text, &read) {
        Ok(file) => {
            assert!(
                !file.routes.is_empty(),
                "a route file without routes loaded"
            );
            let raw: RawRouteFile = toml::from_str(text).expect("a loaded route file parses");
            for (route, raw) in file.routes.iter().zip(&raw.routes) {
                // A route without files validates the same through the API.
                if raw.policies.is_none() && raw.upstream_ca.is_none() {
                    let json = serde_json::to_value(raw).expect("a route serializes");
                    let via_api = route_from_json(&json).unwrap_or_else(|e| {
                        panic!(
                            "route {} loads from a file but not through the API: {e}",
                            route.name
                        )
                    });
                    assert_eq!(via_api.name, route.name);
                    assert_eq!(via_api.upstream, route.upstream);
                }
            }
        }
        Err(e) => {
            if let Some(at) = e.location.as_ref().filter(|l| l.file == "routes.toml") {
                assert!(
                    (1..=lines).contains(&at.line) && at.column >= 1,
                    "an error points at {at} in a {lines}-line file"
                );
            }
        }
    }
}
