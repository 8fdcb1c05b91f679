//! IdP signing certificates: read from PEM or base64 DER, reduced to the RSA public key.
//!
//! SAML trust is by configured key, not by PKI: the certificate is only a container for the key
//! (Entra ID's and most IdPs' signing certificates are self-signed). So only the
//! SubjectPublicKeyInfo is read, and a `KeyInfo` inside a response is never used.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::SamlError;

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// One trusted IdP signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct IdpCert {
    /// PKCS#1 RSAPublicKey DER, the form aws-lc-rs verifies with.
    rsa_public_key: Vec<u8>,
}

impl std::fmt::Debug for IdpCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpCert")
            .field("rsa_public_key_bytes", &self.rsa_public_key.len())
            .finish()
    }
}

impl IdpCert {
    /// Every certificate in a PEM text (`-----BEGIN CERTIFICATE-----`), or, when the text has no
    /// PEM markers, one base64 DER certificate (the form IdP metadata and some consoles show).
    pub fn parse_all(text: &str) -> Result<Vec<Self>, SamlError> {
        if text.contains("-----BEGIN") {
            let mut certs = Vec::new();
            for der in CertificateDer::pem_slice_iter(text.as_bytes()) {
                let der = der.map_err(|e| SamlError::Certificate(format!("bad PEM: {e}")))?;
                certs.push(Self::from_der(&der)?);
            }
            if certs.is_empty() {
                return Err(SamlError::Certificate(
                    "the PEM text holds no CERTIFICATE block".into(),
                ));
            }
            Ok(certs)
        } else {
            Ok(vec![Self::from_base64_der(text)?])
        }
    }

    /// One base64 DER certificate; whitespace is ignored.
    pub fn from_base64_der(text: &str) -> Result<Self, SamlError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(compact)
            .map_err(|e| SamlError::Certificate(format!("not base64: {e}")))?;
        Self::from_der(&der)
    }

    /// One DER X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, SamlError> {
        let bad = |what: &str| SamlError::Certificate(format!("not an X.509 certificate ({what})"));
        let (cert, _) = tlv(der, 0x30).ok_or_else(|| bad("outer SEQUENCE"))?;
        let (tbs, _) = tlv(cert, 0x30).ok_or_else(|| bad("tbsCertificate"))?;
        let mut rest = tbs;
        // Optional [0] version.
        if rest.first() == Some(&0xa0) {
            rest = tlv(rest, 0xa0).ok_or_else(|| bad("version"))?.1;
        }
        rest = tlv(rest, 0x02).ok_or_else(|| bad("serial"))?.1;
        for what in ["signature algorithm", "issuer", "validity", "subject"] {
            rest = tlv(rest, 0x30).ok_or_else(|| bad(what))?.1;
        }
        let (spki, _) = tlv(rest, 0x30).ok_or_else(|| bad("subjectPublicKeyInfo"))?;
        let (alg, after_alg) = tlv(spki, 0x30).ok_or_else(|| bad("key algorithm"))?;
        let (oid, _) = tlv(alg, 0x06).ok_or_else(|| bad("key algorithm OID"))?;
        if oid != OID_RSA_ENCRYPTION {
            return Err(SamlError::Certificate(
                "the certificate's key is not RSA; SAML IdPs sign with RSA keys (RSA-SHA256)"
                    .into(),
            ));
        }
        let (bits, _) = tlv(after_alg, 0x03).ok_or_else(|| bad("public key BIT STRING"))?;
        let key = match bits.split_first() {
            Some((0, key)) => key.to_vec(),
            _ => return Err(bad("public key padding")),
        };
        Ok(Self {
            rsa_public_key: key,
        })
    }

    pub(crate) fn rsa_public_key(&self) -> &[u8] {
        &self.rsa_public_key
    }
}

/// Reads one DER TLV with the expected tag; returns (content, rest).
fn tlv(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = buf.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let err = IdpCert::from_base64_der("aGVsbG8=").unwrap_err();
        assert!(
            err.to_string().contains("not an X.509 certificate"),
            "{err}"
        );
        let err =
            IdpCert::parse_all("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")
                .unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }
}
