//! People's tokens against a real (SQLite) store: personal access tokens, device-login access
//! tokens and the organization IdP's access tokens each resolve to the person, their
//! organization and role; revoked, expired, unknown and unlinked ones are refused.

use keyward_core::{TokenId, UserId};
use keyward_jose::{AccessClaims, SigningKey};
use keyward_policy::PrincipalKind;
use keyward_store::{OrgRow, SsoLinkRow, TokenKind, TokenRow, UserRow, secret};
use serde_json::json;

use super::tests::{ALL, Issuer, NOW, bearer, install_crypto, refusal, signed, store, world};
use super::*;

struct People {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    platform: Arc<Issuer>,
    platform_key: SigningKey,
    idp: Arc<Issuer>,
    idp_key: SigningKey,
    verifier: Verifier,
    alice: UserId,
    acme: OrgId,
}

async fn people() -> People {
    install_crypto();
    let platform_key = SigningKey::generate().unwrap();
    let idp_key = SigningKey::generate().unwrap();
    let platform = Issuer::start(&[&platform_key]).await;
    let idp = Issuer::start(&[&idp_key]).await;
    let (dir, store) = store().await;
    let alice = UserId::new_random();
    store
        .create_user(&UserRow {
            id: alice,
            email: "alice@acme.example".into(),
            created_at: NOW,
        })
        .await
        .unwrap();
    let acme = OrgId::new_random();
    let org = OrgRow {
        id: acme,
        name: "Acme".into(),
        created_at: NOW,
    };
    store.create_org(&org, alice, "owner").await.unwrap();
    let mut settings = super::tests::settings(&platform);
    settings.idp = Some(IdpSettings {
        issuer: idp.url.clone(),
        audience: "gateway-api".into(),
        jwks_url: None,
        groups_claim: "realm_access.roles".into(),
        ca_file: None,
    });
    let verifier = Verifier::new(settings, store.clone()).await.unwrap();
    People {
        _dir: dir,
        store,
        platform,
        platform_key,
        idp,
        idp_key,
        verifier,
        alice,
        acme,
    }
}

impl People {
    async fn pat(&self, kind: TokenKind, expires_at: Option<i64>) -> (TokenRow, String) {
        let token = secret::generate_token(secret::PERSONAL_PREFIX).unwrap();
        let row = TokenRow {
            id: TokenId::new_random(),
            kind,
            hash: secret::hash_token(&token),
            prefix: secret::display_prefix(&token),
            name: "laptop".into(),
            user_id: Some(self.alice),
            org_id: None,
            automation_id: None,
            created_at: NOW,
            expires_at,
            revoked_at: None,
        };
        self.store.insert_token(&row).await.unwrap();
        (row, token)
    }

    async fn verify(&self, token: &str, now: i64) -> Result<Principal, IdentityError> {
        self.verifier.verify(&bearer(token), &ALL, now).await
    }

    fn idp_token(&self, sub: &str, aud: &str) -> String {
        let claims = json!({
            "iss": self.idp.url, "sub": sub, "aud": [aud, "account"], "exp": NOW + 300,
            "iat": NOW, "email": "alice@corp.example",
            "realm_access": {"roles": ["member", "ml-team"]},
        });
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.idp_key.kid()});
        signed(&self.idp_key, header, &claims)
    }
}

