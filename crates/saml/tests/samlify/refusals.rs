//! Refusals of responses samlify itself produces (wrong key, audience, clock …) or barely altered.

use super::*;

#[tokio::test]
async fn unsigned_response_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let xml = decode(&respond(&req, json!({})));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sig = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Signature")
        .unwrap();
    let unsigned = format!("{}{}", &xml[..sig.range().start], &xml[sig.range().end..]);
    assert_eq!(
        verify(&sp, &req, &encode(&unsigned)).await.unwrap_err(),
        SamlError::Unsigned
    );
}

#[tokio::test]
async fn response_signed_with_another_key_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let k = keys();
    let b64 = respond(
        &req,
        json!({"keyPem": k.other_key, "certPem": k.other_cert}),
    );
    assert_eq!(
        verify(&sp, &req, &b64).await.unwrap_err(),
        SamlError::BadSignature {
            element: "assertion"
        }
    );
}

#[tokio::test]
async fn certificate_rollover_accepts_either_configured_key() {
    let k = keys();
    let sp = sp_with(&format!("{}{}", k.other_cert, k.cert));
    let req = start(&sp);
    let b64 = respond(&req, json!({}));
    verify(&sp, &req, &b64).await.unwrap();
}

#[tokio::test]
async fn altered_signed_content_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let xml = decode(&respond(&req, json!({})));
    let xml = xml.replacen("factory-admin", "super-admin", 1);
    assert_eq!(
        verify(&sp, &req, &encode(&xml)).await.unwrap_err(),
        SamlError::DigestMismatch {
            element: "assertion"
        }
    );
}

#[tokio::test]
async fn expired_assertion_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let idp_clock = now() - Duration::hours(1);
    let b64 = respond(
        &req,
        json!({"nowMs": idp_clock.unix_timestamp() * 1000, "lifetimeSecs": 300}),
    );
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Expired { .. }), "{err:?}");
}

#[tokio::test]
async fn assertion_from_the_future_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let idp_clock = now() + Duration::hours(1);
    let b64 = respond(&req, json!({"nowMs": idp_clock.unix_timestamp() * 1000}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::NotYetValid { .. }), "{err:?}");
}

#[tokio::test]
async fn small_clock_difference_is_tolerated() {
    let sp = sp();
    let req = start(&sp);
    let idp_clock = now() + Duration::seconds(60);
    let b64 = respond(&req, json!({"nowMs": idp_clock.unix_timestamp() * 1000}));
    verify(&sp, &req, &b64).await.unwrap();
}

#[tokio::test]
async fn wrong_audience_is_refused_with_the_fix() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"audience": "https://other-app.test"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert_eq!(
        err,
        SamlError::Audience {
            got: "https://other-app.test".into(),
            expected: SP_ENTITY.into()
        }
    );
    assert!(err.to_string().contains("set the SP entity id"), "{err}");
}

#[tokio::test]
async fn wrong_recipient_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"recipient": "https://evil.test/acs"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Recipient { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_destination_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"destination": "https://evil.test/acs"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Destination { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_in_response_to_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"inResponseTo": "_someone-elses-request"}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert_eq!(
        err,
        SamlError::InResponseTo {
            got: "_someone-elses-request".into(),
            expected: req.pending.id.clone()
        }
    );
}

#[tokio::test]
async fn unsolicited_response_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({"inResponseTo": ""}));
    assert_eq!(
        verify(&sp, &req, &b64).await.unwrap_err(),
        SamlError::Unsolicited
    );
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(
        &req,
        json!({"idpEntityId": "https://sts.windows.net/other-tenant/"}),
    );
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::Issuer { .. }), "{err:?}");
}

#[tokio::test]
async fn replayed_response_is_refused() {
    let sp = sp();
    let req = start(&sp);
    let b64 = respond(&req, json!({}));
    let cache = MemoryReplayCache::default();
    let login = sp
        .verify_response(&b64, &req.pending, now(), &cache)
        .await
        .unwrap();
    let err = sp
        .verify_response(&b64, &req.pending, now(), &cache)
        .await
        .unwrap_err();
    assert_eq!(err, SamlError::Replayed(login.assertion_id));
}

#[tokio::test]
async fn stale_login_request_is_refused() {
    let sp = sp();
    let req = sp
        .authn_request("r1", now() - Duration::minutes(30))
        .unwrap();
    let b64 = respond(&req, json!({}));
    let err = verify(&sp, &req, &b64).await.unwrap_err();
    assert!(matches!(err, SamlError::RequestExpired { .. }), "{err:?}");
}
