//! Who signs people in: `AUTH_PROVIDER` and each provider's own environment variables, exactly
//! as the CrewAI Factory documentation lists them (seed `002_*`). [`AuthProvider::from_env`]
//! validates them once at startup; a missing required variable stops the server with a message
//! that names it.
//!
//! These types are what the browser login (OIDC/SAML) builds on: every provider's settings are
//! here, typed, with secrets wrapped so they never print.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use thiserror::Error;

/// Every variable this module reads; the CLI collects exactly these from the environment.
pub const ENV_VARS: &[&str] = &[
    "AUTH_PROVIDER",
    "ENTRA_ID_CLIENT_ID",
    "ENTRA_ID_CLIENT_SECRET",
    "ENTRA_ID_TENANT_ID",
    "ENTRA_ID_DEVICE_AUTHORIZATION_CLIENT_ID",
    "ENTRA_ID_CUSTOM_OPENID_SCOPE",
    "OKTA_CLIENT_ID",
    "OKTA_CLIENT_SECRET",
    "OKTA_SITE",
    "OKTA_AUTHORIZATION_SERVER",
    "OKTA_AUDIENCE",
    "OKTA_DEVICE_AUTHORIZATION_CLIENT_ID",
    "AUTH0_CLIENT_ID",
    "AUTH0_CLIENT_SECRET",
    "AUTH0_DOMAIN",
    "AUTH0_DEVICE_AUTHORIZATION_CLIENT_ID",
    "AUTH0_AUDIENCE",
    "KEYCLOAK_CLIENT_ID",
    "KEYCLOAK_CLIENT_SECRET",
    "KEYCLOAK_SITE",
    "KEYCLOAK_REALM",
    "KEYCLOAK_AUDIENCE",
    "KEYCLOAK_BASE_URL",
    "KEYCLOAK_DEVICE_AUTHORIZATION_CLIENT_ID",
    "WORKOS_CLIENT_ID",
    "WORKOS_AUTHKIT_DOMAIN",
];

/// The client id the CLI presents to Keyward's own device flow (`local`).
pub const LOCAL_CLIENT_ID: &str = "keyward-cli";
/// The audience of Keyward's own access tokens (`local`).
pub const LOCAL_AUDIENCE: &str = "keyward-api";

/// A value that must not reach logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Microsoft Entra ID (OIDC or SAML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraId {
    pub client_id: String,
    pub client_secret: Secret,
    pub tenant_id: String,
    /// `ENTRA_ID_DEVICE_AUTHORIZATION_CLIENT_ID` (CLI only).
    pub device_client_id: Option<String>,
    /// `ENTRA_ID_CUSTOM_OPENID_SCOPE`, e.g. `api://crewai-cli/read` (CLI only).
    pub custom_openid_scope: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Okta {
    pub client_id: String,
    pub client_secret: Secret,
    /// `OKTA_SITE` as given, e.g. `https://your-domain.okta.com`.
    pub site: String,
    /// The authorization server's name, e.g. `default`.
    pub authorization_server: String,
    pub audience: String,
    pub device_client_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth0 {
    pub client_id: String,
    pub client_secret: Secret,
    /// The tenant domain, e.g. `your-tenant.auth0.com`.
    pub domain: String,
    /// `AUTH0_DEVICE_AUTHORIZATION_CLIENT_ID`: the Native application for the CLI.
    pub device_client_id: Option<String>,
    /// `AUTH0_AUDIENCE`: the API identifier the CLI's tokens are for.
    pub audience: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keycloak {
    pub client_id: String,
    pub client_secret: Secret,
    /// The server URL, e.g. `https://keycloak.example.com`.
    pub site: String,
    pub realm: String,
    pub audience: String,
    /// A base path for pre-v17 installations, e.g. `/auth`.
    pub base_url: Option<String>,
    pub device_client_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workos {
    pub client_id: String,
    /// The AuthKit domain, e.g. `your-domain.authkit.com`.
    pub authkit_domain: String,
}

/// The configured identity provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthProvider {
    EntraId(EntraId),
    Okta(Okta),
    Auth0(Auth0),
    Keycloak(Keycloak),
    Workos(Workos),
    /// Keyward is the identity provider: passwords, optional TOTP, the device flow.
    Local,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error(
        "AUTH_PROVIDER: {0:?} is not a provider; use one of entra_id, okta, auth0, keycloak, workos, local"
    )]
    Unknown(String),
    #[error(
        "AUTH_PROVIDER={provider} needs {}: set {} (see 'People and SSO' in the README)",
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" }
    )]
    Missing {
        provider: &'static str,
        missing: Vec<&'static str>,
    },
    #[error("{var}: {value:?} {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Reads variables, remembering the required ones that are absent or blank.