fn owner_principal(kind: PrincipalKind, p: &People, email: &str, groups: &[&str]) -> Principal {
    Principal {
        kind,
        org: p.acme.to_string(),
        subject: format!("user:{}", p.alice),
        email: Some(email.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        role: Some("owner".into()),
        automation: None,
    }
}

#[tokio::test]
async fn a_personal_access_token_passes_then_is_cached_by_hash_until_revocation_shows() {
    let p = people().await;
    let (row, token) = p.pat(TokenKind::Personal, Some(NOW + 3600)).await;
    let principal = p.verify(&token, NOW).await.unwrap();
    assert_eq!(
        principal,
        owner_principal(PrincipalKind::Pat, &p, "alice@acme.example", &[])
    );
    // The cache holds the token's hash, never the token.
    assert_eq!(p.verifier.people.len(), 1);
    assert!(
        p.verifier
            .people
            .get(&format!("pat:{}", row.hash), NOW)
            .is_some()
    );
    assert!(p.verifier.people.get(&token, NOW).is_none());

    p.store
        .revoke_personal_token(p.alice, row.id, NOW + 1)
        .await
        .unwrap();
    // Looked up once, then cached at most 30 s: still the cached answer just after...
    assert!(p.verify(&token, NOW + 29).await.is_ok());
    // ...and refused once the cache entry is gone.
    let message = refusal(p.verify(&token, NOW + PERSON_TTL_SECS).await, &token);
    assert!(message.contains("was revoked"), "{message}");

    // A route's organization must be one the person belongs to.
    let (_, fresh) = p.pat(TokenKind::Personal, None).await;
    let headers = bearer(&fresh);
    let ok = p
        .verifier
        .verify_for(&headers, &ALL, Some(p.acme), NOW)
        .await;
    assert_eq!(ok.unwrap().role.as_deref(), Some("owner"));
    let other = OrgId::new_random();
    let result = p
        .verifier
        .verify_for(&headers, &ALL, Some(other), NOW)
        .await;
    let message = refusal(result, &fresh);
    assert!(
        message.contains(&format!("not a member of organization {other}")),
        "{message}"
    );
    // A route that takes only workloads.
    let result = p.verifier.verify(&headers, &[Accept::Workload], NOW).await;
    assert!(matches!(result, Err(IdentityError::NotAccepted { ref kind, .. }) if kind == "pat"));
}

#[tokio::test]
async fn expired_unknown_and_automation_tokens_are_refused() {
    let p = people().await;
    let (_, expiring) = p.pat(TokenKind::Personal, Some(NOW + 60)).await;
    assert!(p.verify(&expiring, NOW).await.is_ok());
    // The cached entry does not outlive the token itself.
    let message = refusal(p.verify(&expiring, NOW + 60).await, &expiring);
    assert!(message.contains("has expired"), "{message}");

    let unknown = secret::generate_token(secret::PERSONAL_PREFIX).unwrap();
    let message = refusal(p.verify(&unknown, NOW).await, &unknown);
    assert_eq!(message, "the token is not known to the platform");

    let (_, automation) = p.pat(TokenKind::Automation, None).await;
    let message = refusal(p.verify(&automation, NOW).await, &automation);
    assert!(message.contains("is an automation token"), "{message}");

    // A second organization: without the route's, the person's organization is ambiguous.
    let beta = OrgId::new_random();
    let org = OrgRow {
        id: beta,
        name: "Beta".into(),
        created_at: NOW,
    };
    p.store.create_org(&org, p.alice, "member").await.unwrap();
    let (_, token) = p.pat(TokenKind::Personal, None).await;
    let message = refusal(p.verify(&token, NOW).await, &token);
    assert!(message.contains("belongs to 2 organizations"), "{message}");
    let beta_role = p
        .verifier
        .verify_for(&bearer(&token), &ALL, Some(beta), NOW)
        .await
        .unwrap();
    assert_eq!(beta_role.org, beta.to_string());
    assert_eq!(beta_role.role.as_deref(), Some("member"));
}

fn access_claims(p: &People, iss: &str) -> AccessClaims {
    AccessClaims {
        iss: iss.into(),
        sub: format!("user:{}", p.alice),
        aud: "keyward-api".into(),
        iat: NOW,
        nbf: NOW - 5,
        exp: NOW + 600,
        jti: "j".into(),
        client_id: "keyward-cli".into(),
        scope: "openid".into(),
        email: Some("alice@acme.example".into()),
    }
}

#[tokio::test]
async fn a_device_login_access_token_is_a_person_and_a_password_change_cuts_it_off() {
    let p = people().await;
    // Keyward issues people's access tokens as https://<its domain>.
    let iss = format!("https://{}", p.platform.url.trim_start_matches("http://"));
    let token = keyward_jose::mint_access(&p.platform_key, &access_claims(&p, &iss)).unwrap();
    let principal = p.verify(&token, NOW).await.unwrap();
    assert_eq!(
        principal,
        owner_principal(PrincipalKind::Pat, &p, "alice@acme.example", &[])
    );
    // Tampered: another person under the same signature.
    let mut forged = access_claims(&p, &iss);
    forged.sub = format!("user:{}", UserId::new_random());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&forged).unwrap()
        ),
        parts[2]
    );
    let message = refusal(p.verify(&forged, NOW).await, &forged);
    assert!(message.contains("signature does not verify"), "{message}");
    // Expired.
    let message = refusal(p.verify(&token, NOW + 611).await, &token);
    assert!(message.contains("expired"), "{message}");
    // A password change after it was issued: refused once the cache entry is gone.
    p.store
        .end_other_sessions(p.alice, None, NOW + 1)
        .await
        .unwrap();
    let mut claims = access_claims(&p, &iss);
    claims.jti = "other".into();
    let fresh = keyward_jose::mint_access(&p.platform_key, &claims).unwrap();
    let message = refusal(p.verify(&fresh, NOW + 2).await, &fresh);
    assert!(
        message.contains("password of its account changed"),
        "{message}"
    );
}

