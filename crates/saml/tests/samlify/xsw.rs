//! Signature wrapping (Somorovsky et al., "On Breaking SAML", XSW1–XSW8) on real
//! samlify-signed responses.

use super::*;

/// Pieces of a samlify response, cut by byte ranges from the parsed document.
struct Cut {
    xml: String,
    /// The signed assertion, with its signature.
    assertion: (usize, usize),
    /// The assertion's signature.
    signature: (usize, usize),
    /// The Response's signature, when the Response is signed.
    response_signature: Option<(usize, usize)>,
}

impl Cut {
    fn new(xml: String) -> Self {
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        let assertion = root
            .children()
            .find(|n| n.tag_name().name() == "Assertion")
            .unwrap();
        let sig = assertion
            .children()
            .find(|n| n.tag_name().name() == "Signature")
            .map(|n| (n.range().start, n.range().end));
        let response_signature = root
            .children()
            .find(|n| n.tag_name().name() == "Signature")
            .map(|n| (n.range().start, n.range().end));
        let a = (assertion.range().start, assertion.range().end);
        drop(doc);
        Self {
            signature: sig.unwrap_or((a.0, a.0)),
            assertion: a,
            response_signature,
            xml,
        }
    }
    fn s(&self, r: (usize, usize)) -> &str {
        &self.xml[r.0..r.1]
    }
    fn signed_assertion(&self) -> String {
        self.s(self.assertion).to_owned()
    }
    fn signature_xml(&self) -> String {
        self.s(self.signature).to_owned()
    }
    /// The assertion without its signature.
    fn bare_assertion(&self) -> String {
        format!(
            "{}{}",
            &self.xml[self.assertion.0..self.signature.0],
            &self.xml[self.signature.1..self.assertion.1]
        )
    }
    /// An attacker's assertion: the bare one with another subject and `id`.
    fn evil(&self, id: &str) -> String {
        let original_id = self.assertion_id();
        self.bare_assertion()
            .replacen(&original_id, id, 1)
            .replace("ada@example.com", "admin@victim.test")
    }
    fn assertion_id(&self) -> String {
        let doc = roxmltree::Document::parse(&self.xml).unwrap();
        doc.descendants()
            .find(|n| n.tag_name().name() == "Assertion")
            .and_then(|n| n.attribute("ID"))
            .unwrap()
            .to_owned()
    }
    /// The document with the assertion replaced by `with`.
    fn replace_assertion(&self, with: &str) -> String {
        format!(
            "{}{}{}",
            &self.xml[..self.assertion.0],
            with,
            &self.xml[self.assertion.1..]
        )
    }
    /// `with` inserted just before the closing tag of element `within_end` (range end).
    fn insert_at(&self, at: usize, what: &str) -> String {
        format!("{}{}{}", &self.xml[..at], what, &self.xml[at..])
    }
}

fn with_object(signature: &str, content: &str) -> String {
    let close = signature.rfind("</").unwrap();
    format!(
        "{}<ds:Object>{}</ds:Object>{}",
        &signature[..close],
        content,
        &signature[close..]
    )
}

/// Opens `evil_assertion` (an `<… Assertion …>…</…Assertion>` string) right after its start tag.
fn inside_start(evil_assertion: &str, content: &str) -> String {
    let gt = evil_assertion.find('>').unwrap() + 1;
    format!(
        "{}{}{}",
        &evil_assertion[..gt],
        content,
        &evil_assertion[gt..]
    )
}

async fn refused(sp: &ServiceProvider, req: &AuthnRequest, xml: &str) -> SamlError {
    match verify(sp, req, &encode(xml)).await {
        Ok(login) => panic!("a wrapped response was accepted: {login:?}"),
        Err(e) => e,
    }
}

async fn signed_cut(sp: &ServiceProvider, req: &AuthnRequest, sign: &str) -> Cut {
    let cut = Cut::new(decode(&respond(req, json!({"sign": sign}))));
    // The untouched response is valid (with the response-only opt-in where needed).
    let mut cfg = sp.config().clone();
    cfg.accept_response_signature_only = true;
    let lenient = ServiceProvider::new(cfg).unwrap();
    verify(&lenient, req, &encode(&cut.xml)).await.unwrap();
    cut
}

