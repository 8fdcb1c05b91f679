//! Invitations of the `local` provider: a person allowed to manage invitations invites an email
//! to the organization with a role they may grant; the invitation link carries a secret (in the
//! URL fragment, which browsers never send to servers or logs).
//!
//! An invitation never touches an existing account's credentials. For an email that already has
//! an account the link only adds the membership, and only for someone signed in as that account
//! (the console session): holding the link proves nothing about owning the email, since anyone
//! can create an organization and invite any address. Only an invitation that creates the
//! account sets its first password.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use keyward_core::UserId;
use keyward_core::permission::RoleGrants;
use keyward_store::{InvitationRow, StoreError, UserRow, secret};
use serde::Deserialize;
use serde_json::{Value, json};

use super::cookies::signed_in;
use super::html::{error_page, notice, notice_with_link, redirect};
use super::{local, passwords, throttle};
use crate::audit::kind;
use crate::caller::Caller;
use crate::client_addr::ClientAddr;
use crate::clock;
use crate::domain::invitations::{self as pending, PendingInvitation};
use crate::domain::members;
use crate::error::{ApiError, ApiJson, set_retry_after};
use crate::state::AppState;

/// How long an invitation stays valid by default, and at most.
const DEFAULT_TTL: i64 = 7 * 24 * 3600;
const MAX_TTL: i64 = 30 * 24 * 3600;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    email: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A created invitation. `url` carries the secret and is shown once, to the inviter.
pub struct Invited {
    pub email: String,
    pub role: String,
    pub org: keyward_core::OrgId,
    pub expires_at: i64,
    pub url: String,
}

/// `POST /api/v1/invitations`: the link is in the answer only.
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let invited = invite(
        &app,
        &caller,
        &body.email,
        body.role.as_deref(),
        body.expires_in,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "email": invited.email,
            "role": invited.role,
            "organization": invited.org,
            "expires_at": clock::rfc3339(invited.expires_at),
            "invitation_url": invited.url,
        })),
    ))
}

/// Invites `email` to the caller's organization with `role` (Member when absent): the API's
/// and the console's one way to do it.
pub async fn invite(
    app: &AppState,
    caller: &Caller,
    email: &str,
    role: Option<&str>,
    expires_in: Option<i64>,
) -> Result<Invited, ApiError> {
    super::require_local(app)?;
    let org = caller.org()?.clone();
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "email",
            format!("{email:?} is not an email address"),
        ));
    }
    // The same rules as adding a member: any role of the organization (custom ones too), but none
    // that grants more than the inviter's own.
    let role = members::named_role(app, org.id, role.unwrap_or(RoleGrants::MEMBER)).await?;
    members::check_may_assign(caller, &role, "grant")?;
    let role = role.name;
    let ttl = expires_in.unwrap_or(DEFAULT_TTL);
    if !(60..=MAX_TTL).contains(&ttl) {
        return Err(ApiError::invalid(
            "expires_in",
            format!("expires_in is in seconds, between 60 and {MAX_TTL}"),
        ));
    }
    let issuer = super::local_issuer(app)?;
    let public = app.config.public_url.clone().unwrap_or(issuer);
    let token =
        secret::generate_token("kwi_").ok_or_else(|| ApiError::internal("system RNG failed"))?;
    let now = caller.now;
    let row = InvitationRow {
        // Time-ordered, so invitations made in the same second list in the order they were made.
        id: uuid::Uuid::now_v7().simple().to_string(),
        hash: secret::hash_token(&token),
        org_id: org.id,
        email: email.clone(),
        role: role.clone(),
        invited_by: Some(caller.user()?),
        created_at: now,
        expires_at: now + ttl,
        accepted_at: None,
    };
    app.store.create_invitation(&row).await?;
    app.audit
        .record(
            kind::INVITATION_CREATED,
            Some(org.id),
            &caller.actor(),
            json!({"email": email, "role": role, "expires_at": clock::rfc3339(row.expires_at)}),
        )
        .await?;
    Ok(Invited {
        email,
        role,
        org: org.id,
        expires_at: row.expires_at,
        url: format!("{public}/invite#token={token}"),
    })
}

