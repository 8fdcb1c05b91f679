//! Workload identity configs and LLM connections (SPEC §4): what each cloud's side needs, and the
//! rules that refuse a setup no cloud would accept, with the reason in the reference's words.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use crate::audience::{Audience, AudienceError, GcpProvider};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloudKind {
    Gcp,
    Azure,
    Aws,
}

impl CloudKind {
    pub fn parse(value: &str) -> Result<CloudKind, WorkloadError> {
        match value {
            "gcp" => Ok(CloudKind::Gcp),
            "azure" => Ok(CloudKind::Azure),
            "aws" => Ok(CloudKind::Aws),
            other => Err(WorkloadError::UnknownCloud {
                value: other.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloudKind::Gcp => "gcp",
            CloudKind::Azure => "azure",
            CloudKind::Aws => "aws",
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            CloudKind::Gcp => "GCP",
            CloudKind::Azure => "Azure",
            CloudKind::Aws => "AWS",
        }
    }
}

impl fmt::Display for CloudKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cloud side of one workload identity, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadIdentity {
    Gcp {
        provider: GcpProvider,
    },
    Azure {
        tenant_id: String,
        client_id: String,
    },
    Aws {
        role_arn: String,
        region: String,
    },
}

impl WorkloadIdentity {
    pub fn gcp(provider: &str) -> Result<WorkloadIdentity, WorkloadError> {
        let name = provider.trim_start_matches(crate::audience::GCP_AUDIENCE_PREFIX);
        GcpProvider::parse_resource_name(name)
            .map(|provider| WorkloadIdentity::Gcp { provider })
            .map_err(|source| WorkloadError::GcpProvider { source })
    }

    pub fn azure(tenant_id: &str, client_id: &str) -> Result<WorkloadIdentity, WorkloadError> {
        Ok(WorkloadIdentity::Azure {
            tenant_id: guid("tenant_id", tenant_id)?,
            client_id: guid("client_id", client_id)?,
        })
    }

    pub fn aws(role_arn: &str, region: &str) -> Result<WorkloadIdentity, WorkloadError> {
        Ok(WorkloadIdentity::Aws {
            role_arn: validate_role_arn(role_arn)?,
            region: validate_region(region)?,
        })
    }

    pub fn cloud(&self) -> CloudKind {
        match self {
            WorkloadIdentity::Gcp { .. } => CloudKind::Gcp,
            WorkloadIdentity::Azure { .. } => CloudKind::Azure,
            WorkloadIdentity::Aws { .. } => CloudKind::Aws,
        }
    }

    /// The `aud` Keyward mints for this identity; computed, never typed by a person.
    pub fn audience(&self) -> Audience {
        match self {
            WorkloadIdentity::Gcp { provider } => Audience::Gcp(provider.clone()),
            WorkloadIdentity::Azure { .. } => Audience::Azure,
            WorkloadIdentity::Aws { .. } => Audience::Aws,
        }
    }
}

/// The LLM providers a connection can name; the first three are the clouds' own.
pub const LLM_PROVIDERS: &[&str] = &[
    "vertex",
    "azure_openai",
    "bedrock",
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "groq",
    "cohere",
    "ollama",
    "custom",
];

/// Which cloud's workload identity an LLM provider can use, if any.
pub fn llm_provider_cloud(provider: &str) -> Option<CloudKind> {
    match provider {
        "vertex" => Some(CloudKind::Gcp),
        "azure_openai" => Some(CloudKind::Azure),
        "bedrock" => Some(CloudKind::Aws),
        _ => None,
    }
}

/// The parts of an LLM connection that the rules look at.
#[derive(Clone, Debug, Default)]
pub struct LlmConnectionCheck<'a> {
    pub provider: &'a str,
    /// The cloud of the attached workload identity config, if one is attached.
    pub identity_cloud: Option<CloudKind>,
    pub service_account_email: Option<&'a str>,
    pub model: Option<&'a str>,
    pub env: Option<&'a BTreeMap<String, String>>,
}

impl LlmConnectionCheck<'_> {
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if !LLM_PROVIDERS.contains(&self.provider) {
            return Err(WorkloadError::UnknownLlmProvider {
                value: self.provider.to_owned(),
            });
        }
        if let Some(cloud) = self.identity_cloud
            && llm_provider_cloud(self.provider) != Some(cloud)
        {
            return Err(WorkloadError::IdentityCloudMismatch {
                cloud,
                provider: self.provider.to_owned(),
            });
        }
        if let Some(email) = self.service_account_email {
            validate_service_account_email(email)?;
            if self.provider != "vertex" {
                return Err(WorkloadError::ServiceAccountNotVertex {
                    provider: self.provider.to_owned(),
                });
            }
        }
        let workload_identity = self.identity_cloud.is_some();
        if workload_identity
            && self.provider == "vertex"
            && let Some(model) = self.model
            && model.starts_with("vertex_ai/")
        {
            return Err(WorkloadError::VertexAiPrefix {
                model: model.to_owned(),
            });
        }
        for (key, _) in self.env.into_iter().flatten() {
            if workload_identity && key == "GOOGLE_API_KEY" {
                return Err(WorkloadError::ApiKeyWithWorkloadIdentity);
            }
            validate_env_key(key)?;
        }
        Ok(())
    }
}