struct Reader<'a> {
    env: &'a BTreeMap<String, String>,
    missing: Vec<&'static str>,
}

impl Reader<'_> {
    fn optional(&self, var: &'static str) -> Option<String> {
        self.env
            .get(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, var: &'static str) -> String {
        self.optional(var).unwrap_or_else(|| {
            self.missing.push(var);
            String::new()
        })
    }

    fn finish<T>(self, provider: &'static str, value: T) -> Result<T, ProviderError> {
        if self.missing.is_empty() {
            Ok(value)
        } else {
            Err(ProviderError::Missing {
                provider,
                missing: self.missing,
            })
        }
    }
}

/// `https://host[/path]` or a bare `host[/path]`, without a trailing slash.
fn site(var: &'static str, value: String) -> Result<String, ProviderError> {
    let bare = value
        .strip_prefix("https://")
        .unwrap_or(&value)
        .trim_end_matches('/');
    if value.starts_with("http://") || bare.is_empty() || bare.contains(char::is_whitespace) {
        return Err(ProviderError::Invalid {
            var,
            value,
            reason: "must be an https:// URL or a host name",
        });
    }
    Ok(bare.to_owned())
}

impl AuthProvider {
    /// Validates the provider settings in `env` (variable name → value); unset means `local`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        let mut r = Reader {
            env,
            missing: Vec::new(),
        };
        let name = r
            .optional("AUTH_PROVIDER")
            .unwrap_or_else(|| "local".into());
        match name.as_str() {
            "local" => Ok(AuthProvider::Local),
            "entra_id" => {
                let p = EntraId {
                    client_id: r.required("ENTRA_ID_CLIENT_ID"),
                    client_secret: Secret(r.required("ENTRA_ID_CLIENT_SECRET")),
                    tenant_id: r.required("ENTRA_ID_TENANT_ID"),
                    device_client_id: r.optional("ENTRA_ID_DEVICE_AUTHORIZATION_CLIENT_ID"),
                    custom_openid_scope: r.optional("ENTRA_ID_CUSTOM_OPENID_SCOPE"),
                };
                r.finish("entra_id", AuthProvider::EntraId(p))
            }
            "okta" => {
                let site_value = r.required("OKTA_SITE");
                let p = Okta {
                    client_id: r.required("OKTA_CLIENT_ID"),
                    client_secret: Secret(r.required("OKTA_CLIENT_SECRET")),
                    site: String::new(),
                    authorization_server: r.required("OKTA_AUTHORIZATION_SERVER"),
                    audience: r.required("OKTA_AUDIENCE"),
                    device_client_id: r.optional("OKTA_DEVICE_AUTHORIZATION_CLIENT_ID"),
                };
                let p = r.finish("okta", p)?;
                Ok(AuthProvider::Okta(Okta {
                    site: site("OKTA_SITE", site_value)?,
                    ..p
                }))
            }
            "auth0" => {
                let p = Auth0 {
                    client_id: r.required("AUTH0_CLIENT_ID"),
                    client_secret: Secret(r.required("AUTH0_CLIENT_SECRET")),
                    domain: r.required("AUTH0_DOMAIN"),
                    device_client_id: r.optional("AUTH0_DEVICE_AUTHORIZATION_CLIENT_ID"),
                    audience: r.optional("AUTH0_AUDIENCE"),
                };
                let p = r.finish("auth0", p)?;
                Ok(AuthProvider::Auth0(Auth0 {
                    domain: site("AUTH0_DOMAIN", p.domain.clone())?,
                    ..p
                }))
            }
            "keycloak" => {
                let p = Keycloak {
                    client_id: r.required("KEYCLOAK_CLIENT_ID"),
                    client_secret: Secret(r.required("KEYCLOAK_CLIENT_SECRET")),
                    site: r.required("KEYCLOAK_SITE"),
                    realm: r.required("KEYCLOAK_REALM"),
                    audience: r.required("KEYCLOAK_AUDIENCE"),
                    base_url: r.optional("KEYCLOAK_BASE_URL"),
                    device_client_id: r.optional("KEYCLOAK_DEVICE_AUTHORIZATION_CLIENT_ID"),
                };
                let p = r.finish("keycloak", p)?;
                if let Some(base) = &p.base_url
                    && !base.starts_with('/')
                {
                    return Err(ProviderError::Invalid {
                        var: "KEYCLOAK_BASE_URL",
                        value: base.clone(),
                        reason: "must be a path such as /auth",
                    });
                }
                Ok(AuthProvider::Keycloak(Keycloak {
                    site: site("KEYCLOAK_SITE", p.site.clone())?,
                    ..p
                }))
            }
            "workos" => {
                let p = Workos {
                    client_id: r.required("WORKOS_CLIENT_ID"),
                    authkit_domain: r.required("WORKOS_AUTHKIT_DOMAIN"),
                };
                let p = r.finish("workos", p)?;
                Ok(AuthProvider::Workos(Workos {
                    authkit_domain: site("WORKOS_AUTHKIT_DOMAIN", p.authkit_domain.clone())?,
                    ..p
                }))
            }
            _ => Err(ProviderError::Unknown(name)),
        }
    }

    /// The name as in `AUTH_PROVIDER`.
    pub fn name(&self) -> &'static str {
        match self {
            AuthProvider::EntraId(_) => "entra_id",
            AuthProvider::Okta(_) => "okta",
            AuthProvider::Auth0(_) => "auth0",
            AuthProvider::Keycloak(_) => "keycloak",
            AuthProvider::Workos(_) => "workos",
            AuthProvider::Local => "local",
        }
    }

    /// The body of `GET /auth/parameters`, in the shape `crewai enterprise configure` accepts.
    /// `local_domain` is this server's host (and port), for the `local` provider. An error names
    /// the variable that CLI login still needs.
    pub fn cli_parameters(&self, local_domain: Option<&str>) -> Result<Value, &'static str> {
        let body = |provider: &str, audience: &str, domain: &str, client: &str, extra: Value| {
            json!({
                "provider": provider,
                "audience": audience,
                "domain": domain,
                "device_authorization_client_id": client,
                "extra": extra,
            })
        };
        Ok(match self {
            AuthProvider::EntraId(p) => body(
                "entra_id",
                // Entra v2 access tokens (accessTokenAcceptedVersion = 2) carry the API app's
                // client id as `aud`.
                &p.client_id,
                &p.tenant_id,
                p.device_client_id
                    .as_deref()
                    .ok_or("ENTRA_ID_DEVICE_AUTHORIZATION_CLIENT_ID")?,
                json!({"scope": p.custom_openid_scope.as_deref().ok_or("ENTRA_ID_CUSTOM_OPENID_SCOPE")?}),
            ),
            AuthProvider::Okta(p) => body(
                "okta",
                &p.audience,
                &p.site,
                p.device_client_id
                    .as_deref()
                    .ok_or("OKTA_DEVICE_AUTHORIZATION_CLIENT_ID")?,
                json!({
                    "authorization_server_name": p.authorization_server,
                    "using_org_auth_server": false,
                }),
            ),
            AuthProvider::Auth0(p) => body(
                "auth0",
                p.audience.as_deref().ok_or("AUTH0_AUDIENCE")?,
                &p.domain,
                p.device_client_id
                    .as_deref()
                    .ok_or("AUTH0_DEVICE_AUTHORIZATION_CLIENT_ID")?,
                json!({}),
            ),
            AuthProvider::Keycloak(p) => body(
                "keycloak",
                &p.audience,
                &format!("{}{}", p.site, p.base_url.as_deref().unwrap_or("")),
                p.device_client_id
                    .as_deref()
                    .ok_or("KEYCLOAK_DEVICE_AUTHORIZATION_CLIENT_ID")?,
                json!({"realm": p.realm}),
            ),
            AuthProvider::Workos(p) => body(
                "workos",
                &p.client_id,
                &p.authkit_domain,
                &p.client_id,
                json!({}),
            ),
            // Keyward serves the WorkOS layout itself: /oauth2/device_authorization, /oauth2/token
            // and /oauth2/jwks under https://<domain>, tokens issued by https://<domain>.
            AuthProvider::Local => body(
                "workos",
                LOCAL_AUDIENCE,
                local_domain.ok_or("KEYWARD_PUBLIC_URL")?,
                LOCAL_CLIENT_ID,
                json!({}),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unset_means_local() {
        assert_eq!(
            AuthProvider::from_env(&BTreeMap::new()),
            Ok(AuthProvider::Local)
        );
    }

    #[test]
    fn missing_variables_are_all_named() {
        let err = AuthProvider::from_env(&env(&[
            ("AUTH_PROVIDER", "okta"),
            ("OKTA_CLIENT_ID", "x"),
            ("OKTA_SITE", " "),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "AUTH_PROVIDER=okta needs OKTA_SITE, OKTA_CLIENT_SECRET, OKTA_AUTHORIZATION_SERVER, OKTA_AUDIENCE: set them (see 'People and SSO' in the README)"
        );
        assert!(matches!(
            AuthProvider::from_env(&env(&[("AUTH_PROVIDER", "ldap")])),
            Err(ProviderError::Unknown(_))
        ));
    }

    #[test]
    fn parameters_take_the_crewai_shape_per_provider() {
        let okta = AuthProvider::from_env(&env(&[
            ("AUTH_PROVIDER", "okta"),
            ("OKTA_CLIENT_ID", "web"),
            ("OKTA_CLIENT_SECRET", "s"),
            ("OKTA_SITE", "https://acme.okta.com/"),
            ("OKTA_AUTHORIZATION_SERVER", "default"),
            ("OKTA_AUDIENCE", "api://default"),
            ("OKTA_DEVICE_AUTHORIZATION_CLIENT_ID", "native"),
        ]))
        .unwrap();
        assert_eq!(
            okta.cli_parameters(None).unwrap(),
            json!({"provider": "okta", "audience": "api://default", "domain": "acme.okta.com",
                   "device_authorization_client_id": "native",
                   "extra": {"authorization_server_name": "default", "using_org_auth_server": false}})
        );
        let keycloak = AuthProvider::from_env(&env(&[
            ("AUTH_PROVIDER", "keycloak"),
            ("KEYCLOAK_CLIENT_ID", "web"),
            ("KEYCLOAK_CLIENT_SECRET", "s"),
            ("KEYCLOAK_SITE", "https://kc.example.com"),
            ("KEYCLOAK_REALM", "acme"),
            ("KEYCLOAK_AUDIENCE", "account"),
            ("KEYCLOAK_BASE_URL", "/auth"),
        ]))
        .unwrap();
        assert_eq!(
            keycloak.cli_parameters(None),
            Err("KEYCLOAK_DEVICE_AUTHORIZATION_CLIENT_ID")
        );
        assert_eq!(
            AuthProvider::Local
                .cli_parameters(Some("127.0.0.1:8443"))
                .unwrap()["domain"],
            "127.0.0.1:8443"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let p = AuthProvider::from_env(&env(&[
            ("AUTH_PROVIDER", "auth0"),
            ("AUTH0_CLIENT_ID", "c"),
            ("AUTH0_CLIENT_SECRET", "very-secret-value"),
            ("AUTH0_DOMAIN", "acme.auth0.com"),
        ]))
        .unwrap();
        assert!(!format!("{p:?}").contains("very-secret-value"));
    }
}
