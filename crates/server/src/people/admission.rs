//! What OIDC and SAML sign-ins share: both end in [`admit`] — roles from the provider's claims
//! (`member` may sign in, `factory-admin` administers), the person provisioned into the
//! organization on first sign-in — and [`land`], a console session as for the `local` provider.

use axum::response::Response;
use keyward_sso::Identity;
use keyward_store::{StoreError, UserRow};
use serde_json::json;

use super::cookies::signed_in;
use super::refusal::{ROLE_ADMIN, ROLE_MEMBER, Refusal};
use super::{links, local};
use crate::audit::kind;
use crate::config::provider::AuthProvider;
use crate::error::ApiError;
use crate::state::AppState;

/// How long a sign-in may stay at the identity provider.
pub const PENDING_TTL: i64 = 600;

/// The person a verified identity names (see [`super::links`]: by the provider's subject,
/// linked by a verified address the first time), provisioned on first sight into the SSO
/// organization with the role their application roles grant. Refuses people with neither role,
/// and applies `factory-admin` to an existing membership at every sign-in.
pub async fn admit(
    app: &AppState,
    who: &Identity,
    method: &str,
    now: i64,
) -> Result<UserRow, Refusal> {
    let admin = who.roles.iter().any(|r| r == ROLE_ADMIN);
    let member = admin || who.roles.iter().any(|r| r == ROLE_MEMBER);
    if !member {
        links::refused(app, who, now).await?;
        let email = who.email.clone().unwrap_or_else(|| who.subject.clone());
        return Err(Refusal::NotAssigned { email });
    }
    let role = if admin { "owner" } else { "member" };
    let (user, created) = links::account(app, who, method, now).await?;
    let email = user.email.clone();
    // Someone in no organization yet (new, or provisioned before any existed) joins the SSO
    // organization; after that, only the Owner role follows the provider (`sync_owner`).
    if app.store.memberships(user.id).await?.is_empty() {
        let org = match app.sso.org {
            Some(org) => Some(org),
            None => app.store.first_org().await?,
        };
        if let Some(org) = org {
            match app.store.add_membership(org, user.id, role, now).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        app.audit
            .record(
                kind::USER_PROVISIONED,
                org,
                &format!("user:{}", user.id),
                json!({"method": method, "provider": app.config.auth.name(), "email": email, "role": role, "new_user": created}),
            )
            .await
            .map_err(ApiError::from)?;
    } else {
        links::sync_owner(app, &user, who).await?;
    }
    Ok(user)
}

/// Starts the console session of an admitted person and sends them on to `next`.
pub async fn land(
    app: &AppState,
    user: &UserRow,
    who: &Identity,
    method: &str,
    next: &str,
    now: i64,
) -> Result<Response, Refusal> {
    let session = local::start_session(app.store.as_ref(), user.id, now).await?;
    app.audit
        .record(
            kind::LOGIN,
            None,
            &format!("user:{}", user.id),
            json!({"method": method, "provider": app.config.auth.name(), "roles": who.roles}),
        )
        .await
        .map_err(ApiError::from)?;
    Ok(signed_in(app, &session, next))
}

/// Only this server's own paths may be returned to after sign-in ([`super::next_path`]).
pub fn safe_next(next: Option<&str>) -> String {
    super::next_path::or(next, "/auth/session")
}

/// Where people start signing in on this server.
pub fn login_path(app: &AppState) -> String {
    match &app.config.auth {
        AuthProvider::Local => "/login".into(),
        other if app.sso.oidc.is_some() => format!("/auth/{}/login", other.name()),
        _ => "/auth/saml/login".into(),
    }
}

/// Where sign-out sends the browser: the provider's end-session endpoint when it has one (so
/// the provider's session ends too), else this server's sign-in page.
pub async fn logout_location(app: &AppState, now: i64) -> String {
    let public = app.config.public_url.as_deref().unwrap_or("");
    if let Some(oidc) = &app.sso.oidc {
        match oidc
            .end_session_url(&format!("{}/", public.trim_end_matches('/')), now)
            .await
        {
            Ok(Some(url)) => return url,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "no end-session URL; signing out of Keyward only"),
        }
    }
    login_path(app)
}