/// Environment variable names: `^[A-Za-z_][A-Za-z0-9_]*$`, and not reserved
/// ([`crate::env_keys::reserved`]).
pub fn validate_env_key(key: &str) -> Result<(), WorkloadError> {
    let mut bytes = key.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if let Some(why) = crate::env_keys::reserved(key).filter(|_| ok) {
        Err(WorkloadError::ReservedEnvKey {
            key: key.to_owned(),
            why,
        })
    } else if ok {
        Ok(())
    } else {
        Err(WorkloadError::EnvKey {
            key: key.to_owned(),
        })
    }
}

/// `<name>@<project>.iam.gserviceaccount.com` (or a Google-managed `…gserviceaccount.com`).
pub fn validate_service_account_email(email: &str) -> Result<(), WorkloadError> {
    let bad = || WorkloadError::ServiceAccountEmail {
        value: email.to_owned(),
    };
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let local_ok = (6..=30).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && local.starts_with(|c: char| c.is_ascii_lowercase());
    let domain_ok = domain.ends_with(".gserviceaccount.com")
        && domain.len() > ".gserviceaccount.com".len()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/name>`
pub fn validate_role_arn(arn: &str) -> Result<String, WorkloadError> {
    let bad = |why: &'static str| WorkloadError::RoleArn {
        value: arn.to_owned(),
        why,
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(bad(
            "it must have the form arn:aws:iam::<account>:role/<name>",
        ));
    };
    if *prefix != "arn" || !matches!(*partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(bad("it must start with arn:aws:"));
    }
    if *service != "iam" || !region.is_empty() {
        return Err(bad(
            "it must be an IAM ARN (arn:aws:iam::…), which has no region",
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the account must be 12 digits"));
    }
    let Some(name) = resource.strip_prefix("role/") else {
        return Err(bad(
            "it must name a role (…:role/<name>), not a user or policy",
        ));
    };
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
    if !name_ok {
        return Err(bad("the role name may use letters, digits and +=,.@_-/"));
    }
    Ok(arn.to_owned())
}

/// An AWS region such as `us-east-1` or `eu-central-2`.
pub fn validate_region(region: &str) -> Result<String, WorkloadError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(region.to_owned())
    } else {
        Err(WorkloadError::Region {
            value: region.to_owned(),
        })
    }
}

fn guid(field: &'static str, value: &str) -> Result<String, WorkloadError> {
    match uuid::Uuid::parse_str(value) {
        Ok(u) if value.len() == 36 => Ok(u.hyphenated().to_string()),
        _ => Err(WorkloadError::Guid {
            field,
            value: value.to_owned(),
        }),
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("cloud must be 'gcp', 'azure' or 'aws', not {value:?}")]
    UnknownCloud { value: String },
    #[error(
        "subject must be 'organization' (sub = organization:<org-uuid>) or 'automation' (sub = organization:<org-uuid>:automation:<automation-uuid>), not {value:?}"
    )]
    UnknownSubject { value: String },
    #[error("{source}")]
    GcpProvider { source: AudienceError },
    #[error(
        "{field} must be a GUID such as 00000000-0000-0000-0000-000000000000 (the Azure portal's Directory (tenant) ID / Application (client) ID), not {value:?}"
    )]
    Guid { field: &'static str, value: String },
    #[error("role_arn {value:?} is not a role ARN: {why}")]
    RoleArn { value: String, why: &'static str },
    #[error("region {value:?} is not an AWS region such as us-east-1")]
    Region { value: String },
    #[error("provider must be one of {}, not {value:?}", LLM_PROVIDERS.join(", "))]
    UnknownLlmProvider { value: String },
    #[error(
        "a {} workload identity config can only be attached to a {} connection, and this connection's provider is {provider:?}",
        cloud.display_name(),
        match cloud { CloudKind::Gcp => "Vertex (vertex)", CloudKind::Azure => "Azure OpenAI (azure_openai)", CloudKind::Aws => "Bedrock (bedrock)" }
    )]
    IdentityCloudMismatch { cloud: CloudKind, provider: String },
    #[error(
        "model {model:?} uses the vertex_ai/ (LiteLLM) prefix: workload identity only works through the Google Gen AI SDK route — use google/<model-name>"
    )]
    VertexAiPrefix { model: String },
    #[error(
        "service_account_email {value:?} is not a service account email (<name>@<project-id>.iam.gserviceaccount.com)"
    )]
    ServiceAccountEmail { value: String },
    #[error(
        "service_account_email is only used for Vertex impersonation; this connection's provider is {provider:?}"
    )]
    ServiceAccountNotVertex { provider: String },
    #[error("environment variable name {key:?} must match ^[A-Za-z_][A-Za-z0-9_]*$")]
    EnvKey { key: String },
    #[error("environment variable {key} is reserved: {why}")]
    ReservedEnvKey { key: String, why: &'static str },
    #[error(
        "GOOGLE_API_KEY is not accepted on a workload identity connection: the crew authenticates with federated credentials, no API key"
    )]
    ApiKeyWithWorkloadIdentity,
}

impl WorkloadError {
    /// The API field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            WorkloadError::UnknownCloud { .. } => "cloud",
            WorkloadError::UnknownSubject { .. } => "subject",
            WorkloadError::GcpProvider { .. } => "provider",
            WorkloadError::Guid { field, .. } => field,
            WorkloadError::RoleArn { .. } => "role_arn",
            WorkloadError::Region { .. } => "region",
            WorkloadError::UnknownLlmProvider { .. } => "provider",
            WorkloadError::IdentityCloudMismatch { .. } => "workload_identity_config",
            WorkloadError::VertexAiPrefix { .. } => "model",
            WorkloadError::ServiceAccountEmail { .. }
            | WorkloadError::ServiceAccountNotVertex { .. } => "service_account_email",
            WorkloadError::EnvKey { .. }
            | WorkloadError::ReservedEnvKey { .. }
            | WorkloadError::ApiKeyWithWorkloadIdentity => "env",
        }
    }
}

/// Why an identity is in a kickoff plan; a lower rank wins its cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdentityRank {
    /// The config of an LLM connection the automation uses.
    Connection,
    /// A config that lists the automation.
    Restricted,
    /// The cloud's default config, open to every automation.
    Default,
}

/// What the kickoff ranking needs to know of one workload identity config, for one automation.
#[derive(Clone, Debug)]
pub struct RankedConfig<'a, K> {
    pub id: K,
    pub cloud: &'a str,
    /// The config lists the automation.
    pub lists_automation: bool,
    /// The config lists no automation (open to all).
    pub unrestricted: bool,
    pub default_for_cloud: bool,
}

/// The identities of a kickoff plan: per cloud, the best-ranked config the automation may use,
/// with the service account of the Vertex connection that chose it. `connections` are the
/// (config, service account) pairs of the LLM connections the automation uses, in their order;
/// of equal ranks the first wins. The result is ordered by cloud.
pub fn kickoff_identities<K: Copy + PartialEq>(
    configs: &[RankedConfig<'_, K>],
    connections: &[(K, Option<String>)],
) -> Vec<(K, Option<String>)> {
    let mut candidates: Vec<(IdentityRank, &RankedConfig<'_, K>, Option<String>)> = Vec::new();
    for (id, service_account) in connections {
        if let Some(config) = configs
            .iter()
            .find(|c| c.id == *id)
            .filter(|c| c.unrestricted || c.lists_automation)
        {
            candidates.push((IdentityRank::Connection, config, service_account.clone()));
        }
    }
    for config in configs {
        if config.lists_automation {
            candidates.push((IdentityRank::Restricted, config, None));
        } else if config.default_for_cloud && config.unrestricted {
            candidates.push((IdentityRank::Default, config, None));
        }
    }
    let mut chosen: BTreeMap<&str, (IdentityRank, K, Option<String>)> = BTreeMap::new();
    for (rank, config, service_account) in candidates {
        let better = chosen
            .get(config.cloud)
            .is_none_or(|(held, _, _)| rank < *held);
        if better {
            chosen.insert(config.cloud, (rank, config.id, service_account));
        }
    }
    chosen
        .into_values()
        .map(|(_, id, service_account)| (id, service_account))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(id: u8, cloud: &str, lists: bool, open: bool, default: bool) -> RankedConfig<'_, u8> {
        RankedConfig {
            id,
            cloud,
            lists_automation: lists,
            unrestricted: open,
            default_for_cloud: default,
        }
    }

    #[test]
    fn a_connection_beats_a_listing_which_beats_the_default_per_cloud() {
        let configs = [
            ranked(1, "gcp", false, true, true),
            ranked(2, "gcp", true, false, false),
            ranked(3, "gcp", false, true, false),
            ranked(4, "aws", false, true, true),
            ranked(5, "azure", true, false, false),
        ];
        let chosen = kickoff_identities(&configs, &[(3, Some("sa@p.iam".into()))]);
        assert_eq!(
            chosen,
            vec![(4, None), (5, None), (3, Some("sa@p.iam".into()))],
            "ordered by cloud: aws, azure, gcp"
        );
        let chosen = kickoff_identities(&configs, &[]);
        assert_eq!(chosen, vec![(4, None), (5, None), (2, None)]);
    }

    #[test]
    fn configs_restricted_to_others_and_non_default_open_ones_are_not_chosen() {
        let configs = [
            ranked(1, "gcp", false, false, true),
            ranked(2, "aws", false, true, false),
        ];
        // A connection naming a config restricted to other automations does not bring it in.
        assert!(kickoff_identities(&configs, &[(1, None)]).is_empty());
        assert!(kickoff_identities(&configs, &[(9, None)]).is_empty());
        // An open config comes in through a connection even when it is not the default.
        assert_eq!(kickoff_identities(&configs, &[(2, None)]), vec![(2, None)]);
    }

    #[test]
    fn of_equal_ranks_the_first_wins() {
        let configs = [
            ranked(1, "gcp", true, false, false),
            ranked(2, "gcp", true, false, false),
        ];
        assert_eq!(kickoff_identities(&configs, &[]), vec![(1, None)]);
        assert_eq!(
            kickoff_identities(&configs, &[(2, None), (1, None)]),
            vec![(2, None)]
        );
    }

    const PROVIDER: &str = "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc";

    #[test]
    fn each_cloud_validates_and_computes_its_audience() {
        let gcp = WorkloadIdentity::gcp(PROVIDER).unwrap();
        assert_eq!(
            gcp.audience().to_string(),
            format!("//iam.googleapis.com/{PROVIDER}")
        );
        let azure = WorkloadIdentity::azure(
            "4A1F8F3E-0C2B-4F7A-9A51-8B6D2C9E1F00",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        )
        .unwrap();
        assert_eq!(azure.audience().to_string(), "api://AzureADTokenExchange");
        let WorkloadIdentity::Azure { tenant_id, .. } = &azure else {
            unreachable!()
        };
        assert_eq!(tenant_id, "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00");
        let aws =
            WorkloadIdentity::aws("arn:aws:iam::123456789012:role/keyward-reader", "us-east-1")
                .unwrap();
        assert_eq!(aws.audience().to_string(), "sts.amazonaws.com");
    }

    #[test]
    fn a_project_id_in_the_provider_name_is_refused_naming_the_project_number() {
        let err = WorkloadIdentity::gcp(
            "projects/my-project/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc",
        )
        .unwrap_err();
        assert_eq!(err.field(), "provider");
        assert!(err.to_string().contains("project NUMBER"), "{err}");
    }

    #[test]
    fn bad_cloud_fields_name_the_problem() {
        for (result, field, words) in [
            (
                WorkloadIdentity::azure("not-a-guid", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
                "tenant_id",
                "GUID",
            ),
            (
                WorkloadIdentity::aws("arn:aws:iam::1234:role/x", "us-east-1"),
                "role_arn",
                "12 digits",
            ),
            (
                WorkloadIdentity::aws("arn:aws:iam::123456789012:user/x", "us-east-1"),
                "role_arn",
                "name a role",
            ),
            (
                WorkloadIdentity::aws("arn:aws:iam::123456789012:role/x", "useast1"),
                "region",
                "us-east-1",
            ),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn llm_connection_rules_match_the_reference() {
        let env: BTreeMap<String, String> =
            [("GOOGLE_CLOUD_LOCATION".to_owned(), "global".to_owned())].into();
        let good = LlmConnectionCheck {
            provider: "vertex",
            identity_cloud: Some(CloudKind::Gcp),
            service_account_email: Some("keyward-vertex@keyward-demo.iam.gserviceaccount.com"),
            model: Some("google/gemini-2.0-flash"),
            env: Some(&env),
        };
        assert_eq!(good.validate(), Ok(()));

        let err = LlmConnectionCheck {
            model: Some("vertex_ai/gemini-2.0-flash"),
            ..good.clone()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(err, WorkloadError::VertexAiPrefix { .. }), "{err}");
        assert!(err.to_string().contains("google/<model-name>"));
        // Without workload identity, LiteLLM's route is the user's business.
        assert_eq!(
            LlmConnectionCheck {
                identity_cloud: None,
                service_account_email: None,
                model: Some("vertex_ai/gemini"),
                ..good.clone()
            }
            .validate(),
            Ok(())
        );
        let err = LlmConnectionCheck {
            provider: "openai",
            service_account_email: None,
            ..good.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "workload_identity_config");
        assert!(
            err.to_string()
                .contains("GCP workload identity config can only be attached to a Vertex"),
            "{err}"
        );
        for email in [
            "keyward-vertex",
            "someone@gmail.com",
            "a@x.iam.gserviceaccount.com",
            "Keyward-Vertex@p.iam.gserviceaccount.com",
        ] {
            let err = LlmConnectionCheck {
                service_account_email: Some(email),
                ..good.clone()
            }
            .validate()
            .unwrap_err();
            assert_eq!(err.field(), "service_account_email", "{email}: {err}");
        }
        let with_key: BTreeMap<String, String> =
            [("GOOGLE_API_KEY".to_owned(), "x".to_owned())].into();
        let err = LlmConnectionCheck {
            env: Some(&with_key),
            ..good.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err, WorkloadError::ApiKeyWithWorkloadIdentity);
        let bad_key: BTreeMap<String, String> = [("1BAD".to_owned(), "x".to_owned())].into();
        let err = LlmConnectionCheck {
            env: Some(&bad_key),
            ..good
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field(), "env");
    }
}
