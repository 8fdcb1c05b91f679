//! Which Keyward account an identity provider's person is (security review M3), and what the
//! provider's roles mean for that account over time (L4).
//!
//! A person is found by the provider's stable name for them — `(issuer, sub)` for OpenID
//! Connect, `(IdP entity ID, NameID)` for SAML — never by an address alone. The address links
//! an identity to an account only the first time, and only when the provider vouches for it:
//! OIDC `email_verified: true` (a missing claim is not a yes), or Entra ID's `xms_edov`; for
//! SAML, the email attribute (or an email NameID) of the one configured IdP, whose signature
//! was verified, since that IdP is the authority for its own users' addresses. Usernames
//! (`preferred_username`, `upn`, `unique_name`) are never matched.

use keyward_core::UserId;
use keyward_sso::Identity;
use keyward_store::{SsoLinkRow, StoreError, UserRow};
use serde_json::json;

use super::refusal::{ROLE_ADMIN, Refusal};
use crate::audit::kind;
use crate::error::ApiError;
use crate::state::AppState;

/// Audit event of an identity linked to an account (its first sign-in).
const IDENTITY_LINKED: &str = "auth.identity_linked";
/// Audit event of an account's earlier local credentials ended by its first link.
const CREDENTIALS_RESET: &str = "auth.credentials_reset";
/// How stale a link's `last_seen_at` may get before an admitted sign-in rewrites it (seconds).
const SEEN_EVERY: i64 = 60;
/// Who changes roles on the provider's word.
const SSO_ACTOR: &str = "system:sso";

