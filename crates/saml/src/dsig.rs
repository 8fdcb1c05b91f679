//! Verification of one enveloped XML signature, the only shape SAML uses: a `ds:Signature` that
//! is a direct child of the element it signs, with exactly one `Reference` whose URI is `#` +
//! that element's ID.
//!
//! Anything more general (several references, XPath transforms, `ds:Object`, detached or
//! external references, inclusive c14n, SHA-1) is refused: each generality is a way to make the
//! verifier look at one thing while the application reads another.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use roxmltree::Node;

use crate::c14n;
use crate::cert::IdpCert;
use crate::error::SamlError;
use crate::xml::{NS_DSIG, is, one_child, text};

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_WITH_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

fn signature_algorithm(uri: &str) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match uri {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        _ => return None,
    })
}

fn digest_algorithm(uri: &str) -> Option<&'static digest::Algorithm> {
    Some(match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => &digest::SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => &digest::SHA384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => &digest::SHA512,
        _ => return None,
    })
}

/// The element children of `node`; text other than whitespace is malformed in dsig elements.
fn element_children<'a, 'i>(node: Node<'a, 'i>) -> Result<Vec<Node<'a, 'i>>, SamlError> {
    let mut out = Vec::new();
    for c in node.children() {
        if c.is_element() {
            out.push(c);
        } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            return Err(SamlError::Malformed(format!(
                "unexpected text inside <ds:{}>",
                node.tag_name().name()
            )));
        }
    }
    Ok(out)
}

fn dsig_child<'a, 'i>(
    list: &[Node<'a, 'i>],
    index: usize,
    local: &'static str,
) -> Result<Node<'a, 'i>, SamlError> {
    list.get(index)
        .copied()
        .filter(|n| is(*n, NS_DSIG, local))
        .ok_or_else(|| {
            SamlError::Malformed(format!("ds:Signature lacks <ds:{local}> in its place"))
        })
}

fn algorithm_attr<'a>(node: Node<'a, '_>) -> Result<&'a str, SamlError> {
    node.attribute("Algorithm").ok_or_else(|| {
        SamlError::Malformed(format!("<ds:{}> has no Algorithm", node.tag_name().name()))
    })
}

/// c14n options named by a CanonicalizationMethod or Transform element.
fn c14n_of(method: Node<'_, '_>, what: &'static str) -> Result<(bool, Vec<String>), SamlError> {
    let alg = algorithm_attr(method)?;
    let with_comments = match alg {
        EXC_C14N => false,
        EXC_C14N_WITH_COMMENTS => true,
        other => {
            return Err(SamlError::UnsupportedAlgorithm {
                what,
                algorithm: other.to_owned(),
            });
        }
    };
    let mut prefixes = Vec::new();
    for c in method.children().filter(|c| c.is_element()) {
        if c.tag_name().name() == "InclusiveNamespaces"
            && c.tag_name().namespace() == Some(EXC_C14N)
        {
            for p in c
                .attribute("PrefixList")
                .unwrap_or("")
                .split_ascii_whitespace()
            {
                prefixes.push(if p == "#default" {
                    String::new()
                } else {
                    p.to_owned()
                });
            }
        } else {
            return Err(SamlError::Malformed(format!(
                "unexpected <{}> inside a canonicalization method",
                c.tag_name().name()
            )));
        }
    }
    Ok((with_comments, prefixes))
}

