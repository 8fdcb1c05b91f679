//! The endpoints file (SPEC §10): where Keyward's cloud calls go when they should not go to the
//! real clouds. `keyward cloudsim --demo --print-json` writes one; `KEYWARD_CLOUD_ENDPOINTS`
//! points `serve`, `run`, `agent` and `doctor` at it. Every field is optional so a hand-written
//! file can override one cloud, or one endpoint, and leave the rest real.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Real base URLs, used for every endpoint the file leaves out.
pub mod real {
    pub const GCP_STS: &str = "https://sts.googleapis.com";
    pub const GCP_IAM_CREDENTIALS: &str = "https://iamcredentials.googleapis.com";
    pub const GCP_SECRET_MANAGER: &str = "https://secretmanager.googleapis.com";
    pub const GCP_VERTEX: &str = "https://aiplatform.googleapis.com";
    /// Google's OAuth 2.0 token endpoint host (service account keys, JWT bearer grant).
    pub const GCP_OAUTH2: &str = "https://oauth2.googleapis.com";
    pub const AZURE_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
    pub const AWS_STS: &str = "https://sts.amazonaws.com";

    /// `https://secretsmanager.<region>.amazonaws.com`
    pub fn aws_secrets_manager(region: &str) -> String {
        format!("https://secretsmanager.{region}.amazonaws.com")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsFile {
    /// PEM bundle that signs the endpoints' TLS certificates (cloudsim's own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The simulator's admin token (`Authorization: Bearer` on `/_cloudsim/*`); keep the file
    /// private (`--write-endpoints` writes it 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpEndpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureEndpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsEndpoints>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpEndpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_credentials_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_manager_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_url: Option<String>,
    /// Google's OAuth 2.0 token endpoint (`<oauth2_url>/token`), for service account keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_url: Option<String>,
    /// `projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Demo secrets and their current values, so a reader can check what resolves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureEndpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_url: Option<String>,
    /// Every simulated vault by name, with its URL: the hosts besides Key Vault's own domains
    /// that may receive a vault token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vaults: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsEndpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_manager_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

impl EndpointsFile {
    /// Parses the file's JSON; the error names the offending key or position.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn gcp_sts(&self) -> String {
        pick(
            self.gcp.as_ref().and_then(|g| g.sts_url.as_deref()),
            real::GCP_STS,
        )
    }

    pub fn gcp_iam_credentials(&self) -> String {
        pick(
            self.gcp
                .as_ref()
                .and_then(|g| g.iam_credentials_url.as_deref()),
            real::GCP_IAM_CREDENTIALS,
        )
    }

    pub fn gcp_secret_manager(&self) -> String {
        pick(
            self.gcp
                .as_ref()
                .and_then(|g| g.secret_manager_url.as_deref()),
            real::GCP_SECRET_MANAGER,
        )
    }

    pub fn gcp_vertex(&self) -> String {
        pick(
            self.gcp.as_ref().and_then(|g| g.vertex_url.as_deref()),
            real::GCP_VERTEX,
        )
    }

    /// Where a service account key's JWT bearer grant goes, or `None` to use the key's own
    /// `token_uri`.
    pub fn gcp_oauth2(&self) -> Option<String> {
        self.gcp
            .as_ref()
            .and_then(|g| g.oauth2_url.as_deref())
            .map(|u| u.trim_end_matches('/').to_owned())
    }

    pub fn azure_authority_host(&self) -> String {
        pick(
            self.azure
                .as_ref()
                .and_then(|a| a.authority_host.as_deref()),
            real::AZURE_AUTHORITY_HOST,
        )
    }

    pub fn aws_sts(&self) -> String {
        pick(
            self.aws.as_ref().and_then(|a| a.sts_url.as_deref()),
            real::AWS_STS,
        )
    }

    pub fn aws_secrets_manager(&self, region: &str) -> String {
        match self
            .aws
            .as_ref()
            .and_then(|a| a.secrets_manager_url.as_deref())
        {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => real::aws_secrets_manager(region),
        }
    }
}

impl EndpointsFile {
    /// The origins (`https://host[:port]`) of the file's Azure endpoints: the only hosts besides
    /// Key Vault's own domains that may receive a vault access token.
    pub fn azure_vault_origins(&self) -> Vec<String> {
        let Some(azure) = &self.azure else {
            return Vec::new();
        };
        [azure.vault_url.as_deref(), azure.authority_host.as_deref()]
            .into_iter()
            .flatten()
            .chain(azure.vaults.values().map(String::as_str))
            .filter_map(|url| {
                let rest = url.strip_prefix("https://")?;
                let authority = rest.split(['/', '?', '#']).next()?;
                (!authority.is_empty()).then(|| format!("https://{authority}").to_ascii_lowercase())
            })
            .collect()
    }
}

fn pick(overridden: Option<&str>, real: &str) -> String {
    overridden.unwrap_or(real).trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_entries_fall_back_to_the_real_clouds() {
        let file = EndpointsFile::from_json(
            r#"{"gcp": {"sts_url": "https://127.0.0.1:9/"}, "aws": {"region": "eu-west-1"}}"#,
        )
        .unwrap();
        assert_eq!(file.gcp_sts(), "https://127.0.0.1:9");
        assert_eq!(file.gcp_iam_credentials(), real::GCP_IAM_CREDENTIALS);
        assert_eq!(file.azure_authority_host(), real::AZURE_AUTHORITY_HOST);
        assert_eq!(
            file.aws_secrets_manager("eu-west-1"),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = EndpointsFile::from_json(r#"{"gcp": {"sts": "x"}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `sts`"), "{err}");
    }
}
