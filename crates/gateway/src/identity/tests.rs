//! Workload tokens against a local discovery + JWKS server (a small hyper server that counts
//! its key-set fetches): every way a token can be wrong is refused with the check it failed,
//! and a valid one passes. People's tokens are in `tests_people.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use keyward_jose::{SigningKey, WorkloadClaims};
use keyward_policy::{Accept, PrincipalKind};
use serde_json::{Value, json};

use super::*;

pub(crate) const NOW: i64 = 2_000_000_000;
pub(crate) const ALL: [Accept; 3] = [Accept::Workload, Accept::Idp, Accept::Pat];
pub(crate) const ORG: &str = "6f0c1f7e-0000-4000-8000-000000000001";

pub(crate) fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}

/// A local issuer: discovery at `/.well-known/openid-configuration`, keys at `/jwks`.
pub(crate) struct Issuer {
    pub url: String,
    pub keys: Mutex<Vec<Value>>,
    pub jwks_fetches: AtomicUsize,
    /// Discovery names a key set nobody can reach (a public URL seen from inside a cluster).
    pub unreachable_jwks_uri: AtomicBool,
}

impl Issuer {
    pub async fn start(keys: &[&SigningKey]) -> Arc<Issuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = Arc::new(Issuer {
            url: format!("http://{}", listener.local_addr().unwrap()),
            keys: Mutex::new(keys.iter().map(|k| jwk(k)).collect()),
            jwks_fetches: AtomicUsize::new(0),
            unreachable_jwks_uri: AtomicBool::new(false),
        });
        let state = issuer.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let body = state.answer(req.uri().path());
                        async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        issuer
    }

    fn answer(&self, path: &str) -> Bytes {
        // The key set at both addresses: `/jwks` for the identity provider tests, and the
        // platform's own `/oauth2/jwks`, which the gateway reads from the platform URL whatever
        // the discovery document names (here an address nobody can reach, as a public URL
        // seen from inside a cluster).
        let doc = if path == "/jwks" || path == "/oauth2/jwks" {
            self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            json!({"keys": *self.keys.lock().unwrap()})
        } else {
            let jwks_uri = if self.unreachable_jwks_uri.load(Ordering::SeqCst) {
                "https://keyward.invalid/oauth2/jwks".to_owned()
            } else {
                format!("{}/jwks", self.url)
            };
            json!({"issuer": self.url, "jwks_uri": jwks_uri})
        };
        Bytes::from(doc.to_string())
    }

    pub fn publish(&self, key: &SigningKey) {
        self.keys.lock().unwrap().push(jwk(key));
    }

    pub fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

pub(crate) fn jwk(key: &SigningKey) -> Value {
    serde_json::to_value(key.public_jwk()).unwrap()
}

pub(crate) async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = keyward_store::open(None, dir.path()).await.unwrap();
    (dir, store)
}

pub(crate) fn settings(platform: &Issuer) -> IdentitySettings {
    IdentitySettings {
        platform_url: Some(Url::parse(&platform.url).unwrap()),
        platform_ca: None,
        workload_audience: "keyward-gateway".into(),
        idp: None,
    }
}

