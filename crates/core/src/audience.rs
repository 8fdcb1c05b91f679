//! The `aud` values Keyward mints workload tokens for. Only the three forms the clouds accept are
//! valid, plus Keyward's own services (`keyward-gateway`, SPEC §9); anything else would produce a
//! token nobody takes, so it is refused up front.

use std::fmt;

use thiserror::Error;

/// Prefix of a GCP workload identity provider audience.
pub const GCP_AUDIENCE_PREFIX: &str = "//iam.googleapis.com/";
/// The fixed audience Entra ID expects for federated identity credentials.
pub const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The audience AWS STS `AssumeRoleWithWebIdentity` expects.
pub const AWS_AUDIENCE: &str = "sts.amazonaws.com";
/// The Keyward gateway's default audience (`keyward gateway --audience`); gateways with their own
/// audience use `keyward-gateway-<name>`. Nothing else of Keyward's: `keyward-api` (people's
/// access tokens) must never be minted for an automation.
pub const GATEWAY_AUDIENCE: &str = "keyward-gateway";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// `//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>`
    Gcp(GcpProvider),
    Azure,
    Aws,
    /// A Keyward gateway: `keyward-gateway`, or `keyward-gateway-<name>` (lowercase letters,
    /// digits and hyphens, at most 64 characters in all).
    Keyward(String),
}

/// A parsed GCP workload identity provider resource name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcpProvider {
    pub project_number: String,
    pub pool: String,
    pub provider: String,
}

impl GcpProvider {
    /// `projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>`
    pub fn resource_name(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
            self.project_number, self.pool, self.provider
        )
    }

    /// Parses the resource name form (without the `//iam.googleapis.com/` prefix).
    pub fn parse_resource_name(name: &str) -> Result<Self, AudienceError> {
        let parts: Vec<&str> = name.split('/').collect();
        let shape_ok = parts.len() == 8
            && parts[0] == "projects"
            && parts[2] == "locations"
            && parts[4] == "workloadIdentityPools"
            && parts[6] == "providers";
        if !shape_ok {
            return Err(AudienceError::GcpShape {
                value: name.to_owned(),
            });
        }
        let project = parts[1];
        if project.is_empty() || !project.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AudienceError::GcpProjectId {
                value: project.to_owned(),
            });
        }
        if parts[3] != "global" {
            return Err(AudienceError::GcpLocation {
                value: parts[3].to_owned(),
            });
        }
        for (what, id) in [("pool", parts[5]), ("provider", parts[7])] {
            if !is_gcp_resource_id(id) {
                return Err(AudienceError::GcpResourceId {
                    what,
                    value: id.to_owned(),
                });
            }
        }
        Ok(Self {
            project_number: project.to_owned(),
            pool: parts[5].to_owned(),
            provider: parts[7].to_owned(),
        })
    }
}

/// GCP pool and provider ids: 4–32 characters of lowercase letters, digits and hyphens.
fn is_gcp_resource_id(id: &str) -> bool {
    (4..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AudienceError {
    #[error(
        "unsupported audience {value:?}: use '//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>' (GCP), '{AZURE_AUDIENCE}' (Azure), '{AWS_AUDIENCE}' (AWS) or 'keyward-gateway' (the Keyward gateway)"
    )]
    Unsupported { value: String },
    #[error(
        "GCP provider {value:?} is not of the form projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>"
    )]
    GcpShape { value: String },
    #[error(
        "GCP provider names the project {value:?}, but a project NUMBER is required (e.g. 123456789012), not the project id; find it with `gcloud projects describe <project-id> --format='value(projectNumber)'`"
    )]
    GcpProjectId { value: String },
    #[error("GCP workload identity pools live in location 'global', not {value:?}")]
    GcpLocation { value: String },
    #[error(
        "GCP {what} id {value:?} must be 4-32 characters of lowercase letters, digits and hyphens"
    )]
    GcpResourceId { what: &'static str, value: String },
}

impl Audience {
    pub fn parse(value: &str) -> Result<Self, AudienceError> {
        if value == AZURE_AUDIENCE {
            return Ok(Audience::Azure);
        }
        if value == AWS_AUDIENCE {
            return Ok(Audience::Aws);
        }
        if let Some(rest) = value.strip_prefix(GCP_AUDIENCE_PREFIX) {
            return GcpProvider::parse_resource_name(rest).map(Audience::Gcp);
        }
        let gateway = value == GATEWAY_AUDIENCE
            || value
                .strip_prefix(GATEWAY_AUDIENCE)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|name| {
                    !name.is_empty()
                        && value.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
        if gateway {
            return Ok(Audience::Keyward(value.to_owned()));
        }
        Err(AudienceError::Unsupported {
            value: value.to_owned(),
        })
    }

    /// Which cloud this audience belongs to (for logs and audit).
    pub fn cloud(&self) -> &'static str {
        match self {
            Audience::Gcp(_) => "gcp",
            Audience::Azure => "azure",
            Audience::Aws => "aws",
            Audience::Keyward(_) => "keyward",
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Audience::Gcp(p) => write!(f, "{GCP_AUDIENCE_PREFIX}{}", p.resource_name()),
            Audience::Azure => f.write_str(AZURE_AUDIENCE),
            Audience::Aws => f.write_str(AWS_AUDIENCE),
            Audience::Keyward(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCP: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/crewai-amp/providers/crewai-amp-oidc";

    #[test]
    fn the_three_cloud_forms_parse_and_print_back_unchanged() {
        for value in [
            GCP,
            AZURE_AUDIENCE,
            AWS_AUDIENCE,
            "keyward-gateway",
            "keyward-gateway-eu",
        ] {
            let aud = Audience::parse(value).unwrap();
            assert_eq!(aud.to_string(), value);
        }
        match Audience::parse(GCP).unwrap() {
            Audience::Gcp(p) => {
                assert_eq!(p.project_number, "123456789012");
                assert_eq!(p.pool, "crewai-amp");
                assert_eq!(p.provider, "crewai-amp-oidc");
            }
            other => panic!("expected GCP, got {other:?}"),
        }
    }

    #[test]
    fn a_project_id_in_place_of_the_number_is_named_as_such() {
        let err = Audience::parse(
            "//iam.googleapis.com/projects/my-project/locations/global/workloadIdentityPools/pool1/providers/prov1",
        )
        .unwrap_err();
        assert!(matches!(err, AudienceError::GcpProjectId { .. }));
        assert!(err.to_string().contains("project NUMBER"));
    }

    #[test]
    fn other_audiences_are_refused() {
        for bad in [
            "",
            "https://example.com",
            "api://azureadtokenexchange",
            "sts.amazonaws.com.evil",
            "keyward-api",
            "keyward-",
            "keyward-gateway-",
            "keyward-gateway-EU",
            "keyward-gateway/x",
            "keyward-gatewayx",
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool1",
            "//iam.googleapis.com/projects/1/locations/us/workloadIdentityPools/pool1/providers/prov1",
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/P/providers/prov1",
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool1/providers/prov1/extra",
        ] {
            assert!(Audience::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
