//! Logins that work, with samlify-signed responses.

use super::*;

#[tokio::test]
async fn entra_style_login_works_and_yields_roles_groups_and_attributes() {
    let sp = sp();
    let req = start(&sp);
    // samlify parsed our AuthnRequest: its ID and ACS are what the IdP saw.
    let answer = samlify(json!({"samlRequest": saml_request_param(&req), "style": "entra"}));
    assert_eq!(answer["request"]["id"], req.pending.id.as_str());
    assert_eq!(answer["request"]["acsUrl"], ACS);
    assert_eq!(answer["request"]["issuer"], SP_ENTITY);

    let login = verify(&sp, &req, answer["samlResponse"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(login.issuer, IDP_ENTITY);
    assert_eq!(login.name_id, "ada@example.com");
    assert_eq!(login.email.as_deref(), Some("ada@example.com"));
    assert_eq!(login.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(login.roles, vec!["factory-admin", "member"]);
    assert_eq!(login.groups, vec!["g-1", "g-2"]);
    assert_eq!(login.session_index.as_deref(), Some("_sess-42"));
    assert!(login.assertion_id.starts_with('_'));
    // Debug output never shows the subject.
    assert!(!format!("{login:?}").contains("ada@"));
}

#[tokio::test]
async fn generic_login_with_signed_response_and_assertion_works_with_metadata_config() {
    let answer_for_metadata = samlify(json!({"inResponseTo": "_x"}));
    let idp = IdpConfig::from_metadata(answer_for_metadata["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(idp.entity_id, IDP_ENTITY);
    let sp = ServiceProvider::new(SpConfig::new(SP_ENTITY, ACS, idp).unwrap()).unwrap();
    let req = start(&sp);
    let b64 = respond(
        &req,
        json!({"sign": "both", "attributes": [{"name": "Role", "values": ["member"]}, {"name": "groups", "values": ["eng"]}, {"name": "email", "values": ["ada@example.com"]}]}),
    );
    let login = verify(&sp, &req, &b64).await.unwrap();
    assert_eq!(login.roles, vec!["member"]);
    assert_eq!(login.groups, vec!["eng"]);
    assert_eq!(login.email.as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn response_only_signature_needs_the_opt_in() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"sign": "response"}));
    assert_eq!(
        verify(&sp, &req, &b64).await.unwrap_err(),
        SamlError::Unsigned
    );

    let mut cfg = sp.config().clone();
    cfg.accept_response_signature_only = true;
    let sp = ServiceProvider::new(cfg).unwrap();
    let login = verify(&sp, &req, &b64).await.unwrap();
    assert_eq!(login.name_id, "ada@example.com");
}

#[tokio::test]
async fn comment_inside_the_name_id_does_not_truncate_it() {
    // Exclusive c14n drops comments, so this tampering keeps the signature valid; the value
    // read must still be the whole signed string, not the part before the comment.
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"nameId": "admin@victim.test.attacker.test"}));
    let xml = decode(&b64).replacen(
        "admin@victim.test.attacker.test",
        "admin@victim.test<!---->.attacker.test",
        1,
    );
    let login = verify(&sp, &req, &encode(&xml)).await.unwrap();
    assert_eq!(login.name_id, "admin@victim.test.attacker.test");
}
