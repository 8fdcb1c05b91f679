//! The SSO settings (`KEYWARD_SSO_*`, `SAML_*`): read from the environment and checked at
//! startup; the relying parties built from them live with the people handlers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use keyward_core::OrgId;

use super::provider::AuthProvider;

/// The SSO and SAML variables, besides the provider's own ([`super::provider::ENV_VARS`]).
pub const ENV_VARS: &[&str] = &[
    "KEYWARD_SSO_CA_FILE",
    "KEYWARD_SSO_ORG",
    "SAML_IDP_METADATA_FILE",
    "SAML_IDP_ENTITY_ID",
    "SAML_IDP_SSO_URL",
    "SAML_IDP_CERT_FILE",
    "SAML_SP_ENTITY_ID",
];

/// SSO settings from the environment, checked at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SsoSettings {
    /// `KEYWARD_SSO_CA_FILE`: PEM certificates trusted (besides the system's) for HTTPS to the
    /// identity provider — for a provider behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// `KEYWARD_SSO_ORG`: the organization people join on first sign-in (default: the first
    /// organization, the one created at setup).
    pub org: Option<OrgId>,
    pub saml: Option<SamlSettings>,
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
            saml: SamlSettings::from_env(&get, auth)?,
        })
    }
}

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