/// `GET /api/v1/invitations`: the organization's pending invitations (never their links).
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PendingInvitation>>, ApiError> {
    Ok(Json(pending::list_pending(&app, &caller).await?))
}

/// `DELETE /api/v1/invitations/{id}`: the link stops working; answers what was revoked.
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PendingInvitation>, ApiError> {
    Ok(Json(pending::revoke(&app, &caller, &id).await?))
}

const TITLE: &str = "Join your organization";

/// Moves the secret from the fragment into the form. It is also kept in this tab's
/// sessionStorage, so that after "sign in first" (`/login?next=/invite`) the page still has it:
/// never in a query string, a server log or the browser history (the fragment is dropped).
/// Inline, allowed by its hash (the page's policy; beside it only the console's own script file).
const TOKEN_SCRIPT: &str = "(function(){\
var t=new URLSearchParams(location.hash.slice(1)).get('token');\
try{if(t){sessionStorage.setItem('keyward_invite',t);history.replaceState(null,'',location.pathname);}\
else{t=sessionStorage.getItem('keyward_invite');}}catch(e){}\
document.getElementById('token').value=t||'';})();";

static INVITE_CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, TOKEN_SCRIPT.as_bytes());
    let hash = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest);
    format!(
        "default-src 'none'; script-src 'sha256-{hash}' 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
});

#[derive(askama::Template)]
#[template(path = "console/invite.html")]
struct InvitePage {
    layout: crate::console::render::Layout,
    signed_in_as: Option<String>,
    csrf: String,
    sign_in_first: &'static str,
    script: &'static str,
}

const SIGN_IN_FIRST: &str = "/login?next=%2Finvite";

/// `GET /invite`: join as the signed-in person, or choose a password for a new account.
pub async fn page_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let (signed_in_as, csrf) = match local::session_user(&app, &headers, app.clock.now()).await {
        Ok(Some((user, session))) => (Some(user.email), local::csrf_token(&session)),
        Ok(None) => (None, String::new()),
        Err(e) => return error_page(e),
    };
    let mut response = crate::console::render::render(
        StatusCode::OK,
        &InvitePage {
            layout: crate::console::render::Layout::bare(TITLE),
            signed_in_as,
            csrf,
            sign_in_first: SIGN_IN_FIRST,
            script: TOKEN_SCRIPT,
        },
    );
    if let Ok(csp) = axum::http::HeaderValue::from_str(&INVITE_CSP) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// What came of a `POST /invite`.
enum Joined {
    /// A new account: its first session starts here.
    NewAccount(String),
    /// The signed-in person joined; their session goes on.
    Member,
    /// The link is unknown, used or expired.
    InvalidLink,
    /// The invited email has an account, and the request is not signed in as it.
    SignInFirst,
    /// Signed in, but as someone else than the invited account.
    OtherAccount,
    /// Signed in, but the form lacks this session's token (another site's form, or stale).
    StaleForm,
    /// A new account's password breaks the policy.
    Policy(String),
}

/// `POST /invite`: joins the organization. For an existing account only when signed in as it;
/// a password is taken only to create a new account, and is never checked against one.
pub async fn accept(
    State(app): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let refuse = |status: StatusCode, message: &str| notice(status, TITLE, message);
    let now = app.clock.now();
    let address = throttle::address("invite", &client);
    let wait = match throttle::admit(&app, &client, now).await {
        Ok(Some(wait)) => Some(wait),
        Ok(None) => match throttle::wait_for(&app, &[&address], app.clock.now_ms()).await {
            Ok(wait) => wait,
            Err(e) => return error_page(e),
        },
        Err(e) => return error_page(e),
    };
    if let Some(wait) = wait {
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many attempts from this address: wait {wait} seconds and try again."),
        );
        set_retry_after(&mut response, wait);
        return response;
    }
    let session = match local::session_user(&app, &headers, now).await {
        Ok(found) => found,
        Err(e) => return error_page(e),
    };
    let outcome = join(
        &app,
        field("token"),
        session
            .as_ref()
            .map(|(user, cookie)| (user, cookie.as_str(), field("csrf"))),
        field("password"),
        now,
    )
    .await;
    match outcome {
        Ok(Joined::NewAccount(session)) => signed_in(&app, &session, "/device"),
        Ok(Joined::Member) => redirect("/device"),
        Ok(Joined::InvalidLink) => {
            if let Err(e) = throttle::failed(&app, &[&address], app.clock.now_ms()).await {
                return error_page(e);
            }
            refuse(
                StatusCode::BAD_REQUEST,
                "This invitation link is invalid, used or expired: ask for a new one.",
            )
        }
        Ok(Joined::SignInFirst) => notice_with_link(
            StatusCode::FORBIDDEN,
            TITLE,
            "This invitation is for an account that already exists. Sign in as that account \
             first; you come back here to join.",
            SIGN_IN_FIRST,
            "Sign in",
        ),
        Ok(Joined::OtherAccount) => refuse(
            StatusCode::FORBIDDEN,
            "You are signed in as someone else than the invited account: sign out on /device, \
             then open the invitation link again.",
        ),
        Ok(Joined::StaleForm) => refuse(
            StatusCode::FORBIDDEN,
            "This form is stale or came from another site: open the invitation link again.",
        ),
        Ok(Joined::Policy(message)) => refuse(
            StatusCode::BAD_REQUEST,
            &format!("{message}. Open the invitation link again."),
        ),
        Err(e) => error_page(e),
    }
}

