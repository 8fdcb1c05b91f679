//! Browser sign-in through the external identity provider (SPEC §7), and that provider's
//! access tokens as API bearer tokens.
//!
//! The settings and relying parties ([`Sso`]), and what OIDC ([`super::oidc`]) and SAML
//! ([`super::saml`]) sign-ins share: both end in [`admit`] — roles from the provider's claims
//! (`member` may sign in, `factory-admin` administers), the person provisioned into the
//! organization on first sign-in — and [`land`], a console session as for the `local` provider.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::OrgId;
use keyward_sso::{Identity, Oidc, OidcSettings};
use keyward_store::{StoreError, UserRow};
use serde_json::json;

use super::pages::{escape, page, signed_in};
use super::provider::AuthProvider;
use super::{links, local, saml};
use crate::audit::kind;
use crate::clock;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The variables this module (and [`super::saml`]) reads, besides the provider's own.
pub const ENV_VARS: &[&str] = &[
    "KEYWARD_SSO_CA_FILE",
    "KEYWARD_SSO_ORG",
    "SAML_IDP_METADATA_FILE",
    "SAML_IDP_ENTITY_ID",
    "SAML_IDP_SSO_URL",
    "SAML_IDP_CERT_FILE",
    "SAML_SP_ENTITY_ID",
];

/// The application role that lets a person sign in.
pub const ROLE_MEMBER: &str = "member";
/// The application role that grants the admin console (the organization's Owner role).
pub const ROLE_ADMIN: &str = "factory-admin";
/// How long a sign-in may stay at the identity provider.
pub const PENDING_TTL: i64 = 600;
/// Audit event of a person created by their first SSO sign-in.
const USER_PROVISIONED: &str = "auth.user_provisioned";

/// SSO settings from the environment, checked at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SsoSettings {
    /// `KEYWARD_SSO_CA_FILE`: PEM certificates trusted (besides the system's) for HTTPS to the
    /// identity provider — for a provider behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// `KEYWARD_SSO_ORG`: the organization people join on first sign-in (default: the first
    /// organization, the one created at setup).
    pub org: Option<OrgId>,
    pub saml: Option<saml::SamlSettings>,
}

impl SsoSettings {
    /// Reads and checks the variables; the error names the variable at fault.
    pub fn from_env(env: &BTreeMap<String, String>, auth: &AuthProvider) -> Result<Self, String> {
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let org = match get("KEYWARD_SSO_ORG") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| {
                format!(
                    "KEYWARD_SSO_ORG: {v:?} is not an organization UUID (see `keyward org list`)"
                )
            })?),
        };
        Ok(SsoSettings {
            ca_file: get("KEYWARD_SSO_CA_FILE").map(PathBuf::from),
            org,
            saml: saml::SamlSettings::from_env(&get, auth)?,
        })
    }
}

/// The running relying parties; in [`AppState`].
#[derive(Default)]
pub struct Sso {
    pub oidc: Option<Oidc>,
    pub saml: Option<saml::Saml>,
    pub org: Option<OrgId>,
}

impl Sso {
    /// The relying parties for the configured provider. Reads the CA and SAML files; contacts
    /// nobody (discovery happens at first use).
    pub fn build(config: &ServerConfig) -> Result<Self, String> {
        let roots = match &config.sso.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("KEYWARD_SSO_CA_FILE: cannot read {}: {e}", path.display())
                })?;
                keyward_sso::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    format!(
                        "KEYWARD_SSO_CA_FILE: {} is not a PEM certificate bundle: {e}",
                        path.display()
                    )
                })?
            }
        };
        let public = config
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        let oidc = match oidc_settings(&config.auth, public) {
            None => None,
            Some(settings) => Some(Oidc::new(settings, &roots).map_err(|e| e.to_string())?),
        };
        let saml = match &config.sso.saml {
            None => None,
            Some(s) => Some(saml::Saml::build(s, &config.auth, public)?),
        };
        Ok(Sso {
            oidc,
            saml,
            org: config.sso.org,
        })
    }
}