#[tokio::test]
async fn an_idp_access_token_maps_to_the_linked_person_with_groups() {
    let p = people().await;
    let token = p.idp_token("idp-subject-alice", "gateway-api");
    // Never signed in to Keyward: no link, so no person.
    let message = refusal(p.verify(&token, NOW).await, &token);
    assert!(message.contains("is not known to Keyward"), "{message}");

    p.store
        .create_sso_link(&SsoLinkRow {
            issuer: p.idp.url.clone(),
            subject: "idp-subject-alice".into(),
            user_id: p.alice,
            email: Some("alice@corp.example".into()),
            admitted: true,
            created_at: NOW,
            last_seen_at: NOW,
        })
        .await
        .unwrap();
    let principal = p.verify(&token, NOW).await.unwrap();
    assert_eq!(
        principal,
        owner_principal(
            PrincipalKind::Idp,
            &p,
            "alice@corp.example",
            &["member", "ml-team"]
        )
    );
    // The IdP's keys decide, not the platform's: the same claims signed by the platform fail.
    let claims = json!({"iss": p.idp.url, "sub": "idp-subject-alice", "aud": "gateway-api",
                        "exp": NOW + 300});
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": p.platform_key.kid()});
    let wrong = signed(&p.platform_key, header, &claims);
    let message = refusal(p.verify(&wrong, NOW).await, &wrong);
    assert!(message.starts_with("unknown signing key kid"), "{message}");
    // Another audience.
    let other = p.idp_token("idp-subject-alice", "another-api");
    let message = refusal(p.verify(&other, NOW).await, &other);
    assert!(
        message.contains("this gateway accepts \"gateway-api\""),
        "{message}"
    );
    // A route that does not take IdP tokens.
    let result = p
        .verifier
        .verify(&bearer(&token), &[Accept::Workload], NOW)
        .await;
    assert!(matches!(result, Err(IdentityError::NotAccepted { ref kind, .. }) if kind == "idp"));
    // Withdrawn at the provider (the latest sign-in was refused): refused after the cache.
    p.store
        .record_sso_sign_in(&p.idp.url, "idp-subject-alice", None, false, NOW + 1)
        .await
        .unwrap();
    let message = refusal(p.verify(&token, NOW + PERSON_TTL_SECS + 1).await, &token);
    assert!(
        message.contains("refused at their most recent sign-in"),
        "{message}"
    );
    assert_eq!(p.verifier.key_fetches().1, 1);
}

#[test]
fn groups_are_read_from_a_claim_or_a_dotted_path() {
    let claims = json!({"groups": ["a", "b"], "realm_access": {"roles": ["r"]}, "one": "x"});
    let claims = claims.as_object().unwrap();
    assert_eq!(idp::groups(claims, "groups"), ["a", "b"]);
    assert_eq!(idp::groups(claims, "realm_access.roles"), ["r"]);
    assert_eq!(idp::groups(claims, "one"), ["x"]);
    assert!(idp::groups(claims, "missing.path").is_empty());
}

