//! The simulator refuses each broken federation setup with the cloud's own error shape, for
//! tokens minted by `keyward serve` (raw HTTP, as any client would send it).

use serde_json::{Value, json};

use crate::cloudsim::{forged_like, server_and_sim};
use crate::cloudsim_env::{APP, APP_CASE, TENANT, gcp_audience, sa, world};
use crate::common;

struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    fn new(sim: &crate::cloudsim_env::Sim) -> Raw {
        Raw {
            http: sim.http().clone(),
            base: sim.base.clone(),
        }
    }

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    async fn sts(&self, audience: &str, jwt: &str) -> (u16, Value) {
        let (status, text) = self
            .form(
                "/v1/token",
                &[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("audience", audience),
                    ("scope", "https://www.googleapis.com/auth/cloud-platform"),
                    (
                        "requested_token_type",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ("subject_token", jwt),
                ],
            )
            .await;
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn entra(&self, client_id: &str, jwt: &str) -> (u16, Value) {
        let (status, text) = self
            .form(
                &format!("/{TENANT}/oauth2/v2.0/token"),
                &[
                    ("client_id", client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", jwt),
                    ("grant_type", "client_credentials"),
                    ("scope", "https://vault.azure.net/.default"),
                ],
            )
            .await;
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn assume(&self, role: &str, jwt: &str) -> (u16, String) {
        self.form(
            "/",
            &[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", &format!("arn:aws:iam::123456789012:role/{role}")),
                ("RoleSessionName", "keyward-test"),
                ("WebIdentityToken", jwt),
            ],
        )
        .await
    }
}

async fn minted(server: &common::Server, token: &str, audience: &str) -> String {
    let (status, body) = common::mint(server, token, audience).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

pub(crate) fn es256_token_like(real: &str) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let payload = real.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("es256-key".into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn every_broken_setup_is_refused_with_the_clouds_error_shape() {
    let (server, token, sim, _dir) = server_and_sim(|issuer, org| Some(world(issuer, org))).await;
    let raw = Raw::new(&sim);
    let good = gcp_audience("keyward-provider");
    let gcp_jwt = minted(&server, &token, &good).await;

    // The good chain: STS → impersonation → Vertex, and the federated principal reads a secret.
    let (status, fed) = raw.sts(&good, &gcp_jwt).await;
    assert_eq!(status, 200, "{fed}");
    let fed = fed["access_token"].as_str().unwrap().to_owned();
    let (status, secret) = raw
        .json(
            reqwest::Method::GET,
            "/v1/projects/keyward-demo/secrets/openai-api-key/versions/latest:access",
            &fed,
            None,
        )
        .await;
    assert_eq!(status, 200, "{secret}");
    let impersonate = |email: String| {
        let raw = &raw;
        let fed = fed.clone();
        async move {
            raw.json(
                reqwest::Method::POST,
                &format!("/v1/projects/-/serviceAccounts/{email}:generateAccessToken"),
                &fed,
                Some(json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"]})),
            )
            .await
        }
    };
    let vertex = "/v1/projects/123456789012/locations/global/publishers/google/models/gemini-2.0-flash:generateContent";
    let prompt = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (status, sa_token) = impersonate(sa("keyward-vertex")).await;
    assert_eq!(status, 200, "{sa_token}");
    let (status, answer) = raw
        .json(
            reqwest::Method::POST,
            vertex,
            sa_token["accessToken"].as_str().unwrap(),
            Some(prompt.clone()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // Wrong org UUID, and a numeric org id, in the attribute condition.
    for provider in ["wrong-org", "numeric-org"] {
        let jwt = minted(&server, &token, &gcp_audience(provider)).await;
        let (status, body) = raw.sts(&gcp_audience(provider), &jwt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unauthorized_client")),
            "{provider}: {body}"
        );
        assert_eq!(
            body["error_description"],
            json!(
                "PERMISSION_DENIED: The given credential is rejected by the attribute condition."
            )
        );
    }
    // The provider trusts another issuer.
    let jwt = minted(&server, &token, &gcp_audience("wrong-issuer")).await;
    let (status, body) = raw.sts(&gcp_audience("wrong-issuer"), &jwt).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("INVALID_ARGUMENT: Invalid JWT: the issuer"),
        "{body}"
    );
    // A token minted for one provider presented to another.
    let (status, body) = raw.sts(&gcp_audience("wrong-org"), &gcp_jwt).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("does not match the expected audience"),
        "{body}"
    );
    // Signed by a key the issuer never published.
    let (status, body) = raw.sts(&good, &forged_like(&gcp_jwt)).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("INVALID_ARGUMENT: Invalid JWT signature"),
        "{body}"
    );
    // No roles/iam.workloadIdentityUser binding; no roles/aiplatform.user.
    let (status, body) = impersonate(sa("unbound")).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("iam.serviceAccounts.getAccessToken")
    );
    let (status, no_vertex) = impersonate(sa("no-vertex")).await;
    assert_eq!(status, 200, "{no_vertex}");
    let (status, body) = raw
        .json(
            reqwest::Method::POST,
            vertex,
            no_vertex["accessToken"].as_str().unwrap(),
            Some(prompt),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aiplatform.endpoints.predict")
    );

    // Azure: the good app, a federated credential whose subject differs only in case, ES256.
    let az_jwt = minted(&server, &token, "api://AzureADTokenExchange").await;
    let (status, body) = raw.entra(APP, &az_jwt).await;
    assert_eq!(status, 200, "{body}");
    let vault_token = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = raw.entra(APP_CASE, &az_jwt).await;
    assert_eq!(
        (status, body["error_codes"].clone()),
        (401, json!([70021])),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS70021: No matching federated identity record found")
    );
    let (status, body) = raw.entra(APP, &es256_token_like(&az_jwt)).await;
    assert_eq!(
        (status, body["error_codes"].clone()),
        (401, json!([5002738])),
        "{body}"
    );
    let (status, body) = raw.entra(APP, &forged_like(&az_jwt)).await;
    assert_eq!(body["error_codes"], json!([50013]), "{status} {body}");
    // Key Vault: the role granted on one secret lets that secret be read, not the vault listed.
    let kv = |path: &str| format!("/vaults/per-secret-vault{path}?api-version=7.5");
    let (status, body) = raw
        .json(
            reqwest::Method::GET,
            &kv("/secrets/granted"),
            &vault_token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some("per-secret-value")),
        "{body}"
    );
    let (status, body) = raw
        .json(reqwest::Method::GET, &kv("/secrets"), &vault_token, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );
    let (status, body) = raw
        .json(
            reqwest::Method::GET,
            &kv("/secrets/not-granted"),
            &vault_token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );
    let (status, body) = raw
        .json(
            reqwest::Method::GET,
            "/vaults/keyward-demo-vault/secrets/missing?api-version=7.5",
            &vault_token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("SecretNotFound")),
        "{body}"
    );

    // AWS: the good role, and a trust policy whose sub names another organization.
    let aws_jwt = minted(&server, &token, "sts.amazonaws.com").await;
    let (status, body) = raw.assume("keyward-secrets-reader", &aws_jwt).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<AccessKeyId>ASIA"), "{body}");
    let (status, body) = raw.assume("wrong-sub", &aws_jwt).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>AccessDenied</Code>")
            && body.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{body}"
    );
    let (status, body) = raw.assume("keyward-secrets-reader", &gcp_jwt).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("<Code>InvalidIdentityToken</Code>")
            && body.contains("Incorrect token audience"),
        "{body}"
    );
    let (_, body) = raw
        .assume("keyward-secrets-reader", &forged_like(&aws_jwt))
        .await;
    assert!(body.contains("InvalidIdentityToken"), "{body}");

    // Expired, as the clouds see it: move their clock two hours ahead.
    sim.clock_offset(7200).await;
    let (status, body) = raw.sts(&good, &gcp_jwt).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Token must be a short-lived token"),
        "{body}"
    );
    let (_, body) = raw.entra(APP, &az_jwt).await;
    assert_eq!(body["error_codes"], json!([700024]), "{body}");
    let (_, body) = raw.assume("keyward-secrets-reader", &aws_jwt).await;
    assert!(
        body.contains("<Code>ExpiredTokenException</Code>"),
        "{body}"
    );
    drop(server);
}

