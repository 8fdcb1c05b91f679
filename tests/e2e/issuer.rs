use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const GCP_AUD: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/keyward/providers/keyward-oidc";
const AUDIENCES: [&str; 3] = [GCP_AUD, "api://AzureADTokenExchange", "sts.amazonaws.com"];

#[tokio::test(flavor = "multi_thread")]
async fn tokens_for_each_cloud_verify_from_the_issuer_url_alone() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let org = org_id(&server);
        let (automation, token) = automation_with_token(&server, "research-crew").await;
        let client = server.client();

        let (status, discovery) = call(
            &client,
            Method::GET,
            &format!("{}/.well-known/openid-configuration", server.url),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            discovery["issuer"],
            server.url.as_str(),
            "{}",
            backend.name()
        );
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        assert_eq!(jwks_uri, format!("{}/oauth2/jwks", server.url));
        assert_eq!(
            discovery["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
        let (status, jwks) = call(&client, Method::GET, jwks_uri, None, None).await;
        assert_eq!(status, 200);
        for key in jwks["keys"].as_array().unwrap() {
            assert_eq!(key["kty"], "RSA");
            assert_eq!(key["alg"], "RS256");
            assert_eq!(key["use"], "sig");
        }

        for audience in AUDIENCES {
            let (status, minted) = mint(&server, &token, audience).await;
            assert_eq!(status, 200, "{minted}");
            assert_eq!(minted["audience"], audience);
            let jwt = minted["token"].as_str().unwrap();
            let header = jsonwebtoken::decode_header(jwt).unwrap();
            assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
            let claims = verify(jwt, &jwks, &server.url, audience).unwrap();
            assert_eq!(claims["sub"], format!("organization:{org}"));
            assert_eq!(claims["organization_id"], org.as_str());
            assert_eq!(claims["automation_id"], automation.as_str());
            assert_eq!(claims["automation_name"], "research-crew");
            let iat = claims["iat"].as_i64().unwrap();
            assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);
            assert_eq!(claims["nbf"].as_i64().unwrap(), iat - 5);
            assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        }

        // Every mint is audited with jti, kid, sub, aud and the automation — never the token.
        let (status, page) = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/audit?type=workload_token.minted", server.url),
            Some(BOOTSTRAP_TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 3);
        for event in events {
            let data = &event["data"];
            for field in ["jti", "kid", "sub", "aud", "automation_id", "client_ip"] {
                assert!(!data[field].is_null(), "audit event lacks {field}: {event}");
            }
            assert_eq!(data["client_ip"], "127.0.0.1");
            assert!(
                !event.to_string().contains("eyJ"),
                "a token leaked into the audit log"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_the_jwks_and_earlier_tokens_keep_verifying() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&backend, dir.path());
        let server = Server::start(&options);
        let (_, token) = automation_with_token(&server, "crew").await;
        let (_, minted) = mint(&server, &token, "sts.amazonaws.com").await;
        let before = jwks(&server).await;
        let issuer = server.url.clone();
        let status = server.terminate();
        assert!(
            status.success(),
            "SIGTERM is a clean shutdown ({}): {status:?}",
            backend.name()
        );

        let again = Server::start(&options);
        let after = jwks(&again).await;
        assert_eq!(kids(&before), kids(&after), "{}", backend.name());
        assert_eq!(before, after);
        // The port changes with port 0, but the issuer in old tokens is the old URL.
        verify(
            minted["token"].as_str().unwrap(),
            &after,
            &issuer,
            "sts.amazonaws.com",
        )
        .unwrap();
        let (status, body) = mint(&again, &token, "sts.amazonaws.com").await;
        assert_eq!(
            status, 200,
            "the automation token survives a restart: {body}"
        );
        assert!(
            again
                .banner
                .iter()
                .all(|l| !l.starts_with("First login (one-time")),
            "no second setup"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organizations_ids_are_not_found() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite;
    let server = Server::start(&ServerOptions::new(&backend, dir.path()));
    let first_org = org_id(&server);
    let client = server.client();
    let (automation, _) = automation_with_token(&server, "crew").await;

    let (status, second) = call(
        &client,
        Method::POST,
        &format!("{}/api/v1/orgs", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "Second"})),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    let second_org = second["uuid"].as_str().unwrap();

    // With two organizations, the caller must choose one.
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/automations", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "organization_required");

    let get = |org: String, path: String| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let res = client
                .get(url)
                .bearer_auth(BOOTSTRAP_TOKEN)
                .header("X-Crewai-Organization-Id", org)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = get(
        first_org.clone(),
        format!("/api/v1/automations/{automation}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = get(
        second_org.to_owned(),
        format!("/api/v1/automations/{automation}"),
    )
    .await;
    assert_eq!(
        status, 404,
        "an automation of another org is not found: {body}"
    );
    let (status, body) = get(second_org.to_owned(), "/api/v1/automations/crew".into()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(
        uuid::Uuid::new_v4().to_string(),
        "/api/v1/automations".into(),
    )
    .await;
    assert_eq!(status, 404, "an unknown org is not found: {body}");
    let (status, body) = get("4711".into(), "/api/v1/automations".into()).await;
    assert_eq!(
        status, 400,
        "a numeric org id is refused with the reason: {body}"
    );
    assert!(body["message"].as_str().unwrap().contains("UUID"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_setup_link_creates_the_owner_exactly_once() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, dir.path());
    options.bootstrap = false;
    let server = Server::start(&options);
    let link = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("First login (one-time setup link, valid 24 h): "))
        .expect("setup link printed")
        .to_owned();
    assert!(link.starts_with(&format!("{}/setup#token=", server.url)));
    let secret = link.split("#token=").nth(1).unwrap();
    assert!(
        !server.stderr().contains(secret),
        "the setup secret must not reach the log"
    );
    let client = server.client();
    let setup = format!("{}/api/v1/setup", server.url);

    let (status, page) = call(
        &client,
        Method::GET,
        &format!("{}/setup", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("Set up Keyward"));

    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": "kws_wrong", "org_name": "Acme", "email": "me@acme.example"})),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": secret, "org_name": "Acme", "email": "me@acme.example"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let pat = body["token"]["token"].as_str().unwrap();
    let (status, orgs) = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/orgs", server.url),
        Some(pat),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(orgs[0]["name"], "Acme");
    assert_eq!(orgs[0]["role"], "owner");

    let (status, body) = call(
        &client,
        Method::POST,
        &setup,
        None,
        Some(json!({"setup_token": secret, "org_name": "Evil", "email": "x@evil.example"})),
    )
    .await;
    assert_eq!(status, 409, "setup runs once: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_answer() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let (_, token) = automation_with_token(&server, "crew").await;
    mint(&server, &token, "sts.amazonaws.com").await;
    let client = server.client();
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{}/healthz", server.url),
        None,
        None,
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{}/readyz", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    let metrics = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("keyward_workload_tokens_minted_total"),
        "{metrics}"
    );
    assert!(metrics.contains("keyward_http_requests_total"));
}

/// Acceptance g: neither the signing keys nor any bearer token is stored in clear.
#[tokio::test(flavor = "multi_thread")]
async fn no_private_key_or_token_is_stored_in_plaintext() {
    install_crypto();
    // A known key, so its exact bytes can be searched for.
    let key_pem = rsa_pem_pkcs1();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine;
    let key_der = base64::engine::general_purpose::STANDARD
        .decode(&key_body)
        .unwrap();
    for backend in backends().await {
        // Two servers: one with generated keys, one with OIDC_PRIVATE_KEY.
        for configured in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let backend = match (&backend, configured) {
                (Backend::Postgres { .. }, true) => fresh_postgres().await.unwrap(),
                _ => backend.clone(),
            };
            let mut options = ServerOptions::new(&backend, dir.path());
            if configured {
                options = options.env("OIDC_PRIVATE_KEY", &key_pem);
            }
            let server = Server::start(&options);
            let (_, automation_token) = automation_with_token(&server, "crew").await;
            let (status, pat) = call(
                &server.client(),
                Method::POST,
                &format!("{}/api/v1/tokens", server.url),
                Some(BOOTSTRAP_TOKEN),
                Some(json!({"name": "laptop", "expires_in": 3600})),
            )
            .await;
            assert_eq!(status, 201);
            let pat = pat["token"].as_str().unwrap().to_owned();
            let (_, minted) = mint(&server, &automation_token, "sts.amazonaws.com").await;
            drop(server);

            let raw = crate::common::raw_database(&options).await;
            let needles: Vec<(&str, Vec<u8>)> = vec![
                ("automation token", automation_token.as_bytes().to_vec()),
                ("personal token", pat.as_bytes().to_vec()),
                ("bootstrap token", BOOTSTRAP_TOKEN.as_bytes().to_vec()),
                (
                    "minted JWT",
                    minted["token"].as_str().unwrap().as_bytes().to_vec(),
                ),
                ("PEM marker", b"PRIVATE KEY".to_vec()),
                // The PKCS#8 prefix of every RSA private key (version 0, rsaEncryption OID).
                (
                    "PKCS#8 RSA header",
                    hex::decode("020100300d06092a864886f70d010101050004").unwrap(),
                ),
                // Bytes of the private exponent and primes: PKCS#1 puts them after the ~270 bytes of
                // version, modulus and public exponent (the modulus itself is public, in the JWKS).
                ("configured key (DER)", key_der[400..464].to_vec()),
                (
                    "configured key (base64)",
                    key_body.as_bytes()[600..664].to_vec(),
                ),
            ];
            for (what, needle) in needles {
                assert!(
                    !raw.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{what} found in plaintext in the {} database (configured key: {configured})",
                    backend.name()
                );
            }
            // The dump really holds the data: public values are there in clear.
            assert!(
                raw.windows(18).any(|w| w == b"owner@acme.example"),
                "the dump misses known rows"
            );
        }
    }
}

/// A fresh RSA-2048 key in the traditional PKCS#1 PEM form, from an independent implementation.
pub fn rsa_pem_pkcs1() -> String {
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .expect("openssl is installed");
    assert!(out.status.success());
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    pem
}
