//! The console's sign-in page with external identity providers: a button per configured
//! provider (OIDC, SAML) that starts that provider's sign-in and comes back to the console,
//! driven through a real IdP (node oidc-provider; samlify for SAML) to a console session.

use serde_json::json;

use crate::common::*;
use crate::sso_oidc::{
    Browser, Outcome, drive, free_port, keycloak_options, node_ready, start_idp,
};
use crate::sso_saml::{idp_keys, options as saml_options, relay, samlify, samlify_ready};

const SAML_EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
const SAML_ROLE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// Not signed in, `/console` sends the browser to the sign-in page, which comes back to it.
async fn sign_in_page(browser: &mut Browser, base: &str) -> String {
    let away = browser.get(&format!("{base}/console")).await;
    assert_eq!(away.status, 303, "{}", away.body);
    assert_eq!(away.location.as_deref(), Some("/login?next=%2Fconsole"));
    let page = browser.get(&format!("{base}/login?next=%2Fconsole")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
}

/// The `href` of the link with this `id`.
fn href_of(html: &str, id: &str) -> String {
    let tag = html
        .split("<a ")
        .find(|t| t.contains(&format!("id=\"{id}\"")))
        .unwrap_or_else(|| panic!("no button {id} in {html}"));
    let start = tag.find("href=\"").unwrap() + "href=\"".len();
    let end = tag[start..].find('"').unwrap() + start;
    tag[start..end].replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_sign_in_page_signs_in_through_the_oidc_provider() {
    install_crypto();
    if !node_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let idp = start_idp(dir.path(), &base);
    let server = Server::start(&keycloak_options(&Backend::Sqlite, dir.path(), &idp, port));
    let ca = server.ca_file.clone().expect("Keyward's CA");
    let mut browser = Browser::new(&[ca.as_path(), idp.trust.as_path()]);

    let page = sign_in_page(&mut browser, &base).await;
    assert!(page.contains("Sign in with Keycloak"), "{page}");
    let start = href_of(&page, "sso-oidc");
    assert_eq!(start, "/auth/keycloak/login?next=%2Fconsole");
    // Keyward is not the identity provider here: no password form, no SAML button.
    assert!(!page.contains("id=\"login-form\""), "{page}");
    assert!(!page.contains("id=\"sso-saml\""), "{page}");

    // The button goes to the IdP; its forms are filled; the callback lands on the console.
    let callback = match drive(
        &mut browser,
        &format!("{base}{start}"),
        "alice@acme.example",
        &base,
    )
    .await
    {
        Outcome::Stopped(url) => url,
        Outcome::Page(a) => panic!(
            "the IdP did not send the browser back: {} {}",
            a.status, a.body
        ),
    };
    assert!(
        callback.starts_with(&format!("{base}/auth/keycloak/callback?")),
        "{callback}"
    );
    let landed = browser.get(&callback).await;
    assert_eq!(landed.status, 303, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/console"));
    assert!(browser.cookie("keyward_session").is_some());
    let console = browser.get(&format!("{base}/console")).await;
    assert_eq!(console.status, 200, "{}", console.body);
    assert!(
        console.body.contains("alice@acme.example"),
        "{}",
        console.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_sign_in_page_offers_every_provider_and_signs_in_through_saml() {
    install_crypto();
    if !samlify_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = idp_keys(dir.path());
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    // Entra ID over OIDC and a SAML IdP, side by side.
    let server = Server::start(&saml_options(&Backend::Sqlite, dir.path(), port, &keys.2));
    let ca = server.ca_file.clone().expect("Keyward's CA");
    let mut browser = Browser::new(&[ca.as_path()]);

    let page = sign_in_page(&mut browser, &base).await;
    assert!(page.contains("Sign in with Microsoft Entra ID"), "{page}");
    assert_eq!(
        href_of(&page, "sso-oidc"),
        "/auth/entra_id/login?next=%2Fconsole"
    );
    assert!(page.contains("Sign in with SAML single sign-on"), "{page}");
    let start = href_of(&page, "sso-saml");
    assert_eq!(start, "/auth/saml/login?next=%2Fconsole");

    let to = browser.get(&format!("{base}{start}")).await;
    assert_eq!(to.status, 303, "{}", to.body);
    let to = to.location.unwrap();
    assert!(to.starts_with("https://idp.test/sso?SAMLRequest="), "{to}");
    let response = samlify(
        &keys,
        &base,
        &to,
        "ada@acme.example",
        json!([{"name": SAML_EMAIL, "values": ["ada@acme.example"]}, {"name": SAML_ROLE, "values": ["member"]}]),
    );
    let landed = browser
        .post_form(
            &format!("{base}/auth/saml/acs"),
            &[
                ("SAMLResponse".to_owned(), response),
                ("RelayState".to_owned(), relay(&to)),
            ],
        )
        .await;
    assert_eq!(landed.status, 303, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/console"));
    let console = browser.get(&format!("{base}/console")).await;
    assert_eq!(console.status, 200, "{}", console.body);
    assert!(
        console.body.contains("ada@acme.example"),
        "{}",
        console.body
    );
}