/// The static-credential endpoints check what the real ones check: Google's JWT bearer grant
/// (key, account, audience, lifetime, scope), Entra's client secret, STS AssumeRole's trust,
/// the caller's own permission and the external id.
#[tokio::test]
#[allow(clippy::disallowed_methods)] // the assertions carry real times, as a client would sign them
async fn static_credential_sign_ins_are_checked_like_the_clouds_check_them() {
    let (_server, _token, sim, _dir) = server_and_sim(|issuer, org| Some(world(issuer, org))).await;
    let raw = Raw::new(&sim);
    let key = sim
        .admin(
            reqwest::Method::POST,
            "gcp/service-account-keys",
            Some(json!({"email": sa("static-reader")})),
        )
        .await;
    let pem = key["private_key"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |kid: &str, claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let kid = key["private_key_id"].as_str().unwrap();
    let good = json!({"iss": sa("static-reader"), "scope": "https://www.googleapis.com/auth/cloud-platform",
                      "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600});
    let bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let (status, body) = raw
        .form(
            "/token",
            &[
                ("grant_type", bearer),
                ("assertion", &sign(kid, good.clone())),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(field);
        } else {
            claims[field] = value;
        }
        claims
    };
    for (claims, kid, error, text) in [
        (
            good.clone(),
            "unknown-key-id",
            "invalid_grant",
            "Invalid JWT Signature.",
        ),
        (
            with("iss", json!(sa("keyward-vertex"))),
            kid,
            "invalid_grant",
            "Invalid JWT Signature.",
        ),
        (
            with("iss", json!(sa("nobody"))),
            kid,
            "invalid_grant",
            "account not found",
        ),
        (
            with("aud", json!("https://example.com/token")),
            kid,
            "invalid_grant",
            "Failed audience check",
        ),
        (
            with("exp", json!(now + 7200)),
            kid,
            "invalid_grant",
            "short-lived token",
        ),
        (
            with("exp", json!(now - 600)),
            kid,
            "invalid_grant",
            "short-lived token",
        ),
        (
            with("scope", Value::Null),
            kid,
            "invalid_scope",
            "Invalid OAuth scope",
        ),
    ] {
        let (status, body) = raw
            .form(
                "/token",
                &[
                    ("grant_type", bearer),
                    ("assertion", &sign(kid, claims.clone())),
                ],
            )
            .await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{claims}: {body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(text),
            "{body}"
        );
    }

    let secret_form = |secret: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "2e8f1a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"),
            ("client_secret", secret),
            ("scope", "https://vault.azure.net/.default"),
        ]
    };
    let path = format!("/{TENANT}/oauth2/v2.0/token");
    let (status, body) = raw
        .form(&path, &secret_form("static-app-client-secret-value-0123"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw
        .form(&path, &secret_form("static-app-client-secret-value-012"))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("AADSTS7000215"), "{body}");

    // AssumeRole, SigV4-signed with the IAM user's key (by Keyward's client: the simulator's
    // answers are what is under test here).
    let aws = keyward_cloud::Clouds::from_file(&sim.endpoints_path)
        .unwrap()
        .aws("us-east-1");
    let deadline = keyward_cloud::Deadline::after(std::time::Duration::from_secs(10));
    let user = |secret: &str| {
        keyward_cloud::aws::SessionCredentials::static_keys(
            "AKIAKEYWARDSTATIC001",
            keyward_cloud::Secret::new(secret),
        )
    };
    let right = "static-reader-secret-access-key-0123456789";
    const ROLE: &str = "arn:aws:iam::123456789012:role/static-assumed";
    let creds = aws
        .assume_role(
            &user(right),
            ROLE,
            "keyward-test",
            Some("keyward-external-id-1"),
            &deadline,
        )
        .await
        .unwrap();
    assert!(
        creds
            .assumed_role_arn
            .ends_with("assumed-role/static-assumed/keyward-test"),
        "{}",
        creds.assumed_role_arn
    );
    for (role, external) in [
        (ROLE, Some("another-id")),
        (ROLE, None),
        // Not in this role's trust, nor in the user's own policy.
        (
            "arn:aws:iam::123456789012:role/keyward-secrets-reader",
            Some("keyward-external-id-1"),
        ),
    ] {
        let err = aws
            .assume_role(&user(right), role, "keyward-test", external, &deadline)
            .await
            .unwrap_err();
        let refusal = err.refusal().unwrap();
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (403, "AccessDenied"),
            "{err}"
        );
        assert!(
            refusal
                .message
                .contains("user/static-reader is not authorized to perform: sts:AssumeRole"),
            "{err}"
        );
    }
    let err = aws
        .assume_role(
            &user("wrong-secret"),
            ROLE,
            "keyward-test",
            Some("keyward-external-id-1"),
            &deadline,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
}