/// The OpenID Connect settings of each external provider: its issuer as its tokens name it,
/// the API audience its access tokens carry (as `GET /auth/parameters` tells the CLI).
fn oidc_settings(auth: &AuthProvider, public: &str) -> Option<OidcSettings> {
    let base = |issuer: String, client_id: &str, secret: Option<String>, aud: Option<String>| {
        OidcSettings {
            issuer,
            client_id: client_id.to_owned(),
            client_secret: secret,
            redirect_uri: format!("{public}/auth/{}/callback", auth.name()),
            scopes: vec!["email".into(), "profile".into()],
            api_audience: aud,
            role_clients: vec![client_id.to_owned()],
        }
    };
    Some(match auth {
        AuthProvider::Local => return None,
        AuthProvider::EntraId(p) => base(
            format!("https://login.microsoftonline.com/{}/v2.0", p.tenant_id),
            &p.client_id,
            Some(p.client_secret.expose().to_owned()),
            Some(p.client_id.clone()),
        ),
        AuthProvider::Okta(p) => base(
            format!("https://{}/oauth2/{}", p.site, p.authorization_server),
            &p.client_id,
            Some(p.client_secret.expose().to_owned()),
            Some(p.audience.clone()),
        ),
        AuthProvider::Auth0(p) => base(
            format!("https://{}/", p.domain),
            &p.client_id,
            Some(p.client_secret.expose().to_owned()),
            p.audience.clone(),
        ),
        AuthProvider::Keycloak(p) => {
            let mut s = base(
                format!(
                    "https://{}{}/realms/{}",
                    p.site,
                    p.base_url.as_deref().unwrap_or(""),
                    p.realm
                ),
                &p.client_id,
                Some(p.client_secret.expose().to_owned()),
                Some(p.audience.clone()),
            );
            s.role_clients.extend(p.device_client_id.clone());
            s
        }
        // AuthKit clients sign in with PKCE and no secret.
        AuthProvider::Workos(p) => base(
            format!("https://{}", p.authkit_domain),
            &p.client_id,
            None,
            Some(p.client_id.clone()),
        ),
    })
}

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
    /// First sign-in with an address the provider does not vouch for (see [`super::links`]).
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
        let again = format!("<p><a href=\"{}\">Sign in again</a></p>", escape(retry));
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
            Refusal::Other(e) => return super::pages::error_page(e),
        };
        page(
            status,
            "Sign-in refused",
            &format!("<p class=\"error\">{}</p>{again}", escape(&text)),
        )
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
        tracing::error!(error = ?e, "recording a refused sign-in failed");
    }
}

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
                USER_PROVISIONED,
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

/// A cookie attribute string: `Secure` when people reach this server over HTTPS.
pub fn secure(app: &AppState) -> &'static str {
    if app
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        "; Secure"
    } else {
        ""
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

pub fn add_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// `GET /auth/session`: whether and as whom this browser is signed in (for the console and
/// scripts). Always 200: not being signed in is an answer here, not an authentication failure.
pub async fn session(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = match local::session_user(&app, &headers, clock::now()).await? {
        None => json!({
            "signed_in": false,
            "provider": app.config.auth.name(),
            "login": login_path(&app),
        }),
        Some((user, _)) => {
            let orgs = app.store.memberships(user.id).await?;
            json!({
                "signed_in": true,
                "user": {"id": user.id, "email": user.email},
                "provider": app.config.auth.name(),
                "organizations": orgs.iter().map(|m| json!({"uuid": m.org.id, "name": m.org.name, "role": m.role})).collect::<Vec<_>>(),
            })
        }
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
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
pub async fn logout_location(app: &AppState) -> String {
    let public = app.config.public_url.as_deref().unwrap_or("");
    if let Some(oidc) = &app.sso.oidc {
        match oidc
            .end_session_url(&format!("{}/", public.trim_end_matches('/')), clock::now())
            .await
        {
            Ok(Some(url)) => return url,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "no end-session URL; signing out of Keyward only"),
        }
    }
    login_path(app)
}

/// The person an access token of the external provider names (API bearer authentication):
/// verified against the provider's issuer, API audience and keys, then admitted like a browser
/// sign-in (roles checked, provisioned on first use).
#[tracing::instrument(skip_all)]
pub async fn bearer_person(app: &AppState, token: &str) -> Result<UserRow, ApiError> {
    let oidc = app.sso.oidc.as_ref().ok_or_else(|| ApiError::Unauthenticated {
        code: "invalid_token",
        message: format!(
            "AUTH_PROVIDER={} issues no access tokens this server accepts; use a personal access token",
            app.config.auth.name()
        ),
    })?;
    let now = clock::now();
    let who =
        oidc.verify_access_token(token, now)
            .await
            .map_err(|e| ApiError::Unauthenticated {
                code: "invalid_token",
                message: e.to_string(),
            })?;
    match admit(app, &who, "bearer", now).await {
        Ok(user) => Ok(user),
        Err(refusal) => {
            audit_refusal(app, "bearer", &refusal).await;
            Err(match refusal {
                Refusal::NotAssigned { email } => ApiError::Forbidden {
                    code: "not_assigned",
                    message: not_assigned_message(&email),
                },
                Refusal::NoEmail => ApiError::Forbidden {
                    code: "no_email",
                    message: "the access token carries no email address: ask the identity provider's administrator to add the email claim to access tokens for this API".into(),
                },
                Refusal::UnverifiedEmail { email } => ApiError::Forbidden {
                    code: "email_unverified",
                    message: unverified_message(&email),
                },
                Refusal::LinkedToAnother { email } => ApiError::Forbidden {
                    code: "linked_to_another_identity",
                    message: linked_to_another_message(&email),
                },
                Refusal::Other(e) => e,
                other => ApiError::internal(format!("{other:?}")),
            })
        }
    }
}
