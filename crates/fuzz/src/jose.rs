//! JWT and JWKS: Keyward's access-token verifier (`keyward_jose::verify_access`) and the JWKS
//! model it reads, which is also what `/oauth2/jwks` serves.

use std::collections::HashSet;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_jose::{AccessClaims, Jwks, SigningKey, mint_access, verify_access};

const ISSUER: &str = "https://kw.example";
const AUDIENCE: &str = "keyward-api";
const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 60;

pub(crate) const JWT_DICT: &[&[u8]] = &[
    b".",
    b"eyJ",
    b"eyJhbGciOiJub25lIn0",
    b"eyJhbGciOiJIUzI1NiJ9",
    b"eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9",
    b"==",
    b"-_",
    b"AAAA",
];

pub(crate) const JWKS_DICT: &[&[u8]] = &[
    b"\"keys\"",
    b"\"kty\":\"RSA\"",
    b"\"kty\":\"oct\"",
    b"\"kid\":",
    b"\"n\":\"AA",
    b"\"e\":\"AQAB\"",
    b"\"alg\":\"RS256\"",
    b"\"use\":\"sig\"",
    b"{}",
    b"[]",
    b"null",
    b"\\u0000",
];

struct Fixture {
    key: SigningKey,
    jwks: Jwks,
    /// Tokens this process signed, the first one valid at `NOW`.
    tokens: Vec<String>,
    /// `header.payload` of each: the only signed parts a verifier may ever accept.
    signed: HashSet<String>,
}

fn claims(nbf: i64, exp: i64, aud: &str) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "user:6f0c1f7e-0000-4000-8000-000000000001".into(),
        aud: aud.into(),
        iat: nbf,
        nbf,
        exp,
        jti: "j-1".into(),
        client_id: "keyward-cli".into(),
        scope: "openid".into(),
        email: Some("ada@example.com".into()),
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::generate().expect("an RSA key is generated");
        let jwks = Jwks {
            keys: vec![key.public_jwk()],
        };
        let tokens: Vec<String> = [
            claims(NOW - 10, NOW + 3600, AUDIENCE),
            claims(NOW - 7200, NOW - 3600, AUDIENCE),
            claims(NOW + 3600, NOW + 7200, AUDIENCE),
            claims(NOW - 10, NOW + 3600, "another-api"),
            claims(i64::MIN, i64::MAX - LEEWAY, AUDIENCE),
        ]
        .iter()
        .map(|c| mint_access(&key, c).expect("the token is signed"))
        .collect();
        let signed = tokens
            .iter()
            .filter_map(|t| t.rsplit_once('.').map(|(signed, _)| signed.to_owned()))
            .collect();
        Fixture {
            key,
            jwks,
            tokens,
            signed,
        }
    })
}

pub(crate) fn jwt_seeds() -> Vec<Vec<u8>> {
    fixture()
        .tokens
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect()
}

pub(crate) fn jwks_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let mut other = f.jwks.clone();
    let mut renamed = f.key.public_jwk();
    renamed.kid = "another-kid".into();
    other.keys.insert(0, renamed);
    [&f.jwks, &other]
        .iter()
        .filter_map(|set| serde_json::to_vec(set).ok())
        .collect()
}

/// A token: refused unless its `header.payload` is one this process signed, and when accepted
/// its claims are within what the verifier promises (issuer, audience, window).
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    let Ok(claims) = verify_access(token, &f.jwks, ISSUER, AUDIENCE, NOW, LEEWAY) else {
        return;
    };
    let signed = token.rsplit_once('.').map(|(s, _)| s);
    assert!(
        signed.is_some_and(|s| f.signed.contains(s)),
        "verify_access accepted a token whose header and payload the key never signed"
    );
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, AUDIENCE);
    assert!(
        NOW < claims.exp.saturating_add(LEEWAY),
        "accepted an expired token"
    );
    assert!(
        NOW.saturating_add(LEEWAY) >= claims.nbf,
        "accepted a token before nbf"
    );
}

fn integer(b64: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    Some(bytes[start..].to_vec())
}

/// A JWKS document: what parses serializes and parses back to the same set, and a valid token
/// verifies against it only if the set holds the signing key itself under the token's kid.
pub fn jwks(data: &[u8]) {
    let Ok(set) = serde_json::from_slice::<Jwks>(data) else {
        return;
    };
    let text = serde_json::to_vec(&set).expect("a parsed JWKS serializes");
    let again: Jwks = serde_json::from_slice(&text).expect("a serialized JWKS parses");
    assert_eq!(again, set, "JWKS parse → serialize → parse changed the set");

    let f = fixture();
    let real = f.key.public_jwk();
    for token in &f.tokens[..1] {
        if verify_access(token, &set, ISSUER, AUDIENCE, NOW, LEEWAY).is_err() {
            continue;
        }
        let used = set
            .keys
            .iter()
            .find(|k| k.kid == real.kid && k.kty == "RSA");
        let Some(used) = used else {
            panic!("a token verified against a JWKS with no RSA key of its kid");
        };
        assert_eq!(
            (integer(&used.n), integer(&used.e)),
            (integer(&real.n), integer(&real.e)),
            "a token verified against a JWKS whose key of that kid is not the signing key"
        );
    }
}
