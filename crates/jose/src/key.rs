//! RSA signing keys: generation, import from `OIDC_PRIVATE_KEY`, and their public JWK.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;

use crate::jwks::Jwk;

/// The only algorithm every federation target accepts (Entra refuses EC keys).
pub const RS256: &str = "RS256";
const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error(
        "the key is not PEM: expected '-----BEGIN PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----'"
    )]
    NotPem,
    #[error("the PEM holds a {0} key; an RSA key of at least 2048 bits is required")]
    NotRsa(&'static str),
    #[error("the RSA key could not be parsed: {0}")]
    Rejected(String),
    #[error("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")]
    TooSmall { bits: usize },
    #[error("RSA key generation failed")]
    Generation,
    #[error("RSA signing failed")]
    Signing,
}

/// A private signing key with its key id.
pub struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private half must never reach a log line.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key with a random `kid`. Slow (tens of milliseconds): run it on
    /// a blocking thread.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| KeyError::Generation)?;
        Ok(Self {
            kid: random_kid()?,
            pair,
        })
    }

    /// Restores a stored key (PKCS#8 DER as produced by [`SigningKey::to_pkcs8`]).
    pub fn from_pkcs8(kid: String, der: &[u8]) -> Result<Self, KeyError> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        check_size(&pair)?;
        Ok(Self { kid, pair })
    }

    /// Parses a PEM private key (PKCS#8 or PKCS#1), as given in `OIDC_PRIVATE_KEY`. The `kid` is
    /// chosen by the caller, because an imported key keeps the id it was first stored under.
    pub fn from_pem(kid: String, pem: &str) -> Result<Self, KeyError> {
        let der =
            PrivateKeyDer::from_pem_slice(pem.trim().as_bytes()).map_err(|_| KeyError::NotPem)?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(_) => return Err(KeyError::NotRsa("EC (SEC1)")),
            _ => return Err(KeyError::NotRsa("unknown")),
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        check_size(&pair)?;
        Ok(Self { kid, pair })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> &'static str {
        RS256
    }

    /// The private key as PKCS#8 DER, for encrypted storage.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        let der: Pkcs8V1Der<'static> = self.pair.as_der().map_err(|_| KeyError::Generation)?;
        Ok(der.as_ref().to_vec())
    }

    /// A stable fingerprint of the public key (hex SHA-256 of its DER), used to recognise an
    /// imported key across restarts without keeping its PEM around.
    pub fn fingerprint(&self) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.pair.public_key().as_ref());
        hex::encode(digest.as_ref())
    }

    pub fn public_jwk(&self) -> Jwk {
        let public = self.pair.public_key();
        Jwk {
            kty: "RSA".into(),
            kid: self.kid.clone(),
            alg: RS256.into(),
            use_: "sig".into(),
            n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| KeyError::Signing)?;
        Ok(signature)
    }
}

fn check_size(pair: &RsaKeyPair) -> Result<(), KeyError> {
    let bits = pair.public_modulus_len() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::TooSmall { bits });
    }
    Ok(())
}

/// 128 random bits, URL-safe: unguessable and, in practice, never repeated.
pub fn random_kid() -> Result<String, KeyError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Generation)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_distinct_random_kids_and_2048_bit_moduli() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 22);
        let jwk = a.public_jwk();
        assert_eq!(jwk.kty, "RSA");
        assert_eq!(jwk.e, "AQAB");
        assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.n).unwrap().len(), 256);
    }

    #[test]
    fn a_stored_key_restores_with_the_same_public_half() {
        let key = SigningKey::generate().unwrap();
        let der = key.to_pkcs8().unwrap();
        let back = SigningKey::from_pkcs8(key.kid().to_owned(), &der).unwrap();
        assert_eq!(back.public_jwk(), key.public_jwk());
        assert_eq!(back.fingerprint(), key.fingerprint());
    }

    #[test]
    fn malformed_pem_is_refused_with_a_reason() {
        assert!(matches!(
            SigningKey::from_pem("k".into(), "not a key"),
            Err(KeyError::NotPem)
        ));
        let truncated = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem("k".into(), truncated).is_err());
    }
}
