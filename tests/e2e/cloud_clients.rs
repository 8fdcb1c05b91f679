//! Keyward's own cloud clients (crates/cloud) against `keyward cloudsim`, with tokens minted by
//! `keyward serve`: every good chain works, every broken setup comes back with the provider's
//! code and the named cause, and transient faults are retried under the deadline while
//! permanent errors are not (the simulator counts the requests).

use std::time::{Duration, Instant};

use keyward_cloud::{Cause, CloudError, Clouds, Deadline, RetryPolicy, azure};
use serde_json::json;

use crate::cloudsim::{forged_like, server_and_sim};
use crate::cloudsim_env::{APP, APP_CASE, PROJECT_NUMBER, TENANT, gcp_audience, sa, world};
use crate::cloudsim_refusals::es256_token_like;
use crate::common;

const ROLE: &str = "arn:aws:iam::123456789012:role/keyward-secrets-reader";

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

async fn minted(server: &common::Server, token: &str, audience: &str) -> String {
    let (status, body) = common::mint(server, token, audience).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// The refusal's provider code and cause, and that it was not retried.
fn refused<T: std::fmt::Debug>(result: Result<T, CloudError>) -> (String, Cause, String) {
    let err = result.expect_err("the cloud should refuse");
    let refusal = err
        .refusal()
        .unwrap_or_else(|| panic!("expected a refusal, got: {err}"));
    assert_eq!(
        refusal.attempts, 1,
        "a permanent error is not retried: {err}"
    );
    (refusal.code.clone(), refusal.cause, err.to_string())
}

#[tokio::test]
async fn rust_clients_walk_every_good_chain_and_name_the_cause_of_every_refusal() {
    let (server, token, sim, _dir) = server_and_sim(|issuer, org| Some(world(issuer, org))).await;
    let org = common::org_id(&server);
    let clouds = Clouds::from_file(&sim.endpoints_path).unwrap();
    let base = sim.base.clone();

    // GCP: exchange → secrets → impersonation → Vertex.
    let g = clouds.gcp();
    let good = gcp_audience("keyward-provider");
    let gcp_jwt = minted(&server, &token, &good).await;
    let fed = g.exchange(&good, &gcp_jwt, &deadline()).await.unwrap();
    assert_eq!(fed.expires_in, Some(3600));
    let value = g
        .access_secret(
            &fed,
            "keyward-demo",
            "openai-api-key",
            "latest",
            &deadline(),
        )
        .await
        .unwrap();
    assert_eq!(value.expose(), "gcp-value-1");
    let json_secret = g
        .access_secret(&fed, PROJECT_NUMBER, "db-credentials", "1", &deadline())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(json_secret.expose()).unwrap()["password"],
        json!("gcp-pw")
    );
    assert_eq!(
        g.list_secrets(&fed, "keyward-demo", "db-", &deadline())
            .await
            .unwrap(),
        vec!["db-credentials"]
    );
    let (code, cause, _) = refused(
        g.access_secret(&fed, "keyward-demo", "missing", "latest", &deadline())
            .await,
    );
    assert_eq!((code.as_str(), cause), ("NOT_FOUND", Cause::SecretNotFound));
    let sa_token = g
        .generate_access_token(
            &fed,
            &sa("keyward-vertex"),
            Duration::from_secs(3600),
            &deadline(),
        )
        .await
        .unwrap();
    assert!(sa_token.expire_time.is_some());
    let answer = g
        .generate_content(
            &sa_token,
            PROJECT_NUMBER,
            "global",
            "gemini-2.0-flash",
            "hi",
            &deadline(),
        )
        .await
        .unwrap();
    assert!(!answer.is_empty());

    // Wrong org UUID, and a numeric org id, in the attribute condition.
    for provider in ["wrong-org", "numeric-org"] {
        let jwt = minted(&server, &token, &gcp_audience(provider)).await;
        let (code, cause, text) =
            refused(g.exchange(&gcp_audience(provider), &jwt, &deadline()).await);
        assert_eq!(code, "unauthorized_client", "{text}");
        assert_eq!(cause, Cause::AttributeConditionRejected, "{text}");
        assert!(
            text.contains(
                "PERMISSION_DENIED: The given credential is rejected by the attribute condition"
            ),
            "{text}"
        );
        assert!(
            text.contains("numeric org ID was used instead of the organization UUID"),
            "{text}"
        );
        assert!(
            text.contains(&format!("sub=organization:{org}")),
            "the presented claims: {text}"
        );
    }
    // Issuer mismatch; audience mismatch; a key not in the JWKS.
    let jwt = minted(&server, &token, &gcp_audience("wrong-issuer")).await;
    let (code, cause, text) = refused(
        g.exchange(&gcp_audience("wrong-issuer"), &jwt, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("invalid_grant", Cause::IssuerMismatch),
        "{text}"
    );
    assert!(text.contains(&format!("iss={}", server.url)), "{text}");
    let (code, cause, text) = refused(
        g.exchange(&gcp_audience("wrong-org"), &gcp_jwt, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("invalid_grant", Cause::AudienceMismatch),
        "{text}"
    );
    let (code, cause, text) = refused(g.exchange(&good, &forged_like(&gcp_jwt), &deadline()).await);
    assert_eq!(
        (code.as_str(), cause),
        ("invalid_grant", Cause::UnknownSigningKey),
        "{text}"
    );
    assert!(text.contains("INVALID_ARGUMENT: Invalid JWT"), "{text}");
    let (code, cause, _) = refused(
        g.exchange(&gcp_audience("no-such-provider"), &gcp_jwt, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("invalid_target", Cause::ProviderNotFound)
    );
    // Missing workloadIdentityUser binding; missing aiplatform.user.
    let (code, cause, text) = refused(
        g.generate_access_token(&fed, &sa("unbound"), Duration::from_secs(600), &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("PERMISSION_DENIED", Cause::MissingWorkloadIdentityUser),
        "{text}"
    );
    assert!(
        text.contains("iam.serviceAccounts.getAccessToken")
            && text.contains("roles/iam.workloadIdentityUser"),
        "{text}"
    );
    let no_vertex = g
        .generate_access_token(
            &fed,
            &sa("no-vertex"),
            Duration::from_secs(600),
            &deadline(),
        )
        .await
        .unwrap();
    let (code, cause, text) = refused(
        g.generate_content(
            &no_vertex,
            PROJECT_NUMBER,
            "global",
            "gemini-2.0-flash",
            "hi",
            &deadline(),
        )
        .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("PERMISSION_DENIED", Cause::MissingAiplatformUser),
        "{text}"
    );
    assert!(text.contains("roles/aiplatform.user"), "{text}");

    // Azure: Entra token → Key Vault; FIC subject differing only in case; ES256; per-secret role.
    let a = clouds.azure();
    let az_jwt = minted(&server, &token, azure::ASSERTION_AUDIENCE).await;
    let vault_token = a
        .token(TENANT, APP, &az_jwt, azure::VAULT_SCOPE, &deadline())
        .await
        .unwrap();
    let vault = sim.vault_url("keyward-demo-vault").await;
    assert_eq!(
        sim.endpoints.azure.as_ref().unwrap().vault_url.as_deref(),
        Some(vault.as_str()),
        "the endpoints file names the first vault's own origin"
    );
    assert!(
        !vault.starts_with(&base),
        "{vault} has an origin of its own"
    );
    let value = a
        .get_secret(&vault_token, &vault, "openai-api-key", None, &deadline())
        .await
        .unwrap();
    assert_eq!(value.expose(), "azure-value-1");
    assert_eq!(
        a.list_secrets(&vault_token, &vault, "", &deadline())
            .await
            .unwrap(),
        vec!["openai-api-key"]
    );
    let (code, cause, text) = refused(
        a.token(TENANT, APP_CASE, &az_jwt, azure::VAULT_SCOPE, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("AADSTS70021", Cause::FederatedCredentialMismatch),
        "{text}"
    );
    assert!(
        text.contains("No matching federated identity record found"),
        "{text}"
    );
    assert!(text.contains("case-sensitive"), "{text}");
    let (code, cause, text) = refused(
        a.token(
            TENANT,
            APP,
            &es256_token_like(&az_jwt),
            azure::VAULT_SCOPE,
            &deadline(),
        )
        .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("AADSTS5002738", Cause::UnsupportedAlgorithm),
        "{text}"
    );
    let (code, cause, _) = refused(
        a.token(
            TENANT,
            APP,
            &forged_like(&az_jwt),
            azure::VAULT_SCOPE,
            &deadline(),
        )
        .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("AADSTS50013", Cause::UnknownSigningKey)
    );
    let per_secret = sim.vault_url("per-secret-vault").await;
    let granted = a
        .get_secret(&vault_token, &per_secret, "granted", None, &deadline())
        .await
        .unwrap();
    assert_eq!(granted.expose(), "per-secret-value");
    let (code, cause, text) = refused(
        a.list_secrets(&vault_token, &per_secret, "", &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("Forbidden", Cause::KeyVaultListNeedsVaultScope),
        "{text}"
    );
    assert!(
        text.contains("Grant Key Vault Secrets User at the vault scope")
            || text.contains("grant Key Vault Secrets User at the vault scope"),
        "{text}"
    );
    let (code, cause, _) = refused(
        a.get_secret(&vault_token, &per_secret, "not-granted", None, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("Forbidden", Cause::KeyVaultSecretRoleMissing)
    );
    let (code, cause, _) = refused(
        a.get_secret(&vault_token, &vault, "missing", None, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("SecretNotFound", Cause::SecretNotFound)
    );

    // AWS: AssumeRoleWithWebIdentity → GetCallerIdentity → Secrets Manager; trust `sub` mismatch.
    let w = clouds.aws("us-east-1");
    let aws_jwt = minted(&server, &token, keyward_cloud::aws::AUDIENCE).await;
    let creds = w
        .assume_role_with_web_identity(ROLE, "keyward-test", &aws_jwt, None, &deadline())
        .await
        .unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert!(
        format!("{creds:?}").contains("Secret(***)"),
        "credentials never print"
    );
    let me = w.get_caller_identity(&creds, &deadline()).await.unwrap();
    assert_eq!(me.account, "123456789012");
    assert!(
        me.arn
            .ends_with("assumed-role/keyward-secrets-reader/keyward-test"),
        "{me:?}"
    );
    let value = w
        .get_secret_value(&creds, "openai-api-key", &deadline())
        .await
        .unwrap();
    assert_eq!(value.expose(), "aws-value-1");
    assert_eq!(
        w.list_secrets(&creds, "openai", &deadline()).await.unwrap(),
        vec!["openai-api-key"]
    );
    let (code, cause, _) = refused(w.get_secret_value(&creds, "missing", &deadline()).await);
    assert_eq!(
        (code.as_str(), cause),
        ("ResourceNotFoundException", Cause::SecretNotFound)
    );
    let (code, cause, text) = refused(
        w.assume_role_with_web_identity(
            "arn:aws:iam::123456789012:role/wrong-sub",
            "keyward-test",
            &aws_jwt,
            None,
            &deadline(),
        )
        .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("AccessDenied", Cause::TrustPolicyMismatch),
        "{text}"
    );
    assert!(
        text.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{text}"
    );
    assert!(
        text.contains("<host>:sub must equal organization:<your organization UUID>"),
        "{text}"
    );
    let (code, cause, _) = refused(
        w.assume_role_with_web_identity(ROLE, "keyward-test", &gcp_jwt, None, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("InvalidIdentityToken", Cause::AudienceMismatch)
    );

    // Expired, as the clouds see it.
    sim.clock_offset(7200).await;
    let (code, cause, _) = refused(g.exchange(&good, &gcp_jwt, &deadline()).await);
    assert_eq!(
        (code.as_str(), cause),
        ("invalid_grant", Cause::TokenExpired)
    );
    let (code, cause, _) = refused(
        a.token(TENANT, APP, &az_jwt, azure::VAULT_SCOPE, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("AADSTS700024", Cause::TokenExpired)
    );
    let (code, cause, text) = refused(
        w.assume_role_with_web_identity(ROLE, "keyward-test", &aws_jwt, None, &deadline())
            .await,
    );
    assert_eq!(
        (code.as_str(), cause),
        ("ExpiredTokenException", Cause::TokenExpired),
        "{text}"
    );
    drop(server);
}

#[tokio::test]
async fn transient_faults_are_retried_within_the_deadline_and_permanent_errors_never() {
    let (server, token, sim, _dir) = server_and_sim(|issuer, org| Some(world(issuer, org))).await;
    let fast = RetryPolicy {
        first: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    let clouds = Clouds::with_retry(sim.endpoints.clone(), fast).unwrap();
    let g = clouds.gcp();
    let good = gcp_audience("keyward-provider");
    let jwt = minted(&server, &token, &good).await;
    let fed = g.exchange(&good, &jwt, &deadline()).await.unwrap();
    let read = async || {
        g.access_secret(
            &fed,
            "keyward-demo",
            "openai-api-key",
            "latest",
            &deadline(),
        )
        .await
    };

    // Two 503s, then the answer: three requests, one value.
    sim.reset_counts().await;
    sim.fault(json!({"endpoint": "gcp.secretmanager", "count": 2, "status": 503}))
        .await;
    assert_eq!(read().await.unwrap().expose(), "gcp-value-1");
    assert_eq!(sim.count("gcp.secretmanager").await, 3);

    // A 429 with Retry-After: 1 is waited out.
    sim.reset_counts().await;
    sim.fault(
        json!({"endpoint": "gcp.secretmanager", "count": 1, "status": 429, "retry_after": 1}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(read().await.unwrap().expose(), "gcp-value-1");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(sim.count("gcp.secretmanager").await, 2);

    // A dropped connection, on the SigV4-signed AWS path (each retry is signed anew).
    let w = clouds.aws("us-east-1");
    let aws_jwt = minted(&server, &token, keyward_cloud::aws::AUDIENCE).await;
    sim.fault(json!({"endpoint": "aws.sts", "count": 1, "status": 500}))
        .await;
    let creds = w
        .assume_role_with_web_identity(ROLE, "retry", &aws_jwt, None, &deadline())
        .await
        .unwrap();
    sim.reset_counts().await;
    sim.fault(json!({"endpoint": "aws.secretsmanager", "count": 1, "drop": true}))
        .await;
    assert_eq!(
        w.get_secret_value(&creds, "openai-api-key", &deadline())
            .await
            .unwrap()
            .expose(),
        "aws-value-1"
    );
    assert_eq!(sim.count("aws.secretsmanager").await, 2);

    // Entra answering 502 twice.
    let a = clouds.azure();
    let az_jwt = minted(&server, &token, azure::ASSERTION_AUDIENCE).await;
    sim.reset_counts().await;
    sim.fault(json!({"endpoint": "azure.token", "count": 2, "status": 502}))
        .await;
    a.token(TENANT, APP, &az_jwt, azure::VAULT_SCOPE, &deadline())
        .await
        .unwrap();
    assert_eq!(sim.count("azure.token").await, 3);

    // Permanent errors: exactly one request each.
    sim.reset_counts().await;
    let wrong = minted(&server, &token, &gcp_audience("wrong-org")).await;
    let (code, _, _) = refused(
        g.exchange(&gcp_audience("wrong-org"), &wrong, &deadline())
            .await,
    );
    assert_eq!(code, "unauthorized_client");
    assert_eq!(sim.count("gcp.sts").await, 1);
    let (code, _, _) = refused(
        a.token(TENANT, APP_CASE, &az_jwt, azure::VAULT_SCOPE, &deadline())
            .await,
    );
    assert_eq!(code, "AADSTS70021");
    assert_eq!(sim.count("azure.token").await, 1);
    let (code, _, _) = refused(
        w.assume_role_with_web_identity(
            "arn:aws:iam::123456789012:role/wrong-sub",
            "permanent",
            &aws_jwt,
            None,
            &deadline(),
        )
        .await,
    );
    assert_eq!(code, "AccessDenied");
    assert_eq!(sim.count("aws.sts").await, 1);

    // A cloud that keeps failing: give up when the deadline passes, with a clear error.
    sim.clear_faults().await;
    sim.reset_counts().await;
    sim.fault(json!({"endpoint": "gcp.sts", "status": 503, "error_rate": 1.0}))
        .await;
    let started = Instant::now();
    let err = g
        .exchange(&good, &jwt, &Deadline::after(Duration::from_millis(1500)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let CloudError::DeadlineExceeded { attempts, .. } = &err else {
        panic!("expected the deadline to pass: {err}");
    };
    assert!(*attempts >= 3, "{err}");
    assert_eq!(u64::from(*attempts), sim.count("gcp.sts").await);
    assert!(
        elapsed < Duration::from_millis(2500),
        "gave up at the deadline: {elapsed:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("GCP STS token exchange: gave up after")
            && text.contains("HTTP 503 UNAVAILABLE")
            && text.contains("fix:"),
        "{text}"
    );

    // A Retry-After longer than the time left: give up at once instead of sleeping past it.
    sim.clear_faults().await;
    sim.reset_counts().await;
    sim.fault(json!({"endpoint": "gcp.sts", "count": 1, "status": 429, "retry_after": 30}))
        .await;
    let started = Instant::now();
    let err = g
        .exchange(&good, &jwt, &Deadline::after(Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "did not sleep 30 s"
    );
    assert!(err.to_string().contains("asked to wait 30s"), "{err}");
    assert_eq!(sim.count("gcp.sts").await, 1);

    // A cloud slower than the deadline: the request is cut off and the error says so.
    sim.clear_faults().await;
    sim.fault(json!({"endpoint": "gcp.secretmanager", "latency_ms": 2000}))
        .await;
    let err = g
        .access_secret(
            &fed,
            "keyward-demo",
            "openai-api-key",
            "latest",
            &Deadline::after(Duration::from_millis(600)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::DeadlineExceeded { .. }), "{err}");
    assert!(err.to_string().contains("did not answer in time"), "{err}");
    sim.clear_faults().await;
    drop(server);
}

#[test]
fn an_endpoints_file_that_cannot_be_used_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endpoints.json");
    std::fs::write(&path, r#"{"gcp": {"sts": "https://x"}}"#).unwrap();
    let err = Clouds::from_file(&path).err().unwrap().to_string();
    assert!(
        err.contains("endpoints.json") && err.contains("unknown field `sts`"),
        "{err}"
    );
    std::fs::write(&path, r#"{"ca_file": "/nonexistent/ca.pem"}"#).unwrap();
    let err = Clouds::from_file(&path).err().unwrap().to_string();
    assert!(
        err.contains("cannot read ca_file /nonexistent/ca.pem"),
        "{err}"
    );
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    std::fs::write(&path, json!({"ca_file": ca}).to_string()).unwrap();
    let err = Clouds::from_file(&path).err().unwrap().to_string();
    assert!(err.contains("CA bundle"), "{err}");
}
