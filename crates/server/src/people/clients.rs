//! The relying parties of the external identity provider (OIDC, SAML), built once at startup
//! from the configuration and kept in the application state.

use std::path::PathBuf;

use async_trait::async_trait;
use keyward_core::OrgId;
use keyward_saml::{IdpConfig, ReplayCache, ReplayCacheError, ServiceProvider, SpConfig};
use keyward_sso::{Oidc, OidcSettings};
use keyward_store::Store;
use time::OffsetDateTime;

use crate::config::ServerConfig;
use crate::config::provider::AuthProvider;
use crate::config::sso::{IdpSource, SamlSettings};

/// The running relying parties; in the application state.
#[derive(Default)]
pub struct Sso {
    pub oidc: Option<Oidc>,
    pub saml: Option<Saml>,
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
            Some(s) => Some(Saml::build(s, &config.auth, public)?),
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

/// The SAML service provider of this server.
pub struct Saml {
    pub sp: ServiceProvider,
}

impl Saml {
    /// Reads the IdP's metadata or certificate file and checks the whole configuration.
    pub fn build(s: &SamlSettings, auth: &AuthProvider, public: &str) -> Result<Self, String> {
        let read = |var: &str, path: &PathBuf| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("{var}: cannot read {}: {e}", path.display()))
        };
        let idp = match &s.idp {
            IdpSource::Metadata(path) => {
                IdpConfig::from_metadata(&read("SAML_IDP_METADATA_FILE", path)?)
                    .map_err(|e| format!("SAML_IDP_METADATA_FILE: {e}"))?
            }
            IdpSource::Explicit {
                entity_id,
                sso_url,
                cert_file,
            } => IdpConfig::new(entity_id, sso_url, &read("SAML_IDP_CERT_FILE", cert_file)?)
                .map_err(|e| format!("SAML_IDP_*: {e}"))?,
            IdpSource::EntraId { cert_file } => {
                let AuthProvider::EntraId(entra) = auth else {
                    return Err("SAML_IDP_CERT_FILE alone needs AUTH_PROVIDER=entra_id".into());
                };
                IdpConfig::entra_id(&entra.tenant_id, &read("SAML_IDP_CERT_FILE", cert_file)?)
                    .map_err(|e| format!("SAML_IDP_CERT_FILE: {e}"))?
            }
        };
        let entity_id = s
            .sp_entity_id
            .clone()
            .unwrap_or_else(|| format!("{public}/auth/saml/metadata"));
        let config = SpConfig::new(&entity_id, &format!("{public}/auth/saml/acs"), idp)
            .map_err(|e| format!("SAML (SAML_SP_ENTITY_ID / KEYWARD_PUBLIC_URL): {e}"))?;
        let sp = ServiceProvider::new(config).map_err(|e| format!("SAML: {e}"))?;
        Ok(Saml { sp })
    }
}

/// The replay cache in the database: insert-if-absent, shared by every replica.
pub struct DbReplay<'a>(pub &'a dyn Store);

#[async_trait]
impl ReplayCache for DbReplay<'_> {
    async fn first_use(
        &self,
        assertion_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, ReplayCacheError> {
        self.0
            .saml_seen(
                assertion_id,
                expires_at.unix_timestamp(),
                now.unix_timestamp(),
            )
            .await
            .map(|seen| !seen)
            .map_err(|e| ReplayCacheError(format!("the replay cache in the database failed: {e}")))
    }
}
