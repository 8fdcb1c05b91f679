//! People (SPEC §7): sign-in through the external identity provider (OIDC, SAML), Keyward's own
//! `local` provider (passwords, TOTP, console sessions), the RFC 8628 device flow in the WorkOS
//! layout the CrewAI CLI speaks, people's access tokens, and the CrewAI-compatible endpoints
//! around them. The provider settings themselves are configuration (`crate::config`).

// Handlers: each serves its routes and imports no other handler module.
pub mod device;
pub mod invitations;
pub mod me;
pub mod oidc;
pub mod pages;
pub mod saml;

// What the handlers (and the auth layer) build on.
pub mod access;
pub mod admission;
pub mod bearer;
pub mod clients;
pub mod cookies;
pub mod csrf;
pub mod device_codes;
pub mod html;
pub mod links;
pub mod local;
pub mod next_path;
pub mod passwords;
pub mod pending_bounds;
pub mod refusal;
pub mod second_factor;
pub mod throttle;
pub mod totp;

use crate::config::provider::AuthProvider;
use crate::error::ApiError;
use crate::state::AppState;

/// This server's host (and port, and path) as the CrewAI CLI's `oauth2_domain`: the public URL
/// without its scheme.
pub fn local_domain(app: &AppState) -> Option<&str> {
    let url = app.config.public_url.as_deref()?;
    Some(
        url.strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or(url),
    )
}

/// The issuer of people's access tokens: `https://<domain>`, which is what the CLI expects
/// from a WorkOS-layout provider.
pub fn local_issuer(app: &AppState) -> Result<String, ApiError> {
    local_domain(app)
        .map(|d| format!("https://{d}"))
        .ok_or_else(|| ApiError::Unavailable {
            code: "public_url_not_configured",
            message: "this server does not know its public URL: set KEYWARD_PUBLIC_URL to the https:// address people reach it at".into(),
        })
}

/// The device flow and password sign-in exist only when Keyward is the identity provider.
pub fn require_local(app: &AppState) -> Result<(), ApiError> {
    match &app.config.auth {
        AuthProvider::Local => Ok(()),
        other => Err(ApiError::Forbidden {
            code: "local_provider_disabled",
            message: format!(
                "Keyward is not the identity provider here (AUTH_PROVIDER={}): sign in through that provider; `crewai enterprise configure <url>` or `keyward configure <url>` sets the CLI up for it",
                other.name()
            ),
        }),
    }
}
