//! A second opinion on Keyward's AWS client: the third-party `moto_server` (PyPI `moto[server]`,
//! installed into interop/.venv by scripts/test) answers AssumeRoleWithWebIdentity and
//! GetSecretValue as it understands AWS. moto checks neither tokens nor signatures; what this
//! proves is that our requests and our parsing of its answers follow AWS's wire format, which
//! moto reimplements from botocore's service models independently of cloudsim.

use std::time::Duration;

use keyward_cloud::{Cause, Clouds, Deadline};
use keyward_core::endpoints::{AwsEndpoints, EndpointsFile};
use serde_json::json;

use crate::common::{self, Backend, Server, ServerOptions};

#[path = "../support/moto_server.rs"]
mod moto_server;
pub(crate) use moto_server::start_moto;

#[tokio::test]
async fn the_aws_client_assumes_a_role_and_reads_a_secret_from_moto_server() {
    let Some(moto) = start_moto().await else {
        return;
    };
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerOptions::new(&Backend::Sqlite, dir.path()));
    let (_, token) = common::automation_with_token(&server, "crew").await;
    let (status, minted) = common::mint(&server, &token, keyward_cloud::aws::AUDIENCE).await;
    assert_eq!(status, 200, "{minted}");
    let jwt = minted["token"].as_str().unwrap();

    // The secret, created the way moto accepts an administrator's call (it reads only the
    // credential scope of the Authorization header).
    let created = reqwest::Client::new()
        .post(format!("{}/", moto.url))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body(json!({"Name": "openai-api-key", "SecretString": "moto-value"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "{}",
        created.text().await.unwrap()
    );

    let clouds = Clouds::new(EndpointsFile {
        aws: Some(AwsEndpoints {
            sts_url: Some(moto.url.clone()),
            secrets_manager_url: Some(moto.url.clone()),
            region: Some("us-east-1".into()),
            ..AwsEndpoints::default()
        }),
        ..EndpointsFile::default()
    })
    .unwrap();
    let aws = clouds.aws("us-east-1");
    let deadline = Deadline::after(Duration::from_secs(20));
    let creds = aws
        .assume_role_with_web_identity(
            "arn:aws:iam::123456789012:role/keyward-secrets-reader",
            "keyward-moto",
            jwt,
            Some(Duration::from_secs(900)),
            &deadline,
        )
        .await
        .unwrap();
    assert!(!creds.access_key_id.is_empty());
    assert!(!creds.expiration.is_empty());
    assert!(
        creds
            .assumed_role_arn
            .contains("keyward-secrets-reader/keyward-moto"),
        "{creds:?}"
    );
    let value = aws
        .get_secret_value(&creds, "openai-api-key", &deadline)
        .await
        .unwrap();
    assert_eq!(value.expose(), "moto-value");
    let err = aws
        .get_secret_value(&creds, "no-such-secret", &deadline)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"), "{err}");
    assert_eq!(err.cause(), Some(Cause::SecretNotFound), "{err}");
    drop(server);
}
