//! The console pages of the `local` provider: sign-in (password, then TOTP when enabled) and the
//! device verification page `/device`, where a signed-in person enters or confirms the code their
//! terminal shows and approves or denies it.
//!
//! Plain server-rendered forms: no script, framed by nobody (`frame-ancestors 'none'`, so the
//! approve button cannot be clickjacked), and every POST carries a token bound to the session.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::admission::logout_location;
use super::cookies::{session_cookie, signed_in};
use super::device_codes::decide;
use super::html::{error_page, info, notice, redirect};
use super::local::{self, SignInError};
use super::throttle;
use crate::audit::kind;
use crate::client_addr::ClientAddr;
use crate::config::provider::AuthProvider;
use crate::console::render::{Flash, Layout, render};
use crate::error::{ApiError, set_retry_after};
use crate::state::AppState;

/// Only this server's own paths may be returned to after sign-in ([`super::next_path`]).
fn safe_next(next: Option<&str>) -> String {
    super::next_path::or(next, "/device")
}

fn percent_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// A sign-in button: an external identity provider's start route, returning to `next`.
struct ProviderButton {
    id: &'static str,
    label: String,
    href: String,
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    layout: Layout,
    /// Whether the password form is offered (`AUTH_PROVIDER=local`).
    local: bool,
    providers: Vec<ProviderButton>,
    next: String,
    email: String,
    totp: bool,
}

fn oidc_label(auth: &AuthProvider) -> &'static str {
    match auth {
        AuthProvider::EntraId(_) => "Microsoft Entra ID",
        AuthProvider::Okta(_) => "Okta",
        AuthProvider::Auth0(_) => "Auth0",
        AuthProvider::Keycloak(_) => "Keycloak",
        AuthProvider::Workos(_) => "WorkOS",
        AuthProvider::Local => "Keyward",
    }
}

/// One button per configured external provider (OIDC, SAML), each starting at the same routes
/// as any other sign-in and coming back to `next`.
fn provider_buttons(app: &AppState, next: &str) -> Vec<ProviderButton> {
    let back = percent_encode(next);
    let mut buttons = Vec::new();
    if app.sso.oidc.is_some() && !matches!(app.config.auth, AuthProvider::Local) {
        buttons.push(ProviderButton {
            id: "sso-oidc",
            label: format!("Sign in with {}", oidc_label(&app.config.auth)),
            href: format!("/auth/{}/login?next={back}", app.config.auth.name()),
        });
    }
    if app.sso.saml.is_some() {
        buttons.push(ProviderButton {
            id: "sso-saml",
            label: "Sign in with SAML single sign-on".into(),
            href: format!("/auth/saml/login?next={back}"),
        });
    }
    buttons
}

fn login_form(
    app: &AppState,
    status: StatusCode,
    next: &str,
    email: &str,
    totp: bool,
    message: Option<&str>,
) -> Response {
    render(
        status,
        &LoginPage {
            layout: Layout::bare("Sign in").with_flash(message.and_then(Flash::error)),
            local: matches!(app.config.auth, AuthProvider::Local),
            providers: provider_buttons(app, next),
            next: next.to_owned(),
            email: email.to_owned(),
            totp,
        },
    )
}

/// `GET /login`: the password form (local provider) and a button per external provider.
pub async fn login_page(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let local = super::require_local(&app);
    if let Err(e) = local
        && provider_buttons(&app, &next).is_empty()
    {
        return error_page(e);
    }
    login_form(&app, StatusCode::OK, &next, "", false, None)
}

/// `POST /login`: checks the credentials, starts a session, returns to `next`.
pub async fn login(State(app): State<AppState>, client: ClientAddr, body: Bytes) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let next = safe_next(fields.get("next").map(String::as_str));
    let email = field("email").trim().to_lowercase();
    let now = app.clock.now();
    let totp = Some(field("totp")).filter(|t| !t.is_empty());
    match local::sign_in(
        &app,
        &client,
        &email,
        field("password").to_owned(),
        totp,
        now,
    )
    .await
    {
        Ok(user) => {
            let session = match local::start_session(app.store.as_ref(), user.id, now).await {
                Ok(s) => s,
                Err(e) => return error_page(e),
            };
            if let Err(e) = app
                .audit
                .record(
                    kind::LOGIN,
                    None,
                    &format!("user:{}", user.id),
                    json!({"method": "password", "totp": totp.is_some()}),
                )
                .await
            {
                return error_page(e.into());
            }
            signed_in(&app, &session, &next)
        }
        Err(SignInError::Other(e)) => error_page(e),
        Err(refusal) => {
            // Not 401: that status promises a WWW-Authenticate challenge, and a form is not one.
            let status = match refusal {
                SignInError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                SignInError::TotpRequired => StatusCode::OK,
                _ => StatusCode::FORBIDDEN,
            };
            // A throttled attempt checked nothing, and auditing each would let one client
            // append to the audit log at will: the failures that led to it are audited.
            if !matches!(
                refusal,
                SignInError::TotpRequired | SignInError::Throttled(_)
            ) {
                let _ = app
                    .audit
                    .record(
                        kind::LOGIN_FAILED,
                        None,
                        "anonymous",
                        json!({
                            "method": "password",
                            "email": throttle::typed_email_for_audit(&email),
                            "address": client.0.map(|ip| ip.to_string()),
                        }),
                    )
                    .await;
            }
            let totp = matches!(refusal, SignInError::TotpRequired);
            let mut response =
                login_form(&app, status, &next, &email, totp, Some(refusal.message()));
            if let SignInError::Throttled(wait) = refusal {
                set_retry_after(&mut response, wait);
            }
            response
        }
    }
}

