//! The gateway's Verifier against a real `keyward serve` (with an OpenID Provider, node
//! `oidc-provider`, as the organization IdP): a workload token minted by the platform for the
//! audience `keyward-gateway`, a personal access token (the bootstrap token) and the IdP's
//! access token from `keyward login` each pass, naming the organization, person and role the
//! platform's database holds; a workload token for another audience is refused.

use std::io::Write;

use keyward_gateway::identity::{IdentityError, IdentitySettings, IdpSettings, Verifier};
use keyward_policy::{Accept, PrincipalKind};
use reqwest::Method;

use crate::common::*;
use crate::sso_device::{device_login, people_cli};
use crate::sso_oidc::{Browser, keycloak_options, node_ready, start_idp};

const ALL: [Accept; 3] = [Accept::Workload, Accept::Idp, Accept::Pat];

fn bearer(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_verifier_accepts_workload_personal_and_idp_tokens_of_a_real_platform() {
    install_crypto();
    if !node_ready() {
        return;
    }
    for backend in backends().await {
        run(&backend).await;
    }
}

async fn run(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::sso_oidc::free_port();
    let keyward_url = format!("https://127.0.0.1:{port}");
    let idp = start_idp(dir.path(), &keyward_url);
    let options = keycloak_options(backend, dir.path(), &idp, port);
    let server = Server::start(&options);
    let org = org_id(&server);
    let ca = server.ca_file.clone().unwrap();

    // The gateway shares the platform's store and trusts its CA for discovery and keys.
    let database_url = match backend {
        Backend::Postgres { url } => Some(url.as_str()),
        Backend::Sqlite => None,
    };
    let store = keyward_store::open(database_url, &options.data_dir)
        .await
        .unwrap();
    let settings = IdentitySettings {
        platform_url: Some(url::Url::parse(&server.url).unwrap()),
        platform_ca: Some(ca.clone()),
        workload_audience: "keyward-gateway".into(),
        idp: Some(IdpSettings {
            issuer: idp.issuer.clone(),
            audience: "account".into(),
            jwks_url: None,
            groups_claim: "realm_access.roles".into(),
            ca_file: Some(idp.trust.clone()),
        }),
    };
    let verifier = Verifier::new(settings, store).await.unwrap();
    let now = || keyward_server::clock::now();
    verifier.warm_up(now()).await.unwrap();

    // A workload token minted by the platform for the gateway.
    let (_, automation_token) = automation_with_token(&server, "llm-proxy").await;
    let (status, minted) = mint(&server, &automation_token, "keyward-gateway").await;
    assert_eq!(status, 200, "{minted}");
    let workload = minted["token"].as_str().unwrap();
    let principal = verifier
        .verify(&bearer(workload), &ALL, now())
        .await
        .unwrap();
    assert_eq!(principal.kind, PrincipalKind::Workload);
    assert_eq!(principal.org, org);
    assert_eq!(principal.automation.as_deref(), Some("llm-proxy"));
    assert_eq!(principal.subject, format!("organization:{org}"));
    // The same automation's token for a cloud's audience is no key to the gateway.
    let (status, minted) = mint(&server, &automation_token, "sts.amazonaws.com").await;
    assert_eq!(status, 200, "{minted}");
    let for_aws = minted["token"].as_str().unwrap();
    match verifier.verify(&bearer(for_aws), &ALL, now()).await {
        Err(IdentityError::Refused { check }) => {
            assert_eq!(
                check,
                "the token's audience is \"sts.amazonaws.com\", this gateway accepts \"keyward-gateway\""
            );
        }
        other => panic!("{other:?}"),
    }
    // The automation's own (opaque) token is not a workload token.
    match verifier
        .verify(&bearer(&automation_token), &ALL, now())
        .await
    {
        Err(IdentityError::Refused { check }) => {
            assert!(check.contains("is an automation token"), "{check}");
            assert!(!check.contains(&automation_token));
        }
        other => panic!("{other:?}"),
    }

    // A personal access token: the bootstrap owner's.
    let principal = verifier
        .verify(&bearer(BOOTSTRAP_TOKEN), &ALL, now())
        .await
        .unwrap();
    assert_eq!(principal.kind, PrincipalKind::Pat);
    assert_eq!(principal.org, org);
    assert_eq!(principal.email.as_deref(), Some("owner@acme.example"));
    assert_eq!(principal.role.as_deref(), Some("owner"));
    assert!(principal.subject.starts_with("user:"), "{principal:?}");

    // The IdP's access token from `keyward login`, which signs alice in to Keyward on the way
    // (her identity is linked and she joins Acme as a member): the gateway maps it to her.
    let trust = dir.path().join("trust.pem");
    let mut bundle = std::fs::File::create(&trust).unwrap();
    bundle.write_all(&std::fs::read(&ca).unwrap()).unwrap();
    bundle
        .write_all(&std::fs::read(&idp.trust).unwrap())
        .unwrap();
    drop(bundle);
    let home = tempfile::tempdir().unwrap();
    let out = people_cli(home.path(), &trust)
        .args(["configure", &keyward_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);
    let idp_token = device_login(home.path(), &trust, &mut browser, "alice@acme.example").await;
    let principal = verifier
        .verify(&bearer(&idp_token), &ALL, now())
        .await
        .unwrap();
    assert_eq!(principal.kind, PrincipalKind::Idp);
    assert_eq!(principal.org, org);
    assert_eq!(principal.email.as_deref(), Some("alice@acme.example"));
    assert_eq!(principal.role.as_deref(), Some("member"));
    assert!(
        principal.groups.contains(&"member".to_owned()),
        "{principal:?}"
    );
    // A route that takes only workload tokens says so.
    match verifier
        .verify(&bearer(&idp_token), &[Accept::Workload], now())
        .await
    {
        Err(IdentityError::NotAccepted { kind, .. }) => assert_eq!(kind, "idp"),
        other => panic!("{other:?}"),
    }

    // A person of the same IdP whom Keyward refused (no role in the IdP): refused here too.
    let home = tempfile::tempdir().unwrap();
    let out = people_cli(home.path(), &trust)
        .args(["configure", &keyward_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);
    let nobody = device_login(home.path(), &trust, &mut browser, "nobody@acme.example").await;
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &format!("{keyward_url}/crewai_plus/api/v1/me/organizations"),
        Some(&nobody),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    match verifier.verify(&bearer(&nobody), &ALL, now()).await {
        Err(IdentityError::Refused { check }) => {
            // Keyward refused nobody before linking any identity: the gateway knows no person.
            assert!(check.contains("is not known to Keyward"), "{check}");
            assert!(!check.contains(&nobody));
        }
        other => panic!("{other:?}"),
    }
}
