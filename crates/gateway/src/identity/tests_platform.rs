//! Where the gateway reads the platform's keys: at the platform URL it was given, whatever
//! address the discovery document publishes.

use std::sync::atomic::Ordering;

use keyward_jose::SigningKey;

use super::Verifier;
use super::tests::{ALL, Issuer, NOW, bearer, claims, install_crypto, settings, store};

#[tokio::test]
async fn the_platform_key_set_is_read_from_the_platform_url_not_the_published_jwks_uri() {
    install_crypto();
    let key = SigningKey::generate().unwrap();
    let platform = Issuer::start(&[&key]).await;
    platform.unreachable_jwks_uri.store(true, Ordering::SeqCst);
    let (_dir, store) = store().await;
    let verifier = Verifier::new(settings(&platform), store).await.unwrap();
    let token = keyward_jose::mint(&key, &claims(&platform.url)).unwrap();
    let principal = verifier.verify(&bearer(&token), &ALL, NOW).await;
    assert!(principal.is_ok(), "{:?}", principal.err());
    assert_eq!(platform.fetches(), 1);
}
