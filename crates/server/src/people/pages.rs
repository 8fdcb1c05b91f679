//! The console pages of the `local` provider: sign-in (password, then TOTP when enabled) and the
//! device verification page `/device`, where a signed-in person enters or confirms the code their
//! terminal shows and approves or denies it.
//!
//! Plain server-rendered forms: no script, framed by nobody (`frame-ancestors 'none'`, so the
//! approve button cannot be clickjacked), and every POST carries a token bound to the session.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::admission::logout_location;
use super::cookies::{session_cookie, signed_in};
use super::device_codes::decide;
use super::html::{error_page, escape, page, redirect};
use super::local::{self, SignInError};
use super::throttle;
use crate::audit::kind;
use crate::client_addr::ClientAddr;
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

fn login_form(next: &str, email: &str, totp: bool, message: Option<&str>) -> String {
    let error = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    let totp_field = if totp {
        "<label>One-time code<input name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" autofocus></label>"
    } else {
        "<label>One-time code (if enabled)<input name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\"></label>"
    };
    format!(
        "{error}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label>Email<input name=\"email\" type=\"email\" autocomplete=\"username\" value=\"{email}\" required></label>\
         <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         {totp_field}<button type=\"submit\">Sign in</button></form>",
        next = escape(next),
        email = escape(email),
    )
}

/// `GET /login`
pub async fn login_page(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let next = safe_next(q.next.as_deref());
    page(
        StatusCode::OK,
        "Sign in",
        &login_form(&next, "", false, None),
    )
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
            if !matches!(refusal, SignInError::TotpRequired) {
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
            let mut response = page(
                status,
                "Sign in",
                &login_form(&next, &email, totp, Some(refusal.message())),
            );
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

fn device_form(user_email: &str, session: &str, code: &str, message: Option<&str>) -> String {
    let error = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    format!(
        "<p>Signed in as {email}.</p>{error}\
         <p>Enter the code your terminal shows, check that it matches, then approve. Approve only a \
         sign-in you started yourself.</p>\
         <form method=\"post\" action=\"/device\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Code<input name=\"user_code\" value=\"{code}\" autocomplete=\"off\" autocapitalize=\"characters\" required></label>\
         <button type=\"submit\" name=\"action\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>",
        email = escape(user_email),
        csrf = local::csrf_token(session),
        code = escape(code),
    )
}

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
        Ok(Some((user, session))) => page(
            StatusCode::OK,
            "Approve a CLI sign-in",
            &device_form(&user.email, &session, &code, None),
        ),
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
        return page(
            StatusCode::FORBIDDEN,
            "Approve a CLI sign-in",
            "<p class=\"error\">This form is stale or came from another site: open /device again.</p>",
        );
    }
    let approve = match field("action") {
        "approve" => true,
        "deny" => false,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Approve a CLI sign-in",
                &device_form(
                    &user.email,
                    &session,
                    field("user_code"),
                    Some("Choose Approve or Deny."),
                ),
            );
        }
    };
    match decide(&app, &client, user.id, field("user_code"), approve, now).await {
        Ok(_) if approve => page(
            StatusCode::OK,
            "Sign-in approved",
            "<p>The CLI is signed in. You can close this page and return to your terminal.</p>",
        ),
        Ok(_) => page(
            StatusCode::OK,
            "Sign-in denied",
            "<p>The request was denied; the CLI will not be signed in.</p>",
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
            let mut response = page(
                status,
                "Approve a CLI sign-in",
                &device_form(&user.email, &session, field("user_code"), Some(message)),
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