#[tokio::test]
async fn xsw1_and_xsw2_wrapped_signed_response_is_refused() {
    // The Response is signed; the attacker builds a new Response around an evil assertion and
    // moves the original signed Response into the signature's Object (XSW1) or next to it (XSW2).
    let mut cfg = sp().config().clone();
    cfg.accept_response_signature_only = true;
    let sp = ServiceProvider::new(cfg).unwrap();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "response").await;
    let rsig = cut.response_signature.unwrap();
    let original_response_unsigned = format!("{}{}", &cut.xml[..rsig.0], &cut.xml[rsig.1..]);
    let evil_response = cut.replace_assertion(&cut.evil("_evil")).replacen(
        " ID=\"",
        " ID=\"_evil-response\" OldID=\"",
        1,
    );
    // Remove the evil response's copy of the signature, then put the original back wrapped.
    let evil_sig = cut.s(rsig).to_owned();
    let evil_response = evil_response.replacen(&evil_sig, "", 1);
    let issuer_end = evil_response.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();

    let xsw1 = format!(
        "{}{}{}",
        &evil_response[..issuer_end],
        with_object(&evil_sig, &original_response_unsigned),
        &evil_response[issuer_end..]
    );
    assert_eq!(
        refused(&sp, &req, &xsw1).await,
        SamlError::AssertionCount(2)
    );

    let xsw2 = format!(
        "{}{}{}{}",
        &evil_response[..issuer_end],
        evil_sig,
        original_response_unsigned,
        &evil_response[issuer_end..]
    );
    assert_eq!(
        refused(&sp, &req, &xsw2).await,
        SamlError::AssertionCount(2)
    );
}

#[tokio::test]
async fn xsw3_evil_assertion_before_the_signed_one_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let xsw3 = cut.insert_at(cut.assertion.0, &cut.evil("_evil"));
    assert_eq!(
        refused(&sp, &req, &xsw3).await,
        SamlError::AssertionCount(2)
    );
    // Same, with the evil copy keeping the signed ID so a lookup by ID could pick either.
    let same_id = cut.insert_at(cut.assertion.0, &cut.evil(&cut.assertion_id()));
    assert_eq!(
        refused(&sp, &req, &same_id).await,
        SamlError::DuplicateId(cut.assertion_id())
    );
}

#[tokio::test]
async fn xsw4_signed_assertion_wrapped_inside_evil_one_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let evil = inside_start(&cut.evil("_evil"), &cut.signed_assertion());
    let xsw4 = cut.replace_assertion(&evil);
    assert_eq!(
        refused(&sp, &req, &xsw4).await,
        SamlError::AssertionCount(2)
    );
}

#[tokio::test]
async fn xsw5_signature_moved_to_evil_assertion_and_original_appended_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let evil = inside_start(&cut.evil("_evil"), &cut.signature_xml());
    let xsw5 = cut.replace_assertion(&format!("{evil}{}", cut.bare_assertion()));
    assert_eq!(
        refused(&sp, &req, &xsw5).await,
        SamlError::AssertionCount(2)
    );
    // Without the second assertion, the moved signature no longer points at its holder.
    let only_evil = cut.replace_assertion(&evil);
    assert!(matches!(
        refused(&sp, &req, &only_evil).await,
        SamlError::ReferenceMismatch { .. }
    ),);
    // And with the signed ID kept, the digest no longer matches the evil content.
    let evil_same_id = inside_start(&cut.evil(&cut.assertion_id()), &cut.signature_xml());
    assert_eq!(
        refused(&sp, &req, &cut.replace_assertion(&evil_same_id)).await,
        SamlError::DigestMismatch {
            element: "assertion"
        }
    );
}

#[tokio::test]
async fn xsw6_original_inside_the_moved_signatures_object_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let sig = with_object(&cut.signature_xml(), &cut.bare_assertion());
    let evil = inside_start(&cut.evil("_evil"), &sig);
    let xsw6 = cut.replace_assertion(&evil);
    assert_eq!(
        refused(&sp, &req, &xsw6).await,
        SamlError::AssertionCount(2)
    );
}

