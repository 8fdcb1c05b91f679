//! `AUTH_PROVIDER` at startup: each provider's required variables are named when missing, and
//! an external provider publishes its CLI parameters (or says which variable they still need).

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::people::form;

/// The required variables of each provider, as the SSO documentation lists them.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        "entra_id",
        &[
            "ENTRA_ID_CLIENT_ID",
            "ENTRA_ID_CLIENT_SECRET",
            "ENTRA_ID_TENANT_ID",
        ],
    ),
    (
        "okta",
        &[
            "OKTA_CLIENT_ID",
            "OKTA_CLIENT_SECRET",
            "OKTA_SITE",
            "OKTA_AUTHORIZATION_SERVER",
            "OKTA_AUDIENCE",
        ],
    ),
    (
        "auth0",
        &["AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "AUTH0_DOMAIN"],
    ),
    (
        "keycloak",
        &[
            "KEYCLOAK_CLIENT_ID",
            "KEYCLOAK_CLIENT_SECRET",
            "KEYCLOAK_SITE",
            "KEYCLOAK_REALM",
            "KEYCLOAK_AUDIENCE",
        ],
    ),
    ("workos", &["WORKOS_CLIENT_ID", "WORKOS_AUTHKIT_DOMAIN"]),
];

#[tokio::test(flavor = "multi_thread")]
async fn startup_without_a_providers_variables_names_each_missing_one() {
    install_crypto();
    for (provider, vars) in REQUIRED {
        let dir = tempfile::tempdir().unwrap();
        let mut options =
            ServerOptions::new(&Backend::Sqlite, dir.path()).env("AUTH_PROVIDER", provider);
        // All but the last variable set: exactly that one is named.
        for var in &vars[..vars.len() - 1] {
            options = options.env(var, "https://value.example.com");
        }
        let failure = Server::try_start(&options)
            .err()
            .unwrap_or_else(|| panic!("{provider} started without {}", vars[vars.len() - 1]));
        assert!(
            failure.stderr.contains(&format!(
                "AUTH_PROVIDER={provider} needs {}:",
                vars[vars.len() - 1]
            )),
            "{provider}: {}",
            failure.stderr
        );

        let dir = tempfile::tempdir().unwrap();
        let options =
            ServerOptions::new(&Backend::Sqlite, dir.path()).env("AUTH_PROVIDER", provider);
        let failure = Server::try_start(&options)
            .err()
            .unwrap_or_else(|| panic!("{provider} started with no settings"));
        for var in *vars {
            assert!(
                failure.stderr.contains(var),
                "{provider}: {var} not named in {}",
                failure.stderr
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let failure = Server::try_start(
        &ServerOptions::new(&Backend::Sqlite, dir.path()).env("AUTH_PROVIDER", "ldap"),
    )
    .err()
    .unwrap();
    assert!(
        failure
            .stderr
            .contains("entra_id, okta, auth0, keycloak, workos, local"),
        "{}",
        failure.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_provider_publishes_its_cli_parameters() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let okta = |options: ServerOptions| {
        options
            .env("AUTH_PROVIDER", "okta")
            .env("OKTA_CLIENT_ID", "web-client")
            .env("OKTA_CLIENT_SECRET", "okta-secret-value")
            .env("OKTA_SITE", "https://acme.okta.com")
            .env("OKTA_AUTHORIZATION_SERVER", "default")
            .env("OKTA_AUDIENCE", "api://default")
    };
    let server = Server::start(&okta(ServerOptions::new(&Backend::Sqlite, dir.path())));
    let url = format!("{}/auth/parameters", server.url);
    let (status, body) = call(&server.client(), Method::GET, &url, None, None).await;
    assert_eq!(status, 503);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("OKTA_DEVICE_AUTHORIZATION_CLIENT_ID"),
        "{body}"
    );
    // Keyward's own device flow is off: people sign in at Okta.
    let (status, body) = form(
        &server,
        "/oauth2/device_authorization",
        &[("client_id", "keyward-cli")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(!server.stderr().contains("okta-secret-value"));
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &okta(ServerOptions::new(&Backend::Sqlite, dir.path()))
            .env("OKTA_DEVICE_AUTHORIZATION_CLIENT_ID", "native-client"),
    );
    let (status, body) = call(
        &server.client(),
        Method::GET,
        &url.replace(&url[..url.find("/auth").unwrap()], &server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"provider": "okta", "audience": "api://default", "domain": "acme.okta.com",
               "device_authorization_client_id": "native-client",
               "extra": {"authorization_server_name": "default", "using_org_auth_server": false}})
    );
}
