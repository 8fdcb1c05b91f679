//! SAML 2.0 browser sign-in (SP-initiated; the AuthnRequest by HTTP-Redirect, the response by
//! HTTP-POST) for Entra ID and any SAML IdP, with the strict verification of `keyward-saml`.
//!
//! `GET /auth/saml/login` sends the browser to the IdP with a fresh AuthnRequest; its ID (the
//! only InResponseTo accepted) is kept in a database row found through a random RelayState that
//! the browser also holds in an HttpOnly cookie. `POST /auth/saml/acs` verifies the response
//! against that row and records the assertion in the database replay cache, so a response
//! posted again — to any replica — is refused. `GET /auth/saml/metadata` is this SP's metadata
//! to upload to the IdP.

use std::path::PathBuf;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_saml::{
    IdpConfig, PendingRequest, ReplayCache, ReplayCacheError, ServiceProvider, SpConfig,
};
use keyward_sso::Identity;
use keyward_store::{SsoPendingRow, Store, secret};
use time::OffsetDateTime;

use super::pages::{page, redirect};
use super::provider::AuthProvider;
use super::sso::{self, Refusal};
use crate::clock;
use crate::state::AppState;

/// The cookie holding the RelayState of the SAML sign-in this browser started.
const RELAY_COOKIE: &str = "keyward_saml_relay";

/// Where the IdP's settings come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdpSource {
    /// `SAML_IDP_METADATA_FILE`: the IdP's metadata XML (entity id, SSO URL, certificates).
    Metadata(PathBuf),
    /// `SAML_IDP_ENTITY_ID` + `SAML_IDP_SSO_URL` + `SAML_IDP_CERT_FILE`.
    Explicit {
        entity_id: String,
        sso_url: String,
        cert_file: PathBuf,
    },
    /// `AUTH_PROVIDER=entra_id` with only `SAML_IDP_CERT_FILE`: the tenant's entity id and SSO
    /// URL follow from `ENTRA_ID_TENANT_ID`.
    EntraId { cert_file: PathBuf },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamlSettings {
    pub idp: IdpSource,
    /// `SAML_SP_ENTITY_ID`: this SP's entity id (the IdP app's Identifier); default
    /// `<KEYWARD_PUBLIC_URL>/auth/saml/metadata`.
    pub sp_entity_id: Option<String>,
}

impl SamlSettings {
    /// `None` when no `SAML_IDP_*` variable is set (SAML off); an error names what is missing.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        auth: &AuthProvider,
    ) -> Result<Option<Self>, String> {
        let metadata = get("SAML_IDP_METADATA_FILE");
        let entity_id = get("SAML_IDP_ENTITY_ID");
        let sso_url = get("SAML_IDP_SSO_URL");
        let cert_file = get("SAML_IDP_CERT_FILE");
        let sp_entity_id = get("SAML_SP_ENTITY_ID");
        let idp = match (metadata, entity_id, sso_url, cert_file) {
            (None, None, None, None) => return Ok(None),
            (Some(file), None, None, None) => IdpSource::Metadata(file.into()),
            (Some(_), ..) => {
                return Err("SAML_IDP_METADATA_FILE already names the IdP's entity id, SSO URL and certificates: unset SAML_IDP_ENTITY_ID, SAML_IDP_SSO_URL and SAML_IDP_CERT_FILE".into());
            }
            (None, None, None, Some(cert)) if matches!(auth, AuthProvider::EntraId(_)) => {
                IdpSource::EntraId {
                    cert_file: cert.into(),
                }
            }
            (None, Some(entity_id), Some(sso_url), Some(cert)) => IdpSource::Explicit {
                entity_id,
                sso_url,
                cert_file: cert.into(),
            },
            (None, entity_id, sso_url, cert) => {
                let missing: Vec<&str> = [
                    ("SAML_IDP_ENTITY_ID", entity_id.is_none()),
                    ("SAML_IDP_SSO_URL", sso_url.is_none()),
                    ("SAML_IDP_CERT_FILE", cert.is_none()),
                ]
                .iter()
                .filter_map(|(name, absent)| absent.then_some(*name))
                .collect();
                return Err(format!(
                    "SAML sign-in needs {} (or SAML_IDP_METADATA_FILE alone): set {} (see 'SAML' in the README)",
                    missing.join(", "),
                    if missing.len() == 1 { "it" } else { "them" }
                ));
            }
        };
        Ok(Some(SamlSettings { idp, sp_entity_id }))
    }
}