/// Verifies that `sig`, a direct child of `signed`, is a valid signature over `signed` by one of
/// `certs`. `element` names the signed element in errors ("assertion" / "response").
pub(crate) fn verify_enveloped(
    signed: Node<'_, '_>,
    sig: Node<'_, '_>,
    certs: &[IdpCert],
    element: &'static str,
) -> Result<(), SamlError> {
    let id = signed.attribute("ID").unwrap_or("");
    if id.is_empty() {
        return Err(SamlError::Malformed(format!(
            "the signed {element} has no ID"
        )));
    }

    let parts = element_children(sig)?;
    let signed_info = dsig_child(&parts, 0, "SignedInfo")?;
    let signature_value = dsig_child(&parts, 1, "SignatureValue")?;
    for extra in &parts[2..] {
        // KeyInfo is allowed and ignored: the key comes from configuration, never from the
        // message. Object (and anything else) is where wrapping attacks hide content.
        if !is(*extra, NS_DSIG, "KeyInfo") {
            return Err(SamlError::MisplacedSignature(format!(
                "ds:Signature holds <{}>, which is not accepted",
                extra.tag_name().name()
            )));
        }
    }

    let info = element_children(signed_info)?;
    let c14n_method = dsig_child(&info, 0, "CanonicalizationMethod")?;
    let sig_method = dsig_child(&info, 1, "SignatureMethod")?;
    let reference = dsig_child(&info, 2, "Reference")?;
    if info.len() != 3 {
        return Err(SamlError::Malformed(
            "ds:SignedInfo must hold exactly one Reference".into(),
        ));
    }

    // The reference must name the element the signature sits in, by the ID we read.
    let uri = reference.attribute("URI").unwrap_or("");
    if uri.strip_prefix('#') != Some(id) {
        return Err(SamlError::ReferenceMismatch {
            uri: uri.to_owned(),
            id: id.to_owned(),
        });
    }

    let ref_parts = element_children(reference)?;
    let transforms = dsig_child(&ref_parts, 0, "Transforms")?;
    let digest_method = dsig_child(&ref_parts, 1, "DigestMethod")?;
    let digest_value = dsig_child(&ref_parts, 2, "DigestValue")?;
    if ref_parts.len() != 3 {
        return Err(SamlError::Malformed(
            "unexpected content in ds:Reference".into(),
        ));
    }

    // Exactly: enveloped-signature, then exclusive c14n.
    let steps = element_children(transforms)?;
    let [enveloped, c14n_step] = steps.as_slice() else {
        return Err(SamlError::UnsupportedAlgorithm {
            what: "transform chain",
            algorithm: format!("{} transforms", steps.len()),
        });
    };
    if !is(*enveloped, NS_DSIG, "Transform") || algorithm_attr(*enveloped)? != ENVELOPED {
        return Err(SamlError::UnsupportedAlgorithm {
            what: "first transform",
            algorithm: algorithm_attr(*enveloped).unwrap_or("?").to_owned(),
        });
    }
    if !is(*c14n_step, NS_DSIG, "Transform") {
        return Err(SamlError::Malformed(
            "ds:Transforms holds a non-Transform".into(),
        ));
    }
    let (ref_comments, ref_prefixes) = c14n_of(*c14n_step, "transform")?;

    let digest_alg = algorithm_attr(digest_method)?;
    let digest_alg =
        digest_algorithm(digest_alg).ok_or_else(|| SamlError::UnsupportedAlgorithm {
            what: "digest",
            algorithm: digest_alg.to_owned(),
        })?;
    let sig_alg = algorithm_attr(sig_method)?;
    let verify_alg =
        signature_algorithm(sig_alg).ok_or_else(|| SamlError::UnsupportedAlgorithm {
            what: "signature method",
            algorithm: sig_alg.to_owned(),
        })?;
    let (info_comments, info_prefixes) = c14n_of(c14n_method, "canonicalization")?;

    // 1. SignedInfo is signed by a configured key.
    let canonical_info = c14n::canonicalize(
        signed_info,
        &c14n::Options {
            exclude: None,
            inclusive_prefixes: &info_prefixes,
            with_comments: info_comments,
        },
    )
    .map_err(SamlError::Malformed)?;
    let sig_bytes = decode_b64(&text(signature_value), "SignatureValue")?;
    let key_ok = certs.iter().any(|cert| {
        UnparsedPublicKey::new(verify_alg, cert.rsa_public_key())
            .verify(canonical_info.as_bytes(), &sig_bytes)
            .is_ok()
    });
    if !key_ok {
        return Err(SamlError::BadSignature { element });
    }

    // 2. The signed element, without this signature, has the digest SignedInfo vouches for.
    let canonical = c14n::canonicalize(
        signed,
        &c14n::Options {
            exclude: Some(sig.id()),
            inclusive_prefixes: &ref_prefixes,
            with_comments: ref_comments,
        },
    )
    .map_err(SamlError::Malformed)?;
    let expected = decode_b64(&text(digest_value), "DigestValue")?;
    let actual = digest::digest(digest_alg, canonical.as_bytes());
    if actual.as_ref() != expected.as_slice() {
        return Err(SamlError::DigestMismatch { element });
    }
    Ok(())
}

fn decode_b64(value: &str, what: &str) -> Result<Vec<u8>, SamlError> {
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|e| SamlError::Malformed(format!("ds:{what} is not base64: {e}")))
}

/// The ds:Signature children of `node`; more than one is refused.
pub(crate) fn signature_child<'a, 'i>(
    node: Node<'a, 'i>,
) -> Result<Option<Node<'a, 'i>>, SamlError> {
    match one_child(node, NS_DSIG, "Signature") {
        Ok(sig) => Ok(Some(sig)),
        Err(_) if node.children().any(|c| is(c, NS_DSIG, "Signature")) => {
            Err(SamlError::MisplacedSignature(format!(
                "<{}> holds more than one ds:Signature",
                node.tag_name().name()
            )))
        }
        Err(_) => Ok(None),
    }
}
