//! The claims of a workload token (SPEC §3) and the compact JWS that carries them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::key::{KeyError, SigningKey};

/// Clouds tolerate a little clock skew on `nbf`; backdating it by a few seconds keeps a token
/// usable the instant it is handed out.
pub const NBF_BACKDATE_SECS: i64 = 5;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadClaims {
    pub iss: String,
    /// Always `organization:<org-uuid>`: AWS trust policies can only test `sub` and `aud`.
    pub sub: String,
    pub aud: String,
    pub organization_id: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub automation_id: String,
    pub automation_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kickoff_id: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` with `key` into a compact JWS (`header.payload.signature`).
pub fn mint(key: &SigningKey, claims: &WorkloadClaims) -> Result<String, KeyError> {
    let header = Header {
        alg: key.alg(),
        typ: "JWT",
        kid: key.kid(),
    };
    // Serialising these plain structs cannot fail; map defensively anyway.
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

    #[test]
    fn minted_tokens_verify_with_an_independent_jose_stack() {
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        let key = SigningKey::generate().unwrap();
        let claims = WorkloadClaims {
            iss: "https://issuer.example".into(),
            sub: "organization:6f0c1f7e-0000-4000-8000-000000000001".into(),
            aud: "sts.amazonaws.com".into(),
            organization_id: "6f0c1f7e-0000-4000-8000-000000000001".into(),
            iat: 4_000_000_000,
            nbf: 4_000_000_000 - NBF_BACKDATE_SECS,
            exp: 4_000_003_600,
            jti: "j1".into(),
            automation_id: "a1".into(),
            automation_name: "crew".into(),
            kickoff_id: None,
        };
        let token = mint(&key, &claims).unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(header.alg, Algorithm::RS256);

        let jwk = key.public_jwk();
        let decoding = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["sts.amazonaws.com"]);
        validation.set_issuer(&["https://issuer.example"]);
        let data = decode::<WorkloadClaims>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims, claims);

        let other = SigningKey::generate().unwrap().public_jwk();
        let wrong = DecodingKey::from_rsa_components(&other.n, &other.e).unwrap();
        assert!(decode::<WorkloadClaims>(&token, &wrong, &validation).is_err());
    }
}