pub struct Saml {
    sp: ServiceProvider,
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
struct DbReplay<'a>(&'a dyn Store);

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

fn odt(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Sign in",
        "<p class=\"error\">SAML sign-in is not configured on this server (SAML_IDP_METADATA_FILE, or SAML_IDP_ENTITY_ID + SAML_IDP_SSO_URL + SAML_IDP_CERT_FILE).</p>",
    )
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /auth/saml/login`: a new AuthnRequest, by HTTP-Redirect to the IdP.
pub async fn login(
    State(app): State<AppState>,
    client: crate::client_addr::ClientAddr,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(saml) = app.sso.saml.as_ref() else {
        return not_configured();
    };
    let now = clock::now();
    if let Err(refused) = super::pending_bounds::admit(&app, &client, q.next.as_deref(), now).await
    {
        return refused;
    }
    // 43 URL-safe characters: within RelayState's 80 bytes.
    let Some(relay) = secret::generate_token("") else {
        return super::pages::error_page(crate::error::ApiError::internal("system RNG failed"));
    };
    let request = match saml.sp.authn_request(&relay, odt(now)) {
        Ok(r) => r,
        Err(e) => return super::pages::error_page(crate::error::ApiError::internal(e)),
    };
    let row = SsoPendingRow {
        state_hash: secret::hash_token(&relay),
        protocol: "saml".into(),
        nonce: request.pending.id.clone(),
        pkce_verifier: String::new(),
        next_path: sso::safe_next(q.next.as_deref()),
        created_at: request.pending.issued_at,
        expires_at: now + sso::PENDING_TTL,
    };
    if let Err(e) = app.store.create_sso_pending(&row).await {
        return super::pages::error_page(e.into());
    }
    let mut response = redirect(&request.redirect_url);
    // SameSite=None: the IdP's answer is a cross-site POST, which a Lax cookie would not
    // accompany. HttpOnly keeps scripts out; the row it points to holds nothing secret.
    let same_site = if sso::secure(&app).is_empty() {
        "Lax"
    } else {
        "None"
    };
    sso::add_cookie(
        &mut response,
        &format!(
            "{RELAY_COOKIE}={relay}; Path=/auth/saml; HttpOnly; SameSite={same_site}; Max-Age={}{}",
            sso::PENDING_TTL,
            sso::secure(&app)
        ),
    );
    response
}

/// The body limit of the assertion consumer: the SAML crate's 512 KiB of base64, form-encoded
/// (`+`, `/` and `=` become three characters each), with room for RelayState.
pub const ACS_BODY_LIMIT: usize = 640 * 1024;

/// `POST /auth/saml/acs`: the IdP's signed response.
pub async fn acs(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if app.sso.saml.is_none() {
        return not_configured();
    }
    match finish(&app, &headers, &body).await {
        Ok(response) => response,
        Err(refusal) => {
            sso::audit_refusal(&app, "saml", &refusal).await;
            refusal.page("/auth/saml/login")
        }
    }
}

async fn finish(app: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let saml = app
        .sso
        .saml
        .as_ref()
        .ok_or_else(|| Refusal::Other(crate::error::ApiError::internal("no SAML SP")))?;
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(body).into_owned().collect();
    let now = clock::now();
    let Some(started) = sso::cookie(headers, RELAY_COOKIE) else {
        return Err(Refusal::State(
            "This sign-in was not started in this browser (or it took longer than 10 minutes): start again.",
        ));
    };
    let relay = fields.get("RelayState").map(String::as_str).unwrap_or("");
    if aws_lc_rs::constant_time::verify_slices_are_equal(relay.as_bytes(), started.as_bytes())
        .is_err()
    {
        return Err(Refusal::State(
            "The sign-in answer does not belong to the sign-in this browser started (RelayState mismatch): start again.",
        ));
    }
    // Read, not taken: what makes a response single-use is the replay cache below, which a
    // second post of the same response (to any replica) meets.
    let Some(pending) = app
        .store
        .find_sso_pending(&secret::hash_token(&started), now)
        .await?
        .filter(|p| p.protocol == "saml")
    else {
        return Err(Refusal::State(
            "This sign-in has expired or is unknown: start again.",
        ));
    };
    let response = fields
        .get("SAMLResponse")
        .filter(|r| !r.is_empty())
        .ok_or(Refusal::State("The post has no SAMLResponse: start again."))?;
    let request = PendingRequest {
        id: pending.nonce.clone(),
        issued_at: pending.created_at,
    };
    let login = saml
        .sp
        .verify_response(response, &request, odt(now), &DbReplay(app.store.as_ref()))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "a SAML sign-in was refused");
            Refusal::Verification(e.to_string())
        })?;
    let email = login
        .email
        .clone()
        .or_else(|| Some(login.name_id.clone()).filter(|n| n.contains('@')))
        .map(|e| e.trim().to_lowercase());
    let mut roles = login.roles.clone();
    roles.extend(login.groups.iter().cloned());
    // The one configured IdP, whose signature was just verified, is the authority for its own
    // users' addresses (see `links`). A transient NameID changes at every sign-in, so it links
    // nothing.
    let transient = login.name_id_format.as_deref()
        == Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient");
    let who = Identity {
        issuer: login.issuer.clone(),
        subject: if transient {
            String::new()
        } else {
            login.name_id.clone()
        },
        email_verified: email.is_some(),
        email,
        roles,
    };
    let user = sso::admit(app, &who, "saml", now).await?;
    sso::land(app, &user, &who, "saml", &pending.next_path, now).await
}

/// `GET /auth/saml/metadata`: this SP's metadata XML, to give the IdP.
pub async fn metadata(State(app): State<AppState>) -> Response {
    let Some(saml) = app.sso.saml.as_ref() else {
        return not_configured();
    };
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        saml.sp.metadata_xml(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(
        pairs: &[(&str, &str)],
        auth: &AuthProvider,
    ) -> Result<Option<SamlSettings>, String> {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SamlSettings::from_env(&|k: &str| env.get(k).cloned(), auth)
    }

    #[test]
    fn saml_is_off_without_idp_variables_and_names_what_is_missing() {
        assert_eq!(settings(&[], &AuthProvider::Local), Ok(None));
        let err = settings(
            &[("SAML_IDP_SSO_URL", "https://idp/sso")],
            &AuthProvider::Local,
        )
        .unwrap_err();
        assert!(
            err.starts_with("SAML sign-in needs SAML_IDP_ENTITY_ID, SAML_IDP_CERT_FILE"),
            "{err}"
        );
        let err = settings(
            &[
                ("SAML_IDP_METADATA_FILE", "m.xml"),
                ("SAML_IDP_CERT_FILE", "c.pem"),
            ],
            &AuthProvider::Local,
        )
        .unwrap_err();
        assert!(err.contains("unset SAML_IDP_ENTITY_ID"), "{err}");
        // A certificate alone is a generic IdP without its URLs — except for Entra ID.
        assert!(settings(&[("SAML_IDP_CERT_FILE", "c.pem")], &AuthProvider::Local).is_err());
    }

    #[test]
    fn metadata_or_the_three_explicit_settings_configure_the_idp() {
        let s = settings(
            &[
                ("SAML_IDP_METADATA_FILE", "/etc/idp.xml"),
                ("SAML_SP_ENTITY_ID", "urn:kw"),
            ],
            &AuthProvider::Local,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.idp, IdpSource::Metadata("/etc/idp.xml".into()));
        assert_eq!(s.sp_entity_id.as_deref(), Some("urn:kw"));
        let s = settings(
            &[
                ("SAML_IDP_ENTITY_ID", "https://idp/md"),
                ("SAML_IDP_SSO_URL", "https://idp/sso"),
                ("SAML_IDP_CERT_FILE", "c.pem"),
            ],
            &AuthProvider::Local,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(s.idp, IdpSource::Explicit { .. }));
    }
}
