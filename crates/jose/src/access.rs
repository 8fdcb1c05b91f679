//! Access tokens for people, issued by Keyward when it is the identity provider (`local`): the
//! RFC 9068 `at+jwt` profile, signed with the same keys as workload tokens, and verified here
//! against the published JWKS.
//!
//! The header `typ` keeps the two kinds apart: a workload token (`JWT`) can never pass as a
//! person's access token, whatever audience an automation asked for.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::jwks::Jwks;
use crate::key::{KeyError, RS256, SigningKey};

/// The `typ` header of people's access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// `user:<user-uuid>`.
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("the token is not a Keyward access token (header typ {0:?}, expected \"at+jwt\")")]
    WrongType(String),
    #[error("the token is signed with {0:?}; only RS256 is accepted")]
    Algorithm(String),
    #[error("the token's signing key {0:?} is not published by this server (sign in again)")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token was issued by {got:?}, not by this server ({expected:?})")]
    Issuer { got: String, expected: String },
    #[error("the token is for audience {got:?}, not {expected:?}")]
    Audience { got: String, expected: String },
    #[error("the token expired; sign in again (keyward login)")]
    Expired,
    #[error("the token is not valid yet (check the clocks)")]
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: String,
    #[serde(default)]
    kid: String,
}

/// Signs `claims` into a compact JWS with header `typ` `at+jwt`.
pub fn mint_access(key: &SigningKey, claims: &AccessClaims) -> Result<String, KeyError> {
    let header = Header {
        alg: key.alg().to_owned(),
        typ: ACCESS_TOKEN_TYP.to_owned(),
        kid: key.kid().to_owned(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Signing)?;
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Signing)?;
    let mut token = String::with_capacity(1024);
    token.push_str(&URL_SAFE_NO_PAD.encode(header));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// Verifies an access token: `at+jwt`, RS256 by a published key, issuer, audience, `nbf`/`exp`
/// at `now` with `leeway` seconds of clock skew.
pub fn verify_access(
    token: &str,
    jwks: &Jwks,
    issuer: &str,
    audience: &str,
    now: i64,
    leeway: i64,
) -> Result<AccessClaims, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| VerifyError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| VerifyError::Malformed)?;
    if header.typ != ACCESS_TOKEN_TYP {
        return Err(VerifyError::WrongType(header.typ));
    }
    if header.alg != RS256 {
        return Err(VerifyError::Algorithm(header.alg));
    }
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == header.kid && k.kty == "RSA")
        .ok_or_else(|| VerifyError::UnknownKey(header.kid.clone()))?;
    let n = decode(&jwk.n)?;
    let e = decode(&jwk.e)?;
    let signature = decode(s)?;
    let signed = &token[..h.len() + 1 + p.len()];
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
        .map_err(|_| VerifyError::Signature)?;
    // Only now, with the signature checked, are the claims worth reading.
    let claims: AccessClaims =
        serde_json::from_slice(&decode(p)?).map_err(|_| VerifyError::Malformed)?;
    if claims.iss != issuer {
        return Err(VerifyError::Issuer {
            got: claims.iss,
            expected: issuer.to_owned(),
        });
    }
    if claims.aud != audience {
        return Err(VerifyError::Audience {
            got: claims.aud,
            expected: audience.to_owned(),
        });
    }
    if now >= claims.exp + leeway {
        return Err(VerifyError::Expired);
    }
    if now + leeway < claims.nbf {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{WorkloadClaims, mint};

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://kw.example".into(),
            sub: "user:6f0c1f7e-0000-4000-8000-000000000001".into(),
            aud: "keyward-api".into(),
            iat: now,
            nbf: now - 5,
            exp: now + 3600,
            jti: "j".into(),
            client_id: "keyward-cli".into(),
            scope: "openid".into(),
            email: Some("a@b.example".into()),
        }
    }

    #[test]
    fn access_tokens_verify_against_the_published_keys_only() {
        let key = SigningKey::generate().unwrap();
        let jwks = Jwks {
            keys: vec![key.public_jwk()],
        };
        let now = 4_000_000_000;
        let token = mint_access(&key, &claims(now)).unwrap();
        let ok = verify_access(&token, &jwks, "https://kw.example", "keyward-api", now, 0);
        assert_eq!(ok, Ok(claims(now)));
        assert!(matches!(
            verify_access(&token, &jwks, "https://other", "keyward-api", now, 0),
            Err(VerifyError::Issuer { .. })
        ));
        assert!(matches!(
            verify_access(&token, &jwks, "https://kw.example", "x", now, 0),
            Err(VerifyError::Audience { .. })
        ));
        assert_eq!(
            verify_access(
                &token,
                &jwks,
                "https://kw.example",
                "keyward-api",
                now + 3600,
                0
            ),
            Err(VerifyError::Expired)
        );
        let other = Jwks {
            keys: vec![SigningKey::generate().unwrap().public_jwk()],
        };
        assert!(matches!(
            verify_access(&token, &other, "https://kw.example", "keyward-api", now, 0),
            Err(VerifyError::UnknownKey(_))
        ));
        // A tampered payload fails the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims(now);
        forged.sub = "user:someone-else".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            verify_access(
                &parts.join("."),
                &jwks,
                "https://kw.example",
                "keyward-api",
                now,
                0
            ),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn a_workload_token_never_passes_as_an_access_token() {
        let key = SigningKey::generate().unwrap();
        let jwks = Jwks {
            keys: vec![key.public_jwk()],
        };
        let workload = WorkloadClaims {
            iss: "https://kw.example".into(),
            sub: "organization:x".into(),
            aud: "keyward-api".into(),
            organization_id: "x".into(),
            iat: 1,
            nbf: 1,
            exp: i64::MAX / 2,
            jti: "j".into(),
            automation_id: "a".into(),
            automation_name: "n".into(),
            kickoff_id: None,
        };
        let token = mint(&key, &workload).unwrap();
        assert_eq!(
            verify_access(&token, &jwks, "https://kw.example", "keyward-api", 2, 0),
            Err(VerifyError::WrongType("JWT".into()))
        );
    }
}
