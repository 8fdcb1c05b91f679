//! Acceptance e: bad settings stop startup naming the setting; bad requests get 4xx JSON.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_oidc_private_key_stops_startup_naming_the_variable() {
    install_crypto();
    for bad in [
        "not a pem",
        "-----BEGIN PRIVATE KEY-----\nMIIBVQ==\n-----END PRIVATE KEY-----\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions::new(&Backend::Sqlite, dir.path()).env("OIDC_PRIVATE_KEY", bad);
        let failure = Server::try_start(&options)
            .err()
            .expect("startup must fail");
        assert!(failure.status.is_some_and(|s| !s.success()), "{failure:?}");
        assert!(
            failure.stderr.contains("OIDC_PRIVATE_KEY"),
            "{}",
            failure.stderr
        );
        assert!(
            !failure.stderr.contains("MIIBVQ"),
            "the key material is not echoed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oidc_private_key_signs_and_rotation_is_manual() {
    install_crypto();
    let pem = crate::issuer::rsa_pem_pkcs1();
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(&Backend::Sqlite, dir.path()).env("OIDC_PRIVATE_KEY", &pem);
    let server = Server::start(&options);
    let (_, token) = automation_with_token(&server, "crew").await;
    let (status, minted) = mint(&server, &token, "api://AzureADTokenExchange").await;
    assert_eq!(status, 200);
    let set = jwks(&server).await;
    assert_eq!(kids(&set).len(), 1);
    verify(
        minted["token"].as_str().unwrap(),
        &set,
        &server.url,
        "api://AzureADTokenExchange",
    )
    .unwrap();
    drop(server);
    // Same key after a restart: same kid.
    let again = Server::start(&options);
    assert_eq!(kids(&jwks(&again).await), kids(&set));
    let (ok, _, err) = keyward_cli(&options, &["keys", "rotate"]);
    assert!(!ok);
    assert!(err.contains("OIDC_PRIVATE_KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_stop_startup_naming_them() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    for (key, value, named) in [
        ("OIDC_ISSUER", "ftp://nope", "OIDC_ISSUER"),
        ("KEYWARD_TOKEN_TTL", "10", "KEYWARD_TOKEN_TTL"),
        ("KEYWARD_MASTER_KEY", "short", "KEYWARD_MASTER_KEY"),
        ("KEYWARD_DATABASE_URL", "mysql://x", "KEYWARD_DATABASE_URL"),
    ] {
        let options = ServerOptions::new(&Backend::Sqlite, dir.path()).env(key, value);
        let failure = Server::try_start(&options)
            .err()
            .expect("startup must fail");
        assert!(failure.stderr.contains(named), "{key}: {}", failure.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_determinable_issuer_discovery_and_jwks_answer_503_naming_oidc_issuer() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, dir.path()).arg("--http");
    // Listening on all interfaces with no public URL: nobody can know the issuer.
    options.listen = "0.0.0.0:0".into();
    let server = Server::start(&options);
    let client = server.client();
    for path in ["/.well-known/openid-configuration", "/oauth2/jwks"] {
        let (status, body) = call(
            &client,
            Method::GET,
            &format!("{}{path}", server.url),
            None,
            None,
        )
        .await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"], "issuer_not_configured");
        assert!(
            body["message"].as_str().unwrap().contains("OIDC_ISSUER"),
            "{body}"
        );
    }
    let (_, token) = automation_with_token(&server, "crew").await;
    let (status, body) = mint(&server, &token, "sts.amazonaws.com").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_automation_tokens_are_401_json() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let (automation, token) = automation_with_token(&server, "crew").await;
    let client = server.client();
    let url = format!("{}/api/v1/workload-identity/token", server.url);
    let body = json!({"audience": "sts.amazonaws.com"});

    let (status, err) = call(&client, Method::POST, &url, None, Some(body.clone())).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("missing_token")),
        "{err}"
    );
    let (status, err) = call(
        &client,
        Method::POST,
        &url,
        Some("kwa_not-a-real-token"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_token")),
        "{err}"
    );
    let (status, err) = call(
        &client,
        Method::POST,
        &url,
        Some(BOOTSTRAP_TOKEN),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (403, Some("wrong_token_kind")),
        "a PAT is not an automation token: {err}"
    );

    // Revoked.
    let (status, listed) = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/automations/{automation}/tokens", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains(&token),
        "listings never show the secret"
    );
    let token_id = listed[0]["id"].as_str().unwrap();
    let (status, revoked) = call(
        &client,
        Method::DELETE,
        &format!(
            "{}/api/v1/automations/{automation}/tokens/{token_id}",
            server.url
        ),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, err) = call(
        &client,
        Method::POST,
        &url,
        Some(&token),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("token_revoked")),
        "{err}"
    );

    // Expired.
    let (status, short) = call(
        &client,
        Method::POST,
        &format!("{}/api/v1/automations/crew/tokens", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "short", "expires_in": 1})),
    )
    .await;
    assert_eq!(status, 201);
    let short = short["token"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &client,
        Method::POST,
        &url,
        Some(&short),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200);
    // The token lives one second: let two pass on the server's clock instead of sleeping.
    server.advance_clock(2);
    let (status, err) = call(
        &client,
        Method::POST,
        &url,
        Some(&short),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("token_expired")),
        "{err}"
    );

    // Deleting the automation ends its tokens too.
    let (_, other) = automation_with_token(&server, "doomed").await;
    let (status, _) = call(
        &client,
        Method::DELETE,
        &format!("{}/api/v1/automations/doomed", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(&client, Method::POST, &url, Some(&other), Some(body)).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_4xx_never_500() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let (_, token) = automation_with_token(&server, "crew").await;
    let client = server.client();
    let url = format!("{}/api/v1/workload-identity/token", server.url);

    for (audience, hint) in [
        ("https://example.com", "unsupported audience"),
        (
            "//iam.googleapis.com/projects/my-project/locations/global/workloadIdentityPools/pool1/providers/prov1",
            "project NUMBER",
        ),
        ("api://azureadtokenexchange", "unsupported audience"),
    ] {
        let (status, err) = mint(&server, &token, audience).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["field"], "audience");
        assert!(err["message"].as_str().unwrap().contains(hint), "{err}");
    }
    let (status, err) = call(&client, Method::POST, &url, Some(&token), Some(json!({}))).await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("audience")),
        "{err}"
    );
    let (status, err) = call(
        &client,
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"audience": "sts.amazonaws.com", "ttl": 99})),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused: {err}");
    assert!(err["message"].as_str().unwrap().contains("ttl"), "{err}");

    let raw = |body: Vec<u8>, content_type: &'static str| {
        let client = client.clone();
        let url = url.clone();
        let token = token.clone();
        async move {
            let res = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, err) = raw(b"{not json".to_vec(), "application/json").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_json")),
        "{err}"
    );
    let (status, err) = raw(b"audience=x".to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!(status, 415, "{err}");
    let mut huge = b"{\"audience\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(b"\"}");
    let (status, err) = raw(huge, "application/json").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (413, Some("body_too_large")),
        "{err}"
    );

    // People's endpoints validate too.
    let (status, err) = call(
        &client,
        Method::POST,
        &format!("{}/api/v1/automations", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "has space"})),
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("name")),
        "{err}"
    );
    let (status, err) = call(
        &client,
        Method::POST,
        &format!("{}/api/v1/automations", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"name": "crew"})),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    let (status, err) = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/audit?since=yesterday", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("since")),
        "{err}"
    );
    let (status, err) = call(
        &client,
        Method::GET,
        &format!("{}/api/v1/nope", server.url),
        Some(BOOTSTRAP_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = call(&client, Method::PUT, &url, Some(&token), None).await;
    assert_eq!(status, 405, "{err}");
    assert!(
        !server.stderr().contains("internal error"),
        "no 500s: {}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_certificates_replace_the_generated_ones() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let ca = dir.path().join("ca.pem");
    // An operator's own CA and a server certificate it signed, made by an independent tool.
    let script = format!(
        "set -e; cd {dir}; \
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=Operator-CA -keyout ca.key -out ca.pem; \
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out req.csr; \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; \
         openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out cert.pem",
        dir = dir.path().display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = dir.path().join("data");
    let options = ServerOptions::new(&Backend::Sqlite, &data)
        .arg("--tls-cert")
        .arg(cert.to_str().unwrap())
        .arg("--tls-key")
        .arg(key.to_str().unwrap());
    let mut server = Server::start(&options);
    assert!(
        server.ca_file.is_none(),
        "no generated CA is announced: {:?}",
        server.banner
    );
    assert!(!data.join("tls").exists());
    server.ca_file = Some(ca);
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &format!("{}/healthz", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A key file that is not a key stops startup naming the flag.
    let bad = ServerOptions::new(&Backend::Sqlite, &dir.path().join("d2"))
        .arg("--tls-cert")
        .arg(cert.to_str().unwrap())
        .arg("--tls-key")
        .arg(cert.to_str().unwrap());
    let failure = Server::try_start(&bad).err().expect("must fail");
    assert!(failure.stderr.contains("--tls-key"), "{}", failure.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_serve_listens_on_https_127_0_0_1_8443() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(&Backend::Sqlite, dir.path());
    options.bootstrap = false;
    // No --listen: the documented default.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("KEYWARD_LISTEN")
        .env_remove("KEYWARD_DATABASE_URL");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        let done = line == "Ready.";
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("Keyward is listening on https://127.0.0.1:8443"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("TLS CA certificate: ") && l.ends_with("tls/ca.pem")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("First login (one-time setup link")),
        "{lines:?}"
    );
    drop(options);
}
