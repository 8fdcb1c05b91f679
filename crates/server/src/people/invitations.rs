//! Invitations of the `local` provider: an owner invites an email to the organization with a
//! role; the invitation link carries a secret (in the URL fragment, which browsers never send to
//! servers or logs) that lets the invited person choose a password and join.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::UserId;
use keyward_store::{InvitationRow, StoreError, UserRow, secret};
use serde::Deserialize;
use serde_json::{Value, json};

use super::local;
use super::pages::{error_page, escape, page, page_with_csp, signed_in};
use crate::audit::kind;
use crate::auth::Caller;
use crate::clock;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

/// How long an invitation stays valid by default, and at most.
const DEFAULT_TTL: i64 = 7 * 24 * 3600;
const MAX_TTL: i64 = 30 * 24 * 3600;
/// The roles an invitation may grant; what each allows is the RBAC table's business.
const ROLES: &[&str] = &["owner", "member"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    email: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// `POST /api/v1/invitations`: the link is in the answer only.
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::require_local(&app)?;
    let org = caller.org()?.clone();
    let email = body.email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "email",
            format!("{email:?} is not an email address"),
        ));
    }
    let role = body.role.unwrap_or_else(|| "member".into());
    if !ROLES.contains(&role.as_str()) {
        return Err(ApiError::invalid(
            "role",
            format!("role {role:?} is not one of {}", ROLES.join(", ")),
        ));
    }
    let ttl = body.expires_in.unwrap_or(DEFAULT_TTL);
    if !(60..=MAX_TTL).contains(&ttl) {
        return Err(ApiError::invalid(
            "expires_in",
            format!("expires_in is in seconds, between 60 and {MAX_TTL}"),
        ));
    }
    let issuer = super::local_issuer(&app)?;
    let public = app.config.public_url.clone().unwrap_or(issuer);
    let token =
        secret::generate_token("kwi_").ok_or_else(|| ApiError::internal("system RNG failed"))?;
    let now = clock::now();
    let row = InvitationRow {
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
            json!({"email": email, "role": role, "expires_at": row.expires_at}),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "email": email,
            "role": role,
            "organization": org.id,
            "expires_at": clock::to_datetime(row.expires_at),
            "invitation_url": format!("{public}/invite#token={token}"),
        })),
    ))
}

const INVITE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// `GET /invite`: choose a password and join. The page's script moves the secret from the
/// fragment into the form.
pub async fn page_get(State(app): State<AppState>) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    page_with_csp(
        StatusCode::OK,
        "Join your organization",
        "<form method=\"post\" action=\"/invite\"><input type=\"hidden\" name=\"token\" id=\"token\">\
         <label>Choose a password (12 characters or more)<input name=\"password\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"12\" required></label>\
         <button type=\"submit\">Join</button></form>\
         <script>document.getElementById('token').value = new URLSearchParams(location.hash.slice(1)).get('token') || '';</script>",
        INVITE_CSP,
    )
}

/// `POST /invite`: accepts the invitation, creating the person if new, and signs them in.
pub async fn accept(State(app): State<AppState>, body: Bytes) -> Response {
    if let Err(e) = super::require_local(&app) {
        return error_page(e);
    }
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let refuse = |status: StatusCode, message: &str| {
        page(
            status,
            "Join your organization",
            &format!("<p class=\"error\">{}</p>", escape(message)),
        )
    };
    if let Err(ApiError::Invalid { message, .. }) = local::check_password_policy(field("password"))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("{message}. Open the invitation link again."),
        );
    }
    match join(&app, field("token"), field("password").to_owned()).await {
        Ok(Some(session)) => signed_in(&app, &session, "/device"),
        Ok(None) => refuse(
            StatusCode::BAD_REQUEST,
            "This invitation link is invalid, used or expired: ask for a new one.",
        ),
        Err(JoinError::WrongPassword) => refuse(
            StatusCode::FORBIDDEN,
            "You already have an account: enter its password to join.",
        ),
        Err(JoinError::Api(e)) => error_page(e),
    }
}

enum JoinError {
    WrongPassword,
    Api(ApiError),
}

impl From<StoreError> for JoinError {
    fn from(e: StoreError) -> Self {
        JoinError::Api(e.into())
    }
}

impl From<ApiError> for JoinError {
    fn from(e: ApiError) -> Self {
        JoinError::Api(e)
    }
}

async fn join(app: &AppState, token: &str, password: String) -> Result<Option<String>, JoinError> {
    let now = clock::now();
    let hash = secret::hash_token(token);
    // Check an existing account's password before spending the invitation, so a typo does not
    // burn the link.
    let Some(pending) = app
        .store
        .invitation_by_hash(&hash)
        .await?
        .filter(|i| i.accepted_at.is_none() && now < i.expires_at)
    else {
        return Ok(None);
    };
    let existing = app.store.find_user_by_email(&pending.email).await?;
    let mut new_password = None;
    let credential = match &existing {
        Some(user) => app.store.local_credential(user.id).await?,
        None => None,
    };
    match credential {
        Some(c) => {
            if !local::verify_password(password, c.password_hash).await? {
                return Err(JoinError::WrongPassword);
            }
        }
        None => new_password = Some(local::hash_password(password).await?),
    }
    // The atomic claim: of two concurrent acceptances one wins.
    let Some(invitation) = app.store.accept_invitation(&hash, now).await? else {
        return Ok(None);
    };
    let user = match existing {
        Some(user) => user,
        None => {
            let user = UserRow {
                id: UserId::new_random(),
                email: invitation.email.clone(),
                created_at: now,
            };
            app.store.create_user(&user).await?;
            user
        }
    };
    if let Some(hash) = new_password {
        app.store.set_local_password(user.id, &hash, now).await?;
    }
    match app
        .store
        .add_membership(invitation.org_id, user.id, &invitation.role, now)
        .await
    {
        Ok(()) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    app.audit
        .record(
            kind::INVITATION_ACCEPTED,
            Some(invitation.org_id),
            &format!("user:{}", user.id),
            json!({"email": invitation.email, "role": invitation.role}),
        )
        .await?;
    let session = local::start_session(app.store.as_ref(), user.id, now).await?;
    Ok(Some(session))
}
