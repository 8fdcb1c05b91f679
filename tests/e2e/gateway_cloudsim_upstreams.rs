//! cloudsim's upstreams for the gateway (Azure OpenAI chat completions, Bedrock InvokeModel)
//! refuse what the real services refuse, so the acceptances in `gateway_credentials` are the
//! injected credential's doing: no token, an API key, another resource, another service or
//! region, an app without the data-plane role, a role without `bedrock:InvokeModel`.

use std::sync::Arc;

use keyward_gateway::credentials::{CredentialSettings, Injector, strip_caller_credentials};
use keyward_policy::CredentialSpec;

use crate::cloudsim::server_and_sim;
use crate::gateway_credentials::{
    CHAT_BODY, TITAN_BODY, TOKEN_ENV, aws_spec, azure_openai_url, azure_spec, bearer_of,
    bedrock_url, caller_request, setup, through,
};
use crate::run::configure;

#[tokio::test]
async fn cloudsims_azure_openai_and_bedrock_refuse_what_the_real_services_refuse() {
    let (_server, sim, injector, _dir) = setup().await;
    let http = sim.http().clone();
    let post = |url: String, body: &'static [u8]| http.post(url).body(body.to_vec());
    // Azure OpenAI: no token, an API key, a token for another resource, an unknown deployment.
    let answer = post(azure_openai_url(&sim), CHAT_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("missing subscription key or Entra ID token")
    );
    let answer = post(azure_openai_url(&sim), CHAT_BODY)
        .header("api-key", "0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let mut parts = caller_request("POST", &azure_openai_url(&sim));
    strip_caller_credentials(&mut parts.headers);
    injector
        .apply("azure", &azure_spec(), &mut parts, None)
        .await
        .unwrap();
    let token = bearer_of(&parts.headers);
    let unknown = azure_openai_url(&sim).replace("gpt-4o", "gpt-5-nonexistent");
    let answer = post(unknown, CHAT_BODY)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.text().await.unwrap().contains("DeploymentNotFound"));
    let no_version = azure_openai_url(&sim).replace("?api-version=2024-10-21", "");
    let answer = post(no_version, CHAT_BODY)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let answer = post(azure_openai_url(&sim), b"{}")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400, "no messages");
    // Bedrock: unsigned, and signed for another service.
    let answer = post(bedrock_url(&sim), TITAN_BODY).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    let other_service = CredentialSpec::Aws {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        service: "s3".into(),
        region: None,
    };
    let (status, answer, _) = through(
        &injector,
        &http,
        "s3-signed",
        &other_service,
        caller_request("POST", &bedrock_url(&sim)),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("'bedrock'"),
        "{answer}"
    );
    // Signed for another region than the account's.
    let elsewhere = CredentialSpec::Aws {
        automation: "crew".into(),
        token_env: TOKEN_ENV.into(),
        service: "bedrock".into(),
        region: Some("eu-west-3".into()),
    };
    let (status, answer, _) = through(
        &injector,
        &http,
        "bedrock-paris",
        &elsewhere,
        caller_request("POST", &bedrock_url(&sim)),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("eu-west-3"),
        "{answer}"
    );
}

#[tokio::test]
async fn without_the_openai_role_or_the_bedrock_policy_the_clouds_refuse_the_injected_credential() {
    let (server, token, sim, _dir) = server_and_sim(|issuer, org| {
        let demo = keyward_cloudsim::demo::state_toml(issuer, org, None);
        let no_role = demo.replace(
            "role = \"Cognitive Services OpenAI User\"",
            "role = \"Reader\"",
        );
        let no_bedrock = no_role.replace(
            "actions = [\"bedrock:InvokeModel\"]",
            "actions = [\"bedrock:ListFoundationModels\"]",
        );
        assert_ne!(no_bedrock, demo);
        Some(no_bedrock)
    })
    .await;
    configure(&server, &sim).await;
    let injector = Injector::with_env(
        CredentialSettings {
            platform_url: Some(url::Url::parse(&server.url).unwrap()),
            platform_ca: server.ca_file.clone(),
            cloud_endpoints: Some(sim.endpoints_path.clone()),
        },
        Arc::new(move |name: &str| (name == TOKEN_ENV).then(|| token.clone())),
    )
    .unwrap();
    let http = sim.http().clone();
    let (status, answer, _) = through(
        &injector,
        &http,
        "azure",
        &azure_spec(),
        caller_request("POST", &azure_openai_url(&sim)),
        CHAT_BODY,
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "PermissionDenied", "{answer}");
    let (status, answer, _) = through(
        &injector,
        &http,
        "bedrock",
        &aws_spec(),
        caller_request("POST", &bedrock_url(&sim)),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("is not authorized to perform: bedrock:InvokeModel"),
        "{answer}"
    );
}
