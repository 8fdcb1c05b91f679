//! Acceptance c: the three-phase rotation observed from outside, and one rotation per cycle
//! with two replicas on one database.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::common::*;

#[allow(clippy::disallowed_methods)]
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A schedule that runs a full cycle in seconds: each key signs 6 s, is published 3 s before,
/// and stays 2 s (token TTL) + 1 s (cache age) after it is superseded.
pub(crate) fn short_schedule(options: ServerOptions) -> ServerOptions {
    options
        .env("KEYWARD_ALLOW_SHORT_DURATIONS", "1")
        .env("KEYWARD_KEY_ROTATION_INTERVAL", "6")
        .env("KEYWARD_KEY_PUBLISH_LEAD", "3")
        .env("KEYWARD_TOKEN_TTL", "2")
        .env("KEYWARD_JWKS_CACHE_AGE", "1")
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_published_before_they_sign_and_retired_after_their_tokens_expire() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = short_schedule(ServerOptions::new(&Backend::Sqlite, dir.path()));
    let server = Server::start(&options);
    let (_, token) = automation_with_token(&server, "crew").await;
    let client = server.client();

    let started = Instant::now();
    // kid -> first and last time seen in the JWKS.
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut last_seen: HashMap<String, Instant> = HashMap::new();
    // Tokens with the time they were minted, their kid and their expiry.
    let mut tokens: Vec<(Instant, String, String, i64)> = Vec::new();
    let mut max_ages = Vec::new();
    while started.elapsed() < Duration::from_secs(22) {
        let res = client
            .get(format!("{}/oauth2/jwks", server.url))
            .send()
            .await
            .unwrap();
        let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
        let set: serde_json::Value = res.json().await.unwrap();
        let now = Instant::now();
        for kid in kids(&set) {
            first_seen.entry(kid.clone()).or_insert(now);
            last_seen.insert(kid, now);
        }
        max_ages.push(cache);
        // Every earlier token that has not expired yet still verifies against today's JWKS — also
        // after its key was superseded.
        let unix_now = unix_now();
        for (_, kid, jwt, exp) in tokens.iter().filter(|t| t.3 > unix_now) {
            if let Err(e) = verify(jwt, &set, &server.url, "sts.amazonaws.com") {
                // The token may have expired between the two clock readings.
                assert!(
                    *exp <= self::unix_now(),
                    "an unexpired token of {kid} no longer verifies: {e}"
                );
            }
        }

        let (status, minted) = mint(&server, &token, "sts.amazonaws.com").await;
        assert_eq!(status, 200, "{minted}");
        let jwt = minted["token"].as_str().unwrap().to_owned();
        let kid = jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap();
        let claims: serde_json::Value = {
            use base64::Engine;
            let payload = jwt.split('.').nth(1).unwrap();
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap()
        };
        // The key that signed must have been in a JWKS fetched *before* this mint.
        let seen = first_seen.get(&kid).copied();
        assert!(
            seen.is_some_and(|t| t <= now),
            "token signed by {kid} before that kid was published"
        );
        // A token verifies against the JWKS of any later moment of its lifetime.
        if let Err(e) = verify(&jwt, &set, &server.url, "sts.amazonaws.com") {
            panic!(
                "a token signed by {kid} does not verify against the JWKS fetched just before: {e}"
            );
        }
        tokens.push((now, kid, jwt, claims["exp"].as_i64().unwrap()));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let signing_kids: Vec<&String> = {
        let mut seen = HashSet::new();
        tokens
            .iter()
            .map(|t| &t.1)
            .filter(|k| seen.insert(*k))
            .collect()
    };
    assert!(
        signing_kids.len() >= 3,
        "at least two rotations in 22 s: {signing_kids:?}"
    );
    for kid in &signing_kids {
        let first_mint = tokens.iter().find(|t| &t.1 == *kid).unwrap().0;
        let published = first_seen[*kid];
        // Published at least ~lead before signing (the first key signs at once: it had no predecessor).
        if *kid != signing_kids[0] {
            assert!(
                first_mint.duration_since(published) >= Duration::from_millis(2500),
                "{kid} was published {:?} before it signed",
                first_mint.duration_since(published)
            );
        }
    }
    // A retired key stayed published for its tokens' lifetime (2 s) + cache age (1 s) after it
    // last signed; a key dropped at once would vanish right after its last token.
    let final_set = kids(&jwks(&server).await);
    let retired: Vec<&&String> = signing_kids
        .iter()
        .filter(|k| !final_set.contains(k))
        .collect();
    assert!(!retired.is_empty(), "some key retired within the test");
    for kid in retired {
        let last_mint = tokens
            .iter()
            .filter(|t| &t.1 == *kid)
            .map(|t| t.0)
            .max()
            .unwrap();
        let still_published = last_seen[*kid].duration_since(last_mint);
        assert!(
            still_published >= Duration::from_millis(1500),
            "{kid} left the JWKS {still_published:?} after its last token; its tokens live 2 s"
        );
    }
    // Every Cache-Control max-age was within the cap.
    for cache in &max_ages {
        let age: i64 = cache
            .trim_start_matches("public, max-age=")
            .parse()
            .unwrap();
        assert!((0..=1).contains(&age), "{cache}");
    }

    // kids are never reused: the key list has no duplicates and matches the audit trail.
    let (ok, listing, err) = keyward_cli(&options, &["keys", "list", "--json"]);
    assert!(ok, "{err}");
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    let all_kids: HashSet<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(all_kids.len(), keys.len());
    assert!(keys.iter().any(|k| k["state"] == "retired"), "{listing}");
    let (ok, out, err) = keyward_cli(&options, &["audit", "verify"]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_postgres_rotate_exactly_once_per_cycle() {
    install_crypto();
    let Some(backend) = fresh_postgres().await else {
        eprintln!("skipped: KEYWARD_TEST_DATABASE_URL is not set (scripts/test sets it)");
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let a_opts = short_schedule(ServerOptions::new(&backend, dir_a.path()))
        .env("KEYWARD_MASTER_KEY", master);
    let mut b_opts = short_schedule(ServerOptions::new(&backend, dir_b.path()))
        .env("KEYWARD_MASTER_KEY", master);
    b_opts.bootstrap = false;
    let a = Server::start(&a_opts);
    let b = Server::start(&b_opts);
    let (_, token) = automation_with_token(&a, "crew").await;

    // Both replicas mint throughout; both must only ever use published keys.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        for server in [&a, &b] {
            let (status, minted) = mint(server, &token, "sts.amazonaws.com").await;
            assert_eq!(status, 200, "{minted}");
            let set = jwks(server).await;
            verify(
                minted["token"].as_str().unwrap(),
                &set,
                &server.url,
                "sts.amazonaws.com",
            )
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let (ok, listing, err) = keyward_cli(&a_opts, &["keys", "list", "--json"]);
    assert!(ok, "{err}");
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    let mut activations: Vec<i64> = keys
        .iter()
        .map(|k| k["activates_at"].as_i64().unwrap())
        .collect();
    activations.sort();
    assert!(activations.len() >= 3, "{listing}");
    // Had both replicas rotated, two keys would share a cycle: successive activations would be
    // closer together than the rotation interval.
    for pair in activations.windows(2) {
        assert!(
            pair[1] - pair[0] >= 6,
            "two keys in one cycle: {activations:?}"
        );
    }
    let published = exec_sql(
        &a_opts,
        "SELECT 1 FROM audit_events WHERE kind = 'signing_key.published'",
    )
    .await;
    assert_eq!(
        published as usize,
        keys.len(),
        "one publication event per key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_publishes_a_successor_that_signs_after_the_lead() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&Backend::Sqlite, dir.path())
        .env("KEYWARD_ALLOW_SHORT_DURATIONS", "1")
        .env("KEYWARD_KEY_ROTATION_INTERVAL", "1000")
        .env("KEYWARD_KEY_PUBLISH_LEAD", "3")
        .env("KEYWARD_TOKEN_TTL", "2")
        .env("KEYWARD_JWKS_CACHE_AGE", "1");
    let server = Server::start(&options);
    let (_, token) = automation_with_token(&server, "crew").await;
    let before = kids(&jwks(&server).await);
    assert_eq!(before.len(), 1);

    let started = Instant::now();
    let (ok, out, err) = keyward_cli(&options, &["keys", "rotate"]);
    assert!(ok, "{out}{err}");
    let new_kid = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(';')
        .to_owned();
    assert!(!before.contains(&new_kid));
    // A second rotation while one is pending is refused with the reason.
    let (ok, _, err) = keyward_cli(&options, &["keys", "rotate"]);
    assert!(!ok);
    assert!(err.contains("already published"), "{err}");

    // The server picks the new key up, publishes it, and signs with it only after the lead
    // (activation is at a whole second, so at least lead - 1 s after the command).
    let mut published_at = None;
    let mut signed_at = None;
    while started.elapsed() < Duration::from_secs(8) && signed_at.is_none() {
        if published_at.is_none() && kids(&jwks(&server).await).contains(&new_kid) {
            published_at = Some(started.elapsed());
        }
        let (_, minted) = mint(&server, &token, "sts.amazonaws.com").await;
        let kid = jsonwebtoken::decode_header(minted["token"].as_str().unwrap())
            .unwrap()
            .kid
            .unwrap();
        if kid == new_kid {
            signed_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (published_at, signed_at) = (
        published_at.expect("published"),
        signed_at.expect("signing"),
    );
    assert!(published_at < Duration::from_secs(2), "{published_at:?}");
    assert!(
        signed_at >= Duration::from_millis(2000),
        "signed {signed_at:?} after rotate; the lead is 3 s"
    );
    let (ok, listing, _) = keyward_cli(&options, &["keys", "list"]);
    assert!(ok);
    assert!(
        listing.contains(&new_kid) && listing.contains("active") && listing.contains("retiring"),
        "{listing}"
    );
}