/// `POST /logout`: ends the console session.
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let now = app.clock.now();
    if let Some(cookie) = session_cookie(&headers) {
        if let Ok(Some((user, _))) = local::session_user(&app, &headers, now).await {
            let _ = app
                .audit
                .record(kind::LOGOUT, None, &format!("user:{}", user.id), json!({}))
                .await;
        }
        let _ = app
            .store
            .delete_web_session(&keyward_store::secret::hash_token(&cookie))
            .await;
    }
    // With an external provider, on to its end-session endpoint so its session ends too.
    let mut response = redirect(&logout_location(&app, now).await);
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("keyward_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    response
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

#[derive(Template)]
#[template(path = "console/device.html")]
struct DevicePage {
    layout: Layout,
    email: String,
    csrf: String,
    code: String,
}

fn device_form(
    status: StatusCode,
    user_email: &str,
    session: &str,
    code: &str,
    message: Option<&str>,
) -> Response {
    render(
        status,
        &DevicePage {
            layout: Layout::bare(DEVICE_TITLE).with_flash(message.and_then(Flash::error)),
            email: user_email.to_owned(),
            csrf: local::csrf_token(session),
            code: code.to_owned(),
        },
    )
}

const DEVICE_TITLE: &str = "Approve a CLI sign-in";

/// `GET /device`: the verification page. Sends people who are not signed in to `/login` first.
pub async fn device_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let code = q.user_code.unwrap_or_default();
    let now = app.clock.now();
    match local::session_user(&app, &headers, now).await {
        Ok(Some((user, session))) => {
            device_form(StatusCode::OK, &user.email, &session, &code, None)
        }
        Ok(None) => {
            let back = if code.is_empty() {
                "/device".to_owned()
            } else {
                format!("/device?user_code={}", percent_encode(&code))
            };
            redirect(&format!("/login?next={}", percent_encode(&back)))
        }
        Err(e) => error_page(e),
    }
}

/// `POST /device`: approve or deny the entered code.
pub async fn device_decide(
    State(app): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let now = app.clock.now();
    let (user, session) = match local::session_user(&app, &headers, now).await {
        Ok(Some(found)) => found,
        Ok(None) => return redirect("/login?next=%2Fdevice"),
        Err(e) => return error_page(e),
    };
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    if !local::csrf_matches(&session, field("csrf")) {
        return notice(
            StatusCode::FORBIDDEN,
            DEVICE_TITLE,
            "This form is stale or came from another site: open /device again.",
        );
    }
    let approve = match field("action") {
        "approve" => true,
        "deny" => false,
        _ => {
            return device_form(
                StatusCode::BAD_REQUEST,
                &user.email,
                &session,
                field("user_code"),
                Some("Choose Approve or Deny."),
            );
        }
    };
    match decide(&app, &client, user.id, field("user_code"), approve, now).await {
        Ok(_) if approve => info(
            StatusCode::OK,
            "Sign-in approved",
            "The CLI is signed in. You can close this page and return to your terminal.",
        ),
        Ok(_) => info(
            StatusCode::OK,
            "Sign-in denied",
            "The request was denied; the CLI will not be signed in.",
        ),
        Err(e @ (ApiError::Invalid { .. } | ApiError::TooManyRequests { .. })) => {
            let retry_after = e.retry_after();
            let response = e.into_response();
            let status = response.status();
            let message = if status == StatusCode::TOO_MANY_REQUESTS {
                "Too many wrong codes: code entry is blocked for a few minutes."
            } else {
                "No pending sign-in has this code. Check the code your terminal shows; it expires after a few minutes."
            };
            let mut response = device_form(
                status,
                &user.email,
                &session,
                field("user_code"),
                Some(message),
            );
            if let Some(secs) = retry_after {
                set_retry_after(&mut response, secs);
            }
            response
        }
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_this_servers_paths() {
        assert_eq!(
            safe_next(Some("/device?user_code=BCDF-GHJK")),
            "/device?user_code=BCDF-GHJK"
        );
        for hostile in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/\n/evil",
            "device",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/device", "{hostile}");
        }
        assert_eq!(safe_next(None), "/device");
    }
}
