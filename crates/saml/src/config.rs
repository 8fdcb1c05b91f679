//! Service provider and IdP settings, including IdP metadata XML.

use time::Duration;

use crate::cert::IdpCert;
use crate::error::SamlError;
use crate::xml::{self, NS_DSIG, NS_METADATA, children, is};

const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// The identity provider as this service provider trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpConfig {
    /// The IdP's entity id: the `Issuer` its assertions must carry.
    pub entity_id: String,
    /// Where AuthnRequests go (SingleSignOnService location).
    pub sso_url: String,
    /// Keys whose signatures are accepted. Several during a certificate rollover.
    pub signing_certs: Vec<IdpCert>,
}

impl IdpConfig {
    /// From settings: entity id, SSO URL and the signing certificate(s) as PEM (or base64 DER).
    pub fn new(entity_id: &str, sso_url: &str, certs_pem: &str) -> Result<Self, SamlError> {
        let cfg = Self {
            entity_id: entity_id.trim().to_owned(),
            sso_url: sso_url.trim().to_owned(),
            signing_certs: IdpCert::parse_all(certs_pem)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Microsoft Entra ID's enterprise-application SAML endpoints for a tenant:
    /// issuer `https://sts.windows.net/<tenant>/`, SSO `https://login.microsoftonline.com/<tenant>/saml2`.
    pub fn entra_id(tenant_id: &str, certs_pem: &str) -> Result<Self, SamlError> {
        let tenant = tenant_id.trim();
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(SamlError::Config(format!(
                "'{tenant}' is not an Entra ID tenant id; use the Directory (tenant) ID GUID"
            )));
        }
        Self::new(
            &format!("https://sts.windows.net/{tenant}/"),
            &format!("https://login.microsoftonline.com/{tenant}/saml2"),
            certs_pem,
        )
    }

    /// From the IdP's metadata XML (an `EntityDescriptor` with an `IDPSSODescriptor`, possibly
    /// inside an `EntitiesDescriptor`). The metadata's own signature is not checked: it must come
    /// from a trusted channel (an administrator downloading it over HTTPS).
    pub fn from_metadata(metadata_xml: &str) -> Result<Self, SamlError> {
        let doc = xml::parse(metadata_xml).map_err(|e| SamlError::Metadata(e.to_string()))?;
        let idps: Vec<_> = doc
            .descendants()
            .filter(|n| is(*n, NS_METADATA, "EntityDescriptor"))
            .filter_map(|e| {
                children(e, NS_METADATA, "IDPSSODescriptor")
                    .next()
                    .map(|d| (e, d))
            })
            .collect();
        let (entity, descriptor) = match idps.as_slice() {
            [one] => *one,
            [] => {
                return Err(SamlError::Metadata(
                    "it describes no IdP (no IDPSSODescriptor)".into(),
                ));
            }
            more => {
                return Err(SamlError::Metadata(format!(
                    "it describes {} IdPs; give the metadata of the one IdP to trust",
                    more.len()
                )));
            }
        };
        let entity_id = entity
            .attribute("entityID")
            .ok_or_else(|| SamlError::Metadata("the EntityDescriptor has no entityID".into()))?;

        let mut certs = Vec::new();
        for kd in children(descriptor, NS_METADATA, "KeyDescriptor") {
            // No `use` means both signing and encryption.
            if kd.attribute("use").is_some_and(|u| u != "signing") {
                continue;
            }
            for x509 in kd
                .descendants()
                .filter(|n| is(*n, NS_DSIG, "X509Certificate"))
            {
                certs.push(IdpCert::from_base64_der(&xml::text(x509))?);
            }
        }
        if certs.is_empty() {
            return Err(SamlError::Metadata(
                "the IDPSSODescriptor has no signing certificate".into(),
            ));
        }

        let sso: Vec<_> = children(descriptor, NS_METADATA, "SingleSignOnService").collect();
        let pick = |binding: &str| {
            sso.iter()
                .find(|s| s.attribute("Binding") == Some(binding))
                .and_then(|s| s.attribute("Location"))
        };
        let sso_url = pick(BINDING_REDIRECT).or_else(|| pick(BINDING_POST)).ok_or_else(|| {
            SamlError::Metadata("the IdP offers no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding".into())
        })?;

        let cfg = Self {
            entity_id: entity_id.to_owned(),
            sso_url: sso_url.to_owned(),
            signing_certs: certs,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), SamlError> {
        if self.entity_id.is_empty() {
            return Err(SamlError::Config("the IdP entity id is empty".into()));
        }
        check_url("IdP SSO URL", &self.sso_url)?;
        if self.signing_certs.is_empty() {
            return Err(SamlError::Config(
                "no IdP signing certificate is configured; unsigned logins are never accepted"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// This service provider and the IdP it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpConfig {
    /// This SP's entity id (the IdP app's "Identifier"), required in every assertion's Audience.
    pub entity_id: String,
    /// The Assertion Consumer Service URL (the IdP app's "Reply URL"), where the browser posts
    /// the SAMLResponse; required as Recipient and (when present) Destination.
    pub acs_url: String,
    pub idp: IdpConfig,
    /// Tolerated clock difference with the IdP, applied to every time check.
    pub clock_skew: Duration,
    /// How long a started login (an AuthnRequest) may take to come back.
    pub request_lifetime: Duration,
    /// Accept a response whose Response is signed but whose Assertion is not. Off by default:
    /// the Keyward spec requires signed assertions. The Response signature covers the assertion
    /// too, so turning it on is safe; it exists for IdPs that cannot sign assertions.
    pub accept_response_signature_only: bool,
}

impl SpConfig {
    pub const DEFAULT_CLOCK_SKEW: Duration = Duration::minutes(2);
    pub const DEFAULT_REQUEST_LIFETIME: Duration = Duration::minutes(10);

    /// Settings with the default skew (2 min) and request lifetime (10 min).
    pub fn new(entity_id: &str, acs_url: &str, idp: IdpConfig) -> Result<Self, SamlError> {
        let cfg = Self {
            entity_id: entity_id.trim().to_owned(),
            acs_url: acs_url.trim().to_owned(),
            idp,
            clock_skew: Self::DEFAULT_CLOCK_SKEW,
            request_lifetime: Self::DEFAULT_REQUEST_LIFETIME,
            accept_response_signature_only: false,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), SamlError> {
        if self.entity_id.is_empty() {
            return Err(SamlError::Config("the SP entity id is empty".into()));
        }
        check_url("ACS URL", &self.acs_url)?;
        self.idp.validate()?;
        if self.clock_skew.is_negative() || self.clock_skew > Duration::minutes(10) {
            return Err(SamlError::Config(
                "the clock skew must be between 0 and 10 minutes".into(),
            ));
        }
        if !self.request_lifetime.is_positive() {
            return Err(SamlError::Config(
                "the request lifetime must be positive".into(),
            ));
        }
        Ok(())
    }
}

fn check_url(what: &str, value: &str) -> Result<(), SamlError> {
    let url = url::Url::parse(value)
        .map_err(|e| SamlError::Config(format!("the {what} '{value}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(SamlError::Config(format!(
            "the {what} '{value}' must be an https URL"
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A public test certificate (self-signed, CN=idp; its key was thrown away).
    pub(crate) const CERT_B64: &str = "MIIC/TCCAeWgAwIBAgIUUovgcaPTg/PgTFYDZnbS1HXiJ9UwDQYJKoZIhvcNAQELBQAwDjEMMAoGA1UEAwwDaWRwMB4XDTI2MTEyMjIzNDk1OVoXDTI2MTEyNDIzNDk1OVowDjEMMAoGA1UEAwwDaWRwMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwt8IOgwNOVO90Sla/aUW2RIrJpALDDwSHvrmBT8zdsjOZkY4La/dTaRF6lRC3BbgXttX63MyaHiBo6BC8V8jrBoGeKDGioLZtl2dlw69aQY67Q2mGr4mIFuhqkHsoY9I883WnBlkK/i7ZWnpSnw9EK4rDhRhDX9AIORK1szLeFUMOtX0ThcyruUl4+N+u4njDuOAQxXZ3duaDj9upFZ1gmm0Uax78wOCtKOHjOLjLK3HbZQwHfcE0Mp4HN06loiSDfV1O1JDErCjbkA4ydvo16W87ba4jtpV3Nf9pljbhgkEydaRuXOerFfJdb0YVEHjFAAPn9Om0bX1hQohU4TVMwIDAQABo1MwUTAdBgNVHQ4EFgQURPieO8shNfOBSoYcnfOOQFCbd6IwHwYDVR0jBBgwFoAURPieO8shNfOBSoYcnfOOQFCbd6IwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAiWuujb8Z99dhf9XGmGHqu2j6t0ThnHh25Tx06yvEl5kO7STPvkp2EaFuJMlekaOW4154L7hnAxQMQo18/it4scS0gKdvNqYrDxWk85FJFyf7Jz/kniXiz1hYdlO4mNP+cdYsFWtASq/8TVeeEzfpWNmjVNL+tP5Dcb7TvMI3R3Rl8KpHmVQBx35HcvpITl2RBWITb8mg7bFYn9tiqklhn9m3whViFmM1wWclDKv0LxVOKWH0uV47oa69uSqoSFy0baa26pzWWNE7H7igrQzE5ZTMfqRd6U2PGBbbkZf0JVeb1IFMGYo1stzyP7isUg4Krfny6EFPzxSkA6DZOhsD1A==";

    /// Shaped like Entra ID's federation metadata: a signed EntityDescriptor, WS-Fed
    /// RoleDescriptors with their own certificates, and the SAML IDPSSODescriptor.
    fn entra_like_metadata() -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<EntityDescriptor ID="_m1" entityID="https://sts.windows.net/t-1/" xmlns="urn:oasis:names:tc:SAML:2.0:metadata">
  <Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature>
  <RoleDescriptor xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="fed:SecurityTokenServiceType" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706">
    <KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>not-read</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
  </RoleDescriptor>
  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>
      {CERT_B64}
    </X509Certificate></X509Data></KeyInfo></KeyDescriptor>
    <KeyDescriptor use="encryption"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>not-read</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
    <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://login.microsoftonline.com/t-1/saml2"/>
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://login.microsoftonline.com/t-1/saml2/post"/>
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://login.microsoftonline.com/t-1/saml2"/>
  </IDPSSODescriptor>
</EntityDescriptor>"#
        )
    }

    #[test]
    fn entra_metadata_yields_issuer_redirect_sso_and_only_the_saml_signing_cert() {
        let idp = IdpConfig::from_metadata(&entra_like_metadata()).unwrap();
        assert_eq!(idp.entity_id, "https://sts.windows.net/t-1/");
        assert_eq!(idp.sso_url, "https://login.microsoftonline.com/t-1/saml2");
        assert_eq!(idp.signing_certs.len(), 1);
    }

    #[test]
    fn entra_id_helper_uses_the_tenant_endpoints() {
        let pem = format!("-----BEGIN CERTIFICATE-----\n{CERT_B64}\n-----END CERTIFICATE-----\n");
        let idp = IdpConfig::entra_id("t-1", &pem).unwrap();
        assert_eq!(
            idp,
            IdpConfig::from_metadata(&entra_like_metadata()).unwrap()
        );
        assert!(IdpConfig::entra_id("../evil", &pem).is_err());
    }

    #[test]
    fn metadata_without_an_idp_or_a_cert_is_refused_with_a_reason() {
        let err = IdpConfig::from_metadata(
            r#"<EntityDescriptor entityID="x" xmlns="urn:oasis:names:tc:SAML:2.0:metadata"/>"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no IdP"), "{err}");
        let err = IdpConfig::new("https://idp", "https://idp/sso", "").unwrap_err();
        assert!(matches!(err, SamlError::Certificate(_)), "{err}");
    }

    #[test]
    fn sp_settings_are_validated() {
        let idp = IdpConfig::new("https://idp", "https://idp/sso", CERT_B64).unwrap();
        assert!(SpConfig::new("", "https://sp/acs", idp.clone()).is_err());
        assert!(SpConfig::new("https://sp", "not a url", idp.clone()).is_err());
        assert!(SpConfig::new("https://sp", "https://sp/acs", idp).is_ok());
    }
}