pub(crate) fn bearer(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

pub(crate) fn claims(iss: &str) -> WorkloadClaims {
    WorkloadClaims {
        iss: iss.into(),
        sub: format!("organization:{ORG}"),
        aud: "keyward-gateway".into(),
        organization_id: ORG.into(),
        iat: NOW,
        nbf: NOW - 5,
        exp: NOW + 600,
        jti: "j1".into(),
        automation_id: "a1".into(),
        automation_name: "llm-proxy".into(),
        kickoff_id: None,
    }
}

/// A compact JWS with any header and payload, signed (RS256) by `key`.
pub(crate) fn signed(key: &SigningKey, header: Value, payload: &Value) -> String {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = key.sign(token.as_bytes()).unwrap();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// The refusal's sentence; it must never contain the token or its signature.
pub(crate) fn refusal(result: Result<Principal, IdentityError>, token: &str) -> String {
    let message = match result {
        Err(IdentityError::Refused { check }) => check,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(!message.contains(token), "{message}");
    if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 8) {
        assert!(!message.contains(signature), "{message}");
    }
    message
}

/// DER of a length.
fn der_len(len: usize) -> Vec<u8> {
    match len {
        0..=127 => vec![len as u8],
        128..=255 => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend(content);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    if bytes[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend(bytes);
    der(0x02, &content)
}

/// The RSA public key as PKCS#1 DER, SubjectPublicKeyInfo DER, and SPKI PEM — the bytes an
/// attacker would use as an HMAC secret.
fn public_key_encodings(key: &SigningKey) -> (Vec<u8>, Vec<u8>, String) {
    let jwk = key.public_jwk();
    let n = URL_SAFE_NO_PAD.decode(&jwk.n).unwrap();
    let e = URL_SAFE_NO_PAD.decode(&jwk.e).unwrap();
    let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    let rsa_oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend(&pkcs1);
    let spki = der(0x30, &[der(0x30, &rsa_oid), der(0x03, &bits)].concat());
    let b64 = STANDARD.encode(&spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    (pkcs1, spki, pem)
}

pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub(crate) platform: Arc<Issuer>,
    key: SigningKey,
    pub(crate) verifier: Verifier,
}

pub(crate) async fn world() -> World {
    install_crypto();
    let key = SigningKey::generate().unwrap();
    let platform = Issuer::start(&[&key]).await;
    let (dir, store) = store().await;
    let verifier = Verifier::new(settings(&platform), store).await.unwrap();
    World {
        _dir: dir,
        platform,
        key,
        verifier,
    }
}

impl World {
    pub(crate) fn token(&self, edit: impl FnOnce(&mut WorkloadClaims)) -> String {
        let mut c = claims(&self.platform.url);
        edit(&mut c);
        keyward_jose::mint(&self.key, &c).unwrap()
    }

    pub(crate) async fn verify(&self, token: &str, now: i64) -> Result<Principal, IdentityError> {
        self.verifier.verify(&bearer(token), &ALL, now).await
    }
}

#[tokio::test]
async fn a_valid_workload_token_passes_with_its_automation_and_organization() {
    let w = world().await;
    let token = w.token(|_| {});
    let principal = w.verify(&token, NOW).await.unwrap();
    assert_eq!(
        principal,
        Principal {
            kind: PrincipalKind::Workload,
            org: ORG.into(),
            subject: format!("organization:{ORG}"),
            email: None,
            groups: vec![],
            role: None,
            automation: Some("llm-proxy".into()),
        }
    );
    // Its organization's route takes it; another organization's does not.
    let org: OrgId = ORG.parse().unwrap();
    let headers = bearer(&token);
    assert!(
        w.verifier
            .verify_for(&headers, &ALL, Some(org), NOW)
            .await
            .is_ok()
    );
    let other = OrgId::new_random();
    let result = w
        .verifier
        .verify_for(&headers, &ALL, Some(other), NOW)
        .await;
    assert!(
        refusal(result, &token).contains(&format!("this route belongs to organization {other}"))
    );
    // A route for people only says so.
    match w
        .verifier
        .verify(&headers, &[Accept::Pat, Accept::Idp], NOW)
        .await
    {
        Err(IdentityError::NotAccepted { kind, accepted }) => {
            assert_eq!(kind, "workload");
            assert_eq!(accepted, "pat, idp");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_verifier_is_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let w = world().await;
    send_sync(&w.verifier);
    let headers = bearer("x");
    let future = w.verifier.verify_for(&headers, &ALL, None, NOW);
    send(&future);
}

#[tokio::test]
async fn no_bearer_token_is_missing() {
    let w = world().await;
    let none = w.verifier.verify(&http::HeaderMap::new(), &ALL, NOW).await;
    assert!(matches!(none, Err(IdentityError::Missing)), "{none:?}");
    let mut basic = http::HeaderMap::new();
    basic.insert(
        http::header::AUTHORIZATION,
        "Basic dXNlcjpwYXNz".parse().unwrap(),
    );
    let basic = w.verifier.verify(&basic, &ALL, NOW).await;
    assert!(matches!(basic, Err(IdentityError::Missing)), "{basic:?}");
    let empty = w.verifier.verify(&bearer(""), &ALL, NOW).await;
    assert!(matches!(empty, Err(IdentityError::Missing)), "{empty:?}");
}

#[tokio::test]
async fn lifetime_is_checked_with_at_most_ten_seconds_of_leeway() {
    let w = world().await;
    let expired = w.token(|c| c.exp = NOW - 11);
    let message = refusal(w.verify(&expired, NOW).await, &expired);
    assert!(message.contains("the token has expired"), "{message}");
    // Within the leeway it still passes: a little clock skew is not a refusal.
    let just = w.token(|c| c.exp = NOW - 9);
    assert!(w.verify(&just, NOW).await.is_ok());

    let early = w.token(|c| c.nbf = NOW + 60);
    let message = refusal(w.verify(&early, NOW).await, &early);
    assert!(message.contains("the token is not valid yet"), "{message}");
    let skewed = w.token(|c| c.nbf = NOW + 9);
    assert!(w.verify(&skewed, NOW).await.is_ok());
}

#[tokio::test]
async fn audience_and_issuer_must_be_exact() {
    let w = world().await;
    let other = w.token(|c| c.aud = "sts.amazonaws.com".into());
    let message = refusal(w.verify(&other, NOW).await, &other);
    assert_eq!(
        message,
        "the token's audience is \"sts.amazonaws.com\", this gateway accepts \"keyward-gateway\""
    );
    let evil = w.token(|c| c.iss = "https://evil.example".into());
    let message = refusal(w.verify(&evil, NOW).await, &evil);
    assert!(
        message.starts_with("the token's issuer is \"https://evil.example\", this gateway accepts"),
        "{message}"
    );
    assert!(message.contains(&w.platform.url), "{message}");
    // A prefix or a trailing slash is another issuer.
    let slash = w.token(|c| c.iss = format!("{}/", w.platform.url));
    assert!(refusal(w.verify(&slash, NOW).await, &slash).contains("issuer"));
}

#[tokio::test]
async fn alg_none_and_shared_secret_algorithms_are_refused() {
    let w = world().await;
    let payload = serde_json::to_value(claims(&w.platform.url)).unwrap();
    let kid = w.key.kid();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let message = refusal(w.verify(&token, NOW).await, &token);
        assert!(message.starts_with("alg none is refused"), "{message}");
    }
    // HS256 keyed with the platform's own public key, in each encoding an attacker might try.
    let (pkcs1, spki, pem) = public_key_encodings(&w.key);
    // The encodings are the real public key: the PEM verifies a genuine token.
    let genuine = w.token(|_| {});
    let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["keyward-gateway"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(&genuine, &decoding, &validation).unwrap();
    for secret in [pem.as_bytes(), &pkcs1[..], &spki[..]] {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS384,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = Some(kid.to_owned());
            let token = jsonwebtoken::encode(
                &header,
                &payload,
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .unwrap();
            let message = refusal(w.verify(&token, NOW).await, &token);
            assert!(
                message.starts_with(&format!("alg {alg:?} is refused")),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn keys_embedded_in_or_pointed_to_by_the_token_are_refused() {
    let w = world().await;
    let attacker = SigningKey::generate().unwrap();
    let payload = serde_json::to_value(claims(&w.platform.url)).unwrap();
    // The attacker's own key in `jwk`, signed by it.
    let header =
        json!({"alg": "RS256", "typ": "JWT", "kid": attacker.kid(), "jwk": jwk(&attacker)});
    let token = signed(&attacker, header, &payload);
    let message = refusal(w.verify(&token, NOW).await, &token);
    assert!(
        message.starts_with("the token's header carries `jwk`"),
        "{message}"
    );
    // Even with the platform's kid and signature, the parameter alone is refused.
    for (name, value) in [
        ("jwk", jwk(&w.key)),
        ("jku", json!("https://evil.example/jwks")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": w.key.kid()});
        header[name] = value;
        let token = signed(&w.key, header, &payload);
        let message = refusal(w.verify(&token, NOW).await, &token);
        assert!(
            message.starts_with(&format!("the token's header carries `{name}`")),
            "{message}"
        );
    }
    // The same token without the parameter passes: only the parameter was refused.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": w.key.kid()});
    assert!(
        w.verify(&signed(&w.key, header, &payload), NOW)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_signature_covers_the_exact_bytes() {
    let w = world().await;
    let token = w.token(|_| {});
    // Truncated signature, by one base64 character and by half.
    for cut in [1, 4, 170] {
        let truncated = &token[..token.len() - cut];
        let message = refusal(w.verify(truncated, NOW).await, truncated);
        assert!(
            message.starts_with("the token's signature does not verify"),
            "{message}"
        );
    }
    // Another payload under the genuine signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims(&w.platform.url);
    forged.automation_name = "admin".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap()),
        parts[2]
    );
    let message = refusal(w.verify(&forged, NOW).await, &forged);
    assert!(
        message.starts_with("the token's signature does not verify"),
        "{message}"
    );
    // A key the platform publishes, but the token was signed by another.
    let other = SigningKey::generate().unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": w.key.kid()});
    let wrong = signed(
        &other,
        header,
        &serde_json::to_value(claims(&w.platform.url)).unwrap(),
    );
    assert!(refusal(w.verify(&wrong, NOW).await, &wrong).contains("signature does not verify"));
    // An RSA key used with an EC algorithm name.
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": w.key.kid()});
    let mixed = signed(
        &w.key,
        header,
        &serde_json::to_value(claims(&w.platform.url)).unwrap(),
    );
    let message = refusal(w.verify(&mixed, NOW).await, &mixed);
    assert!(message.contains("says alg ES256"), "{message}");
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_every_ten_seconds_and_a_rotated_key_is_found() {
    let w = world().await;
    assert_eq!(
        w.platform.fetches(),
        0,
        "nothing is fetched before the first token"
    );
    assert!(w.verify(&w.token(|_| {}), NOW).await.is_ok());
    assert_eq!(w.platform.fetches(), 1);
    // Held keys are used from memory.
    for _ in 0..5 {
        assert!(w.verify(&w.token(|_| {}), NOW + 1).await.is_ok());
    }
    assert_eq!(w.platform.fetches(), 1);

    let stranger = SigningKey::generate().unwrap();
    let unknown = keyward_jose::mint(&stranger, &claims(&w.platform.url)).unwrap();
    let message = refusal(w.verify(&unknown, NOW + 2).await, &unknown);
    assert!(
        message.starts_with(&format!("unknown signing key kid {:?}", stranger.kid())),
        "{message}"
    );
    // Within 10 s of the last fetch: no new fetch.
    assert_eq!(w.platform.fetches(), 1);
    assert!(w.verify(&unknown, NOW + 10).await.is_err());
    assert_eq!(w.platform.fetches(), 2, "10 s later one refetch");
    // A flood of unknown kids, concurrently: at most one fetch per window.
    let mut all = Vec::new();
    for _ in 0..20 {
        all.push(w.verify(&unknown, NOW + 15));
    }
    for result in futures_join(all).await {
        assert!(result.is_err());
    }
    assert_eq!(w.platform.fetches(), 2);

    // The platform rotates: the new key is published; tokens signed with it pass once fetched,
    // and concurrent requests share that one fetch.
    let next = SigningKey::generate().unwrap();
    w.platform.publish(&next);
    let rotated = keyward_jose::mint(&next, &claims(&w.platform.url)).unwrap();
    let mut all = Vec::new();
    for _ in 0..20 {
        all.push(w.verify(&rotated, NOW + 20));
    }
    for result in futures_join(all).await {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(w.platform.fetches(), 3);
    assert_eq!(w.verifier.key_fetches(), (3, 0));
}

/// Polls the futures together on this task (they borrow the world, so they cannot be
/// spawned): they run concurrently, as requests on one gateway do.
pub(crate) async fn futures_join<F: std::future::Future>(all: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = all.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn an_unreachable_platform_is_unavailable_not_a_refusal() {
    install_crypto();
    let (_dir, store) = store().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut settings = settings(&Issuer {
        url,
        keys: Mutex::new(vec![]),
        jwks_fetches: AtomicUsize::new(0),
        unreachable_jwks_uri: AtomicBool::new(false),
    });
    settings.idp = None;
    let verifier = Verifier::new(settings, store).await.unwrap();
    let key = SigningKey::generate().unwrap();
    let token = keyward_jose::mint(&key, &claims("https://x.example")).unwrap();
    let result = verifier.verify(&bearer(&token), &ALL, NOW).await;
    match result {
        Err(IdentityError::Unavailable(message)) => {
            assert!(message.contains("the platform"), "{message}");
            assert!(!message.contains(&token));
        }
        other => panic!("{other:?}"),
    }
}