#[tokio::test]
async fn xsw7_signed_assertion_hidden_in_extensions_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let ext = format!(
        "<samlp:Extensions>{}</samlp:Extensions>{}",
        cut.signed_assertion(),
        cut.evil("_evil")
    );
    let xsw7 = cut.replace_assertion(&ext);
    assert_eq!(
        refused(&sp, &req, &xsw7).await,
        SamlError::AssertionCount(2)
    );
    // Only the signature hidden there, around an unsigned evil assertion.
    let sig_only = cut.replace_assertion(&format!(
        "<samlp:Extensions>{}</samlp:Extensions>{}",
        cut.signature_xml(),
        cut.evil("_evil")
    ));
    assert!(matches!(
        refused(&sp, &req, &sig_only).await,
        SamlError::MisplacedSignature(_)
    ));
}

#[tokio::test]
async fn xsw8_original_without_signature_in_object_of_evil_assertion_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let cut = signed_cut(&sp, &req, "assertion").await;
    let sig = with_object(&cut.signature_xml(), &cut.bare_assertion());
    let evil = inside_start(&cut.evil(&cut.assertion_id()), &sig);
    let xsw8 = cut.replace_assertion(&evil);
    // Two elements now carry the signed ID (evil assertion, original in Object).
    assert_eq!(
        refused(&sp, &req, &xsw8).await,
        SamlError::DuplicateId(cut.assertion_id())
    );
    // With a harmless Object but no second assertion: ds:Object is refused outright.
    let obj_only = with_object(&cut.signature_xml(), "<x/>");
    let tampered = cut.replace_assertion(&cut.signed_assertion().replacen(
        &cut.signature_xml(),
        &obj_only,
        1,
    ));
    assert!(matches!(
        refused(&sp, &req, &tampered).await,
        SamlError::MisplacedSignature(_)
    ));
}

#[tokio::test]
async fn foreign_response_signature_is_refused_even_with_a_signed_assertion() {
    // A present signature must verify even when the other one alone would do.
    let sp = sp();
    let req = start(&sp);
    let k = keys();
    let evil = Cut::new(decode(&respond(
        &req,
        json!({"sign": "response", "keyPem": k.other_key, "certPem": k.other_cert}),
    )));
    let good = Cut::new(decode(&respond(&req, json!({"sign": "assertion"}))));
    let issuer_end = good.xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    let mixed = good.insert_at(issuer_end, evil.s(evil.response_signature.unwrap()));
    assert!(matches!(
        refused(&sp, &req, &mixed).await,
        SamlError::ReferenceMismatch { .. }
    ));
    // Pointed at this response, the foreign signature still fails: the digest, then the key.
    let good_id = roxmltree::Document::parse(&good.xml)
        .unwrap()
        .root_element()
        .attribute("ID")
        .unwrap()
        .to_owned();
    let evil_id = roxmltree::Document::parse(&evil.xml)
        .unwrap()
        .root_element()
        .attribute("ID")
        .unwrap()
        .to_owned();
    let retargeted = mixed.replacen(
        &format!("URI=\"#{evil_id}\""),
        &format!("URI=\"#{good_id}\""),
        1,
    );
    assert_eq!(
        refused(&sp, &req, &retargeted).await,
        SamlError::BadSignature {
            element: "response"
        }
    );
}

#[tokio::test]
async fn idp_error_status_is_reported() {
    let sp = sp();
    let req = start(&sp);
    let xml = decode(&respond(&req, json!({}))).replacen(
        "urn:oasis:names:tc:SAML:2.0:status:Success\"/>",
        "urn:oasis:names:tc:SAML:2.0:status:Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:RequestDenied\"/></samlp:StatusCode>",
        1,
    );
    let err = refused(&sp, &req, &xml).await;
    assert!(
        matches!(&err, SamlError::Status { code } if code.ends_with("RequestDenied")),
        "{err:?}"
    );
}

#[tokio::test]
async fn doctype_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let xml = format!(
        "<!DOCTYPE r [<!ENTITY x \"y\">]>{}",
        decode(&respond(&req, json!({})))
    );
    assert!(matches!(refused(&sp, &req, &xml).await, SamlError::Xml(_)));
}
