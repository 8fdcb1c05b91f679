//! The strict reading of a JWT: the header is checked before anything else (no `none`, no
//! shared-secret algorithms, no key carried or pointed to by the token itself), the signature
//! over the exact bytes received with the issuer's published key for that key's algorithm, and
//! only then the claims: issuer, audience, lifetime.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::IdentityError;
use super::jwks::Key;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 10;

/// The asymmetric algorithms a published key may be used with.
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Header parameters that bring their own key or a place to fetch one: trusting them would
/// let the token vouch for itself.
const KEY_CARRYING: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

fn refused(check: impl Into<String>) -> IdentityError {
    IdentityError::Refused {
        check: check.into(),
    }
}

/// Whether a bearer token has the shape of a JWT rather than an opaque Keyward token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// A JWT whose header passed the checks; its claims are not trusted yet.
pub struct Unverified<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// The claims as sent: only for choosing the issuer whose keys decide.
    pub claims: Map<String, Value>,
    /// `header.payload`, exactly as received: what the signature covers.
    signed: &'a str,
    signature: &'a str,
}

fn decode_part(part: &str, what: &str) -> Result<Map<String, Value>, IdentityError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| refused(format!("the token's {what} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(refused(format!("the token's {what} is not a JSON object"))),
    }
}

/// Splits the token and checks its header.
pub fn parse(token: &str) -> Result<Unverified<'_>, IdentityError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused(
            "the token is not a compact JWS (three base64url parts)",
        ));
    };
    let header = decode_part(h, "header")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| refused("the token's header names no alg"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(refused(
            "alg none is refused: an unsigned token proves nothing",
        ));
    }
    if alg.to_ascii_uppercase().starts_with("HS") {
        return Err(refused(format!(
            "alg {alg} is refused: a shared-secret signature proves nothing here; tokens must be signed with the issuer's published public key (RS256 or ES256)"
        )));
    }
    let alg = alg
        .parse::<Algorithm>()
        .ok()
        .filter(|a| ACCEPTED.contains(a))
        .ok_or_else(|| {
            refused(format!(
                "alg {alg:?} is not accepted; tokens must be signed with RS256/RS384/RS512, PS256/PS384/PS512 or ES256/ES384"
            ))
        })?;
    for name in KEY_CARRYING {
        if header.contains_key(name) {
            return Err(refused(format!(
                "the token's header carries `{name}`: a key embedded in or pointed to by the token is refused; only the issuer's published keys are used"
            )));
        }
    }
    if header.contains_key("crit") {
        return Err(refused(
            "the token's header lists critical extensions (`crit`) this gateway does not understand",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(refused("the token's kid is not a string")),
    };
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    let claims = decode_part(p, "payload")?;
    Ok(Unverified {
        alg,
        kid,
        typ,
        claims,
        signed: &token[..h.len() + 1 + p.len()],
        signature: s,
    })
}

impl Unverified<'_> {
    /// The unverified `iss`, for choosing whose keys decide.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Checks the signature with `key`, which must be published for the token's algorithm.
    pub fn check_signature(&self, key: &Key, who: &str) -> Result<(), IdentityError> {
        let kid = key.kid.as_deref().unwrap_or("(none)");
        if key.alg.is_some_and(|a| a != self.alg) || self.alg.family() != key.family {
            return Err(refused(format!(
                "the token says alg {:?}, but {who}'s key kid {kid:?} is for {}",
                self.alg,
                key.alg
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_else(|| format!("{:?}", key.family))
            )));
        }
        match jsonwebtoken::crypto::verify(
            self.signature,
            self.signed.as_bytes(),
            &key.decoding,
            self.alg,
        ) {
            Ok(true) => Ok(()),
            _ => Err(refused(format!(
                "the token's signature does not verify with {who}'s key kid {kid:?}"
            ))),
        }
    }
}

/// Checks issuer, audience and lifetime of claims whose signature was verified.
pub fn check_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<(), IdentityError> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != issuer {
        return Err(refused(format!(
            "the token's issuer is {iss:?}, this gateway accepts {issuer:?}"
        )));
    }
    let matches = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !matches {
        let got = match claims.get("aud") {
            Some(aud) => aud.to_string(),
            None => "missing".into(),
        };
        return Err(refused(format!(
            "the token's audience is {got}, this gateway accepts {audience:?}"
        )));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| refused("the token has no expiry (exp)"))?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(refused(format!(
            "the token has expired ({} s ago)",
            now - exp
        )));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf
            .as_i64()
            .ok_or_else(|| refused("the token's nbf is not a number"))?;
        if now.saturating_add(LEEWAY_SECS) < nbf {
            return Err(refused(format!(
                "the token is not valid yet (for another {} s; check the clocks)",
                nbf - now
            )));
        }
    }
    Ok(())
}

/// A string claim that must be there.
pub fn required<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, IdentityError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refused(format!("the token has no {name} claim")))
}