async fn join(
    app: &AppState,
    token: &str,
    session: Option<(&UserRow, &str, &str)>,
    password: &str,
    now: i64,
) -> Result<Joined, ApiError> {
    let hash = secret::hash_token(token);
    let Some(pending) = app
        .store
        .invitation_by_hash(&hash)
        .await?
        .filter(|i| i.accepted_at.is_none() && now < i.expires_at)
    else {
        return Ok(Joined::InvalidLink);
    };
    if let Some(existing) = app.store.find_user_by_email(&pending.email).await? {
        // No password is looked at on this path, so it is no oracle and skips no TOTP.
        let Some((user, cookie, csrf)) = session else {
            return Ok(Joined::SignInFirst);
        };
        if user.id != existing.id {
            return Ok(Joined::OtherAccount);
        }
        if !local::csrf_matches(cookie, csrf) {
            return Ok(Joined::StaleForm);
        }
        let Some(invitation) = app.store.accept_invitation(&hash, now).await? else {
            return Ok(Joined::InvalidLink);
        };
        add_member(app, &invitation, existing.id, now).await?;
        return Ok(Joined::Member);
    }
    if session.is_some() && password.is_empty() {
        // "Join as <me>" for an invitation to an address that has no account yet.
        return Ok(Joined::OtherAccount);
    }
    if let Err(ApiError::Invalid { message, .. }) = passwords::check_password_policy(password) {
        return Ok(Joined::Policy(message));
    }
    let password_hash = passwords::hash_password(password.to_owned()).await?;
    // The atomic claim: of two concurrent acceptances one wins.
    let Some(invitation) = app.store.accept_invitation(&hash, now).await? else {
        return Ok(Joined::InvalidLink);
    };
    let user = UserRow {
        id: UserId::new_random(),
        email: invitation.email.clone(),
        created_at: now,
    };
    match app.store.create_user(&user).await {
        Ok(()) => {}
        // Someone created the account meanwhile (SSO, another invitation): it is theirs now, so
        // this password must not become its credential.
        Err(StoreError::Conflict { .. }) => return Ok(Joined::SignInFirst),
        Err(e) => return Err(e.into()),
    }
    app.store
        .set_local_password(user.id, &password_hash, now)
        .await?;
    add_member(app, &invitation, user.id, now).await?;
    let session = local::start_session(app.store.as_ref(), user.id, now).await?;
    Ok(Joined::NewAccount(session))
}

async fn add_member(
    app: &AppState,
    invitation: &InvitationRow,
    user: UserId,
    now: i64,
) -> Result<(), ApiError> {
    match app
        .store
        .add_membership(invitation.org_id, user, &invitation.role, now)
        .await
    {
        Ok(()) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    app.audit
        .record(
            kind::INVITATION_ACCEPTED,
            Some(invitation.org_id),
            &format!("user:{user}"),
            json!({"email": invitation.email, "role": invitation.role}),
        )
        .await?;
    Ok(())
}
