//! Why a sign-in through the external identity provider was refused: the application roles it
//! checks, the page and audit reason of each refusal.

use axum::http::StatusCode;
use axum::response::Response;
use keyward_store::StoreError;
use serde_json::json;

use super::html::{error_page, notice_with_link};
use crate::audit::kind;
use crate::error::ApiError;
use crate::state::AppState;

/// The application role that lets a person sign in.
pub const ROLE_MEMBER: &str = "member";
/// The application role that grants the admin console (the organization's Owner role).
pub const ROLE_ADMIN: &str = "factory-admin";

/// Why a sign-in through the provider was refused; each variant is one page and one audit
/// reason.
#[derive(Debug)]
pub enum Refusal {
    /// The callback's state does not match this browser's, or no sign-in is pending.
    State(&'static str),
    /// The provider answered with an error (the person cancelled, …).
    Provider(String),
    /// The code, ID token, signature or assertion did not verify.
    Verification(String),
    /// Verified, but neither `member` nor `factory-admin`.
    NotAssigned {
        email: String,
    },
    NoEmail,
    /// First sign-in with an address the provider does not vouch for (see the `links` module).
    UnverifiedEmail {
        email: String,
    },
    /// The address's account is linked to another identity at this provider.
    LinkedToAnother {
        email: String,
    },
    Other(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Other(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Other(e.into())
    }
}

/// The 403 message for a person with neither role (the wording of the SSO guide's
/// troubleshooting: the user must be assigned to the application in the identity provider).
pub fn not_assigned_message(email: &str) -> String {
    format!(
        "{email} signed in, but is not assigned to this application: ask your identity provider's administrator to assign you the `{ROLE_MEMBER}` role (or `{ROLE_ADMIN}` for the admin console)."
    )
}

/// The 403 message for a first sign-in whose address the provider does not vouch for.
pub fn unverified_message(email: &str) -> String {
    format!(
        "The identity provider does not vouch for your address {email} (its email_verified claim is not true), so it cannot be matched to a Keyward account: ask the provider's administrator to verify the address (for Entra ID, release the xms_edov optional claim)."
    )
}

/// The 403 message for an address whose account belongs to another identity at the provider.
pub fn linked_to_another_message(email: &str) -> String {
    format!(
        "The Keyward account of {email} is linked to a different identity at this identity provider, so this one cannot sign in to it: ask an administrator of this Keyward server."
    )
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::State(_) => "state",
            Refusal::Provider(_) => "provider_error",
            Refusal::Verification(_) => "verification",
            Refusal::NotAssigned { .. } => "not_assigned",
            Refusal::NoEmail => "no_email",
            Refusal::UnverifiedEmail { .. } => "email_unverified",
            Refusal::LinkedToAnother { .. } => "linked_to_another_identity",
            Refusal::Other(_) => "server",
        }
    }

    /// The refusal page; `retry` is where starting again goes.
    pub fn page(self, retry: &str) -> Response {
        let (status, text) = match self {
            Refusal::State(why) => (StatusCode::BAD_REQUEST, why.to_owned()),
            Refusal::Provider(m) => (
                StatusCode::FORBIDDEN,
                format!("The identity provider did not sign you in: {m}"),
            ),
            Refusal::Verification(m) => (
                StatusCode::FORBIDDEN,
                format!("The identity provider's answer was refused: {m}"),
            ),
            Refusal::NotAssigned { email } => {
                (StatusCode::FORBIDDEN, not_assigned_message(&email))
            }
            Refusal::NoEmail => (
                StatusCode::FORBIDDEN,
                "The identity provider sent no email address for you: ask its administrator to release the email claim (or attribute) to this application.".to_owned(),
            ),
            Refusal::UnverifiedEmail { email } => (
                StatusCode::FORBIDDEN,
                unverified_message(&email),
            ),
            Refusal::LinkedToAnother { email } => (
                StatusCode::FORBIDDEN,
                linked_to_another_message(&email),
            ),
            Refusal::Other(e) => return error_page(e),
        };
        notice_with_link(status, "Sign-in refused", &text, retry, "Sign in again")
    }
}

/// Records a refusal in the audit log (never the code, token or assertion).
pub async fn audit_refusal(app: &AppState, method: &str, refusal: &Refusal) {
    let mut detail =
        json!({"method": method, "provider": app.config.auth.name(), "reason": refusal.reason()});
    if let Refusal::NotAssigned { email }
    | Refusal::UnverifiedEmail { email }
    | Refusal::LinkedToAnother { email } = refusal
    {
        detail["email"] = json!(email);
    }
    // Filed under the organization SSO admits people to, whose administrators own the
    // identity provider's assignments; other tenants do not see it.
    let org = match app.sso.org {
        Some(org) => Some(org),
        None => app.store.first_org().await.ok().flatten(),
    };
    if let Err(e) = app
        .audit
        .record(kind::LOGIN_FAILED, org, "anonymous", detail)
        .await
    {
        tracing::error!(error = %e, "recording a refused sign-in failed");
    }
}