/// The account `who` signs in to: the linked one, else — first sign-in — the account with the
/// provider-verified address (created when there is none), which is then linked. Returns it
/// and whether it was created.
pub async fn account(
    app: &AppState,
    who: &Identity,
    method: &str,
    now: i64,
) -> Result<(UserRow, bool), Refusal> {
    let store = app.store.as_ref();
    if !who.subject.is_empty()
        && let Some(link) = store.sso_link(&who.issuer, &who.subject).await?
    {
        // Provider access tokens come through here on every API call: write only when
        // something changed, or now and then to keep "most recent sign-in" meaningful.
        let changed = !link.admitted || (who.email.is_some() && who.email != link.email);
        if changed || now - link.last_seen_at >= SEEN_EVERY {
            store
                .record_sso_sign_in(&who.issuer, &who.subject, who.email.as_deref(), true, now)
                .await?;
        }
        return Ok((store.get_user(link.user_id).await?, false));
    }
    let email = match (&who.email, who.email_verified) {
        (Some(email), true) => email.clone(),
        (Some(email), false) => {
            return Err(Refusal::UnverifiedEmail {
                email: email.clone(),
            });
        }
        (None, _) => return Err(Refusal::NoEmail),
    };
    let (user, created) = match store.find_user_by_email(&email).await? {
        Some(user) => (user, false),
        None => {
            let user = UserRow {
                id: UserId::new_random(),
                email: email.clone(),
                created_at: now,
            };
            match store.create_user(&user).await {
                Ok(()) => (user, true),
                // Another replica provisioned the same person at the same moment.
                Err(StoreError::Conflict { .. }) => (
                    store
                        .find_user_by_email(&email)
                        .await?
                        .ok_or_else(|| Refusal::Other(ApiError::internal("user vanished")))?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    // A transient NameID names nobody twice: such an IdP is matched by its address each time.
    if who.subject.is_empty() {
        return Ok((user, created));
    }
    let link = SsoLinkRow {
        issuer: who.issuer.clone(),
        subject: who.subject.clone(),
        user_id: user.id,
        email: Some(email.clone()),
        admitted: true,
        created_at: now,
        last_seen_at: now,
    };
    match store.create_sso_link(&link).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            // Either this identity was linked a moment ago by another replica (fine, if to
            // this account), or the account already has another identity at this provider.
            match store.sso_link(&who.issuer, &who.subject).await? {
                Some(l) if l.user_id == user.id => {}
                _ => return Err(Refusal::LinkedToAnother { email }),
            }
        }
        Err(e) => return Err(e.into()),
    }
    if !created {
        reset_unproven_credentials(app, &user, now).await?;
    }
    app.audit
        .record(
            IDENTITY_LINKED,
            None,
            &format!("user:{}", user.id),
            json!({"method": method, "provider": app.config.auth.name(), "issuer": who.issuer,
                   "email": email, "new_user": created}),
        )
        .await
        .map_err(ApiError::from)?;
    Ok((user, created))
}

/// The first link of an identity to an existing account is the first proof that the address is
/// its holder's: a local password set before it proved nothing of the sort (an invitation link,
/// which any organization's owner can create for any address, is enough to set one). So the
/// password, its console sessions, the CLI tokens issued under it and the personal access tokens
/// made while it existed end here; otherwise whoever pre-created the account would keep a way into
/// it once its real owner's memberships arrive.
async fn reset_unproven_credentials(
    app: &AppState,
    user: &UserRow,
    now: i64,
) -> Result<(), Refusal> {
    let store = app.store.as_ref();
    if !store.drop_local_credential(user.id).await? {
        return Ok(());
    }
    let sessions = store.end_other_sessions(user.id, None, now).await?;
    let mut revoked = 0;
    for token in store.list_personal_tokens(user.id).await? {
        if token.revoked_at.is_none() {
            store.revoke_personal_token(user.id, token.id, now).await?;
            revoked += 1;
        }
    }
    tracing::warn!(user = %user.id, sessions, revoked, "first SSO link to an account with a local password: the password, its sessions and personal access tokens were ended");
    app.audit
        .record(
            CREDENTIALS_RESET,
            None,
            &format!("user:{}", user.id),
            json!({"reason": "first identity-provider link", "sessions_ended": sessions,
                   "personal_tokens_revoked": revoked}),
        )
        .await
        .map_err(ApiError::from)?;
    Ok(())
}

/// Remembers that the provider no longer assigns a linked person (their personal access tokens
/// stop working until a sign-in is admitted again).
pub async fn refused(app: &AppState, who: &Identity, now: i64) -> Result<(), StoreError> {
    if who.subject.is_empty() {
        return Ok(());
    }
    match app
        .store
        .record_sso_sign_in(&who.issuer, &who.subject, who.email.as_deref(), false, now)
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies `factory-admin` at every sign-in, in the organization SSO admits people to: it
/// makes the person an Owner there, and its absence makes an Owner a Member — except the last
/// Owner, who stays (logged), since an organization without one cannot be administered.
pub async fn sync_owner(app: &AppState, user: &UserRow, who: &Identity) -> Result<(), Refusal> {
    let org = match app.sso.org {
        Some(org) => org,
        None => match app.store.first_org().await? {
            Some(org) => org,
            None => return Ok(()),
        },
    };
    let Some(membership) = app.store.membership(org, user.id).await? else {
        return Ok(());
    };
    let admin = who.roles.iter().any(|r| r == ROLE_ADMIN);
    let to = match (admin, membership.role.as_str()) {
        (true, role) if role != "owner" => "owner",
        (false, "owner") => "member",
        _ => return Ok(()),
    };
    match app.store.set_member_role(org, user.id, to).await {
        Ok(()) => {
            app.audit
                .record(
                    kind::MEMBER_ROLE_CHANGED,
                    Some(org),
                    SSO_ACTOR,
                    json!({"user_id": user.id, "email": user.email, "from": membership.role,
                           "to": to, "reason": format!("identity provider role {ROLE_ADMIN} {}", if admin { "granted" } else { "withdrawn" })}),
                )
                .await
                .map_err(ApiError::from)?;
            Ok(())
        }
        Err(StoreError::LastOwner) => {
            tracing::warn!(
                user = %user.id,
                org = %org,
                "the identity provider no longer grants {ROLE_ADMIN}, but this person is the organization's last owner: kept as owner (make someone else an owner, and they are demoted at their next sign-in)"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