/// An IdP whose key set is named directly (`jwks_url`, no discovery) and signs with ES256 (a
/// P-256 key made like the platform's TLS keys).
#[tokio::test]
async fn an_es256_idp_key_verifies_and_is_bound_to_its_algorithm() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let files =
        keyward_server::tls::ensure_self_signed(dir.path(), &["127.0.0.1".into()], NOW).unwrap();
    let pem = std::fs::read(&files.key).unwrap();
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut public =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, jsonwebtoken::Algorithm::ES256)
            .unwrap();
    public.common.key_id = Some("ec1".into());
    let keys = Issuer::start(&[]).await;
    keys.keys
        .lock()
        .unwrap()
        .push(serde_json::to_value(&public).unwrap());

    let (_dir, store) = store().await;
    let alice = UserId::new_random();
    store
        .create_user(&UserRow {
            id: alice,
            email: "alice@acme.example".into(),
            created_at: NOW,
        })
        .await
        .unwrap();
    let acme = OrgId::new_random();
    let org = OrgRow {
        id: acme,
        name: "Acme".into(),
        created_at: NOW,
    };
    store.create_org(&org, alice, "member").await.unwrap();
    let issuer = "https://idp.example/realms/acme";
    store
        .create_sso_link(&SsoLinkRow {
            issuer: issuer.into(),
            subject: "s1".into(),
            user_id: alice,
            email: None,
            admitted: true,
            created_at: NOW,
            last_seen_at: NOW,
        })
        .await
        .unwrap();
    let settings = IdentitySettings {
        platform_url: None,
        platform_ca: None,
        workload_audience: "keyward-gateway".into(),
        idp: Some(IdpSettings {
            issuer: issuer.into(),
            audience: "gateway-api".into(),
            jwks_url: Some(Url::parse(&format!("{}/jwks", keys.url)).unwrap()),
            groups_claim: "groups".into(),
            ca_file: None,
        }),
    };
    let verifier = Verifier::new(settings, store).await.unwrap();
    let claims = json!({"iss": issuer, "sub": "s1", "aud": "gateway-api", "exp": NOW + 60,
                        "groups": ["admins"]});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("ec1".into());
    let token = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
    let principal = verifier.verify(&bearer(&token), &ALL, NOW).await.unwrap();
    assert_eq!(principal.kind, PrincipalKind::Idp);
    assert_eq!(principal.org, acme.to_string());
    assert_eq!(principal.groups, ["admins"]);
    assert_eq!(principal.role.as_deref(), Some("member"));
    assert_eq!(principal.email.as_deref(), Some("alice@acme.example"));

    // The EC key under another algorithm's name is refused before any signature check.
    let rsa = SigningKey::generate().unwrap();
    for alg in ["RS256", "ES384"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "ec1"});
        let token = signed(&rsa, header, &claims);
        let message = refusal(verifier.verify(&bearer(&token), &ALL, NOW).await, &token);
        assert!(message.contains(&format!("says alg {alg}")), "{message}");
        assert!(message.contains("is for ES256"), "{message}");
    }
    // Without a platform, tokens of any other issuer have nobody to vouch for them.
    let stranger = json!({"iss": "https://other.example", "sub": "s1", "aud": "gateway-api",
                          "exp": NOW + 60});
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": rsa.kid()});
    let token = signed(&rsa, header, &stranger);
    let message = refusal(verifier.verify(&bearer(&token), &ALL, NOW).await, &token);
    assert!(
        message.starts_with("the token's issuer is \"https://other.example\""),
        "{message}"
    );
    assert_eq!(keys.fetches(), 1);
}

/// Discovery must name exactly the configured issuer; a document naming another is not used.
#[tokio::test]
async fn an_idp_whose_discovery_names_another_issuer_is_unavailable() {
    install_crypto();
    let idp_key = SigningKey::generate().unwrap();
    let idp = Issuer::start(&[&idp_key]).await;
    let (_dir, store) = store().await;
    // The test server's discovery says `iss` is its base URL, not this realm.
    let configured = format!("{}/realms/acme", idp.url);
    let settings = IdentitySettings {
        platform_url: None,
        platform_ca: None,
        workload_audience: "keyward-gateway".into(),
        idp: Some(IdpSettings {
            issuer: configured.clone(),
            audience: "gateway-api".into(),
            jwks_url: None,
            groups_claim: "groups".into(),
            ca_file: None,
        }),
    };
    let verifier = Verifier::new(settings, store).await.unwrap();
    let claims = json!({"iss": configured, "sub": "s1", "aud": "gateway-api", "exp": NOW + 60});
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": idp_key.kid()});
    let token = signed(&idp_key, header, &claims);
    match verifier.verify(&bearer(&token), &ALL, NOW).await {
        Err(IdentityError::Unavailable(message)) => {
            assert!(message.contains("names issuer"), "{message}");
            assert!(message.contains(&configured), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        idp.fetches(),
        0,
        "no keys are fetched from a mismatched document"
    );
}

/// The cache of verified workload tokens never outlives the token, and a cached token still
/// meets each route's own checks (kinds accepted, organization).
#[tokio::test]
async fn a_cached_workload_token_expires_with_the_token_and_is_checked_per_route() {
    let w = world().await;
    let token = w.token(|c| c.exp = NOW + 60);
    assert!(w.verify(&token, NOW).await.is_ok());
    let fetches = w.platform.fetches();
    // Served from the cache: no key fetch, same answer.
    assert!(w.verify(&token, NOW + 30).await.is_ok());
    assert_eq!(w.platform.fetches(), fetches);
    // Past `exp` and its leeway it is refused as if it had never been seen.
    let message = refusal(w.verify(&token, NOW + 75).await, &token);
    assert!(message.contains("the token has expired"), "{message}");

    let fresh = w.token(|c| c.exp = NOW + 600);
    assert!(w.verify(&fresh, NOW).await.is_ok());
    let people_only = w
        .verifier
        .verify_for(&bearer(&fresh), &[Accept::Pat], None, NOW)
        .await;
    assert!(
        matches!(people_only, Err(IdentityError::NotAccepted { .. })),
        "{people_only:?}"
    );
    let elsewhere = w
        .verifier
        .verify_for(&bearer(&fresh), &ALL, Some(OrgId::new_random()), NOW)
        .await;
    assert!(elsewhere.is_err(), "a cached token crossed organizations");
}
