//! Issue 16, acceptance d: with 60-second credentials (cloudsim's token-lifetime knob), requests
//! through the Injector keep working for over a minute, the first credentials are refused by the
//! clouds once expired, and what the gateway sends then is a second, different credential.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cloudsim_env::Sim;
use crate::gateway_credentials::{
    CHAT_BODY, TITAN_BODY, VERTEX_BODY, access_key_of, aws_spec, azure_openai_url, azure_spec,
    bearer_of, bedrock_url, caller_request, gcp_spec, send, setup, through, vertex_url,
};

#[tokio::test]
async fn with_sixty_second_credentials_requests_keep_working_past_the_first_ones_life() {
    let (_server, sim, injector, _dir) = setup().await;
    let http = sim.http().clone();
    sim.admin(
        reqwest::Method::POST,
        "token-lifetime",
        Some(json!({"secs": 60})),
    )
    .await;
    let vertex = |s: &Sim| caller_request("POST", &vertex_url(s));
    let azure = |s: &Sim| caller_request("POST", &azure_openai_url(s));
    let bedrock = |s: &Sim| caller_request("POST", &bedrock_url(s));

    let (status, answer, gcp_first) = through(
        &injector,
        &http,
        "vertex",
        &gcp_spec(),
        vertex(&sim),
        VERTEX_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer, azure_first) = through(
        &injector,
        &http,
        "azure",
        &azure_spec(),
        azure(&sim),
        CHAT_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer, aws_first) = through(
        &injector,
        &http,
        "bedrock",
        &aws_spec(),
        bedrock(&sim),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let started = Instant::now();

    // Requests every few seconds for over a minute: each one must be accepted.
    while started.elapsed() < Duration::from_secs(64) {
        tokio::time::sleep(Duration::from_secs(8)).await;
        for (route, spec, parts, body) in [
            ("vertex", gcp_spec(), vertex(&sim), VERTEX_BODY),
            ("azure", azure_spec(), azure(&sim), CHAT_BODY),
            ("bedrock", aws_spec(), bedrock(&sim), TITAN_BODY),
        ] {
            let (status, answer, _) = through(&injector, &http, route, &spec, parts, body).await;
            assert_eq!(status, 200, "{route} at {:?}: {answer}", started.elapsed());
        }
    }

    // The first credentials have expired at the clouds: sent again, they are refused…
    let mut stale = vertex(&sim);
    stale.headers = gcp_first.clone();
    let (status, _) = send(&http, &stale, VERTEX_BODY).await;
    assert_eq!(status, 401, "the first GCP token outlived its 60 s");
    let mut stale = azure(&sim);
    stale.headers = azure_first.clone();
    let (status, _) = send(&http, &stale, CHAT_BODY).await;
    assert_eq!(status, 401, "the first Entra token outlived its 60 s");

    // …and what the gateway sends now is a second, different credential.
    let (status, answer, gcp_now) = through(
        &injector,
        &http,
        "vertex",
        &gcp_spec(),
        vertex(&sim),
        VERTEX_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(bearer_of(&gcp_now), bearer_of(&gcp_first));
    let (status, answer, azure_now) = through(
        &injector,
        &http,
        "azure",
        &azure_spec(),
        azure(&sim),
        CHAT_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(bearer_of(&azure_now), bearer_of(&azure_first));
    let (status, answer, aws_now) = through(
        &injector,
        &http,
        "bedrock",
        &aws_spec(),
        bedrock(&sim),
        TITAN_BODY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(access_key_of(&aws_now), access_key_of(&aws_first));
    sim.admin(
        reqwest::Method::POST,
        "token-lifetime",
        Some(json!({"secs": null})),
    )
    .await;
}
