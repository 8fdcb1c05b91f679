//! The state file: the cloud side of a federation setup, declared in TOML.
//!
//! Syntax and type errors come from the TOML parser with their line; every semantic check (one
//! module a cloud) keeps the span of the value it looks at, so a bad state file is refused at
//! load with the line and the field named (`line 11: gcp.providers[0].attribute_condition: …`).

mod aws;
mod azure;
mod check;
mod gcp;

use serde::Deserialize;

use crate::condition::{Condition, Mapping};

pub use self::aws::{
    AwsOidcProvider, AwsPolicyStatement, AwsRole, AwsState, AwsTrust, AwsUser, provider_host,
};
pub use self::azure::{
    AzureApp, AzureState, AzureVault, FederatedCredential, KEY_VAULT_ROLES, RoleAssignment,
};
use self::check::Checker;
pub use self::check::{SecretDecl, StateError};
pub use self::gcp::{GcpBinding, GcpProvider, GcpServiceAccount, GcpState};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    #[serde(default)]
    pub gcp: Option<GcpState>,
    #[serde(default)]
    pub azure: Option<AzureState>,
    #[serde(default)]
    pub aws: Option<AwsState>,
}

/// A loaded, checked state file, with the parsed conditions beside the raw declarations.
#[derive(Debug)]
pub struct State {
    pub file: StateFile,
    /// Per GCP provider, in declaration order.
    pub gcp_rules: Vec<(Mapping, Option<Condition>)>,
}

impl State {
    pub fn load(path: &std::path::Path) -> Result<Self, StateError> {
        let text = std::fs::read_to_string(path).map_err(|source| StateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Self, StateError> {
        let file: StateFile = toml::from_str(text).map_err(|e| StateError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let mut check = Checker {
            path,
            text,
            error: None,
        };
        let gcp_rules = check.all(&file);
        match check.error {
            Some(error) => Err(error),
            None => Ok(State { file, gcp_rules }),
        }
    }
}

impl Checker<'_> {
    fn all(&mut self, file: &StateFile) -> Vec<(Mapping, Option<Condition>)> {
        let mut rules = Vec::new();
        if let Some(gcp) = &file.gcp {
            rules = self.gcp(gcp);
        }
        if let Some(azure) = &file.azure {
            self.azure(azure);
        }
        if let Some(aws) = &file.aws {
            self.aws(aws);
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gcp]
project_id = "keyward-demo"
project_number = "123456789012"

[[gcp.providers]]
pool = "keyward-pool"
id = "keyward"
issuer = "https://127.0.0.1:8443"
attribute_mapping = { "google.subject" = "assertion.sub", "attribute.organization" = "assertion.organization_id" }
attribute_condition = "assertion.organization_id == 'b1e7c3a4-0000-4000-8000-000000000001'"

[[gcp.secrets]]
name = "api-key"
value = "v"
"#;

    fn err(text: &str) -> String {
        State::parse("state.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file_loads() {
        let state = State::parse("state.toml", GOOD).unwrap();
        assert_eq!(state.gcp_rules.len(), 1);
    }

    #[test]
    fn a_project_id_in_the_number_field_is_named_with_its_line() {
        let e = err(&GOOD.replace("\"123456789012\"", "\"my-project\""));
        assert!(e.contains("line 4: gcp.project_number"), "{e}");
        assert!(e.contains("not a project number"), "{e}");
    }

    #[test]
    fn a_broken_condition_is_named_with_its_line() {
        let e = err(&GOOD.replace("== 'b1e7", "=== 'b1e7"));
        assert!(
            e.contains("line 11: gcp.providers[0].attribute_condition"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_by_the_parser_with_its_line() {
        let e = err(&GOOD.replace("issuer =", "isuer ="));
        assert!(e.contains("line 9"), "{e}");
        assert!(e.contains("unknown field `isuer`"), "{e}");
    }

    #[test]
    fn a_wrong_type_is_refused_with_its_line() {
        let e = err(&GOOD.replace("value = \"v\"", "value = 3"));
        assert!(e.contains("line 15"), "{e}");
    }

    #[test]
    fn aws_trust_with_a_scheme_in_the_provider_arn_is_refused() {
        let text = r#"
[aws]
account_id = "123456789012"
region = "us-east-1"
[[aws.oidc_providers]]
url = "https://kw.example"
client_ids = ["sts.amazonaws.com"]
[[aws.roles]]
name = "r"
[aws.roles.trust]
federated = "arn:aws:iam::123456789012:oidc-provider/https://kw.example"
"#;
        let e = err(text);
        assert!(e.contains("line 11: aws.roles[0].trust.federated"), "{e}");
        assert!(e.contains("without https://"), "{e}");
    }

    #[test]
    fn an_azure_app_in_an_undeclared_tenant_is_refused() {
        let text = r#"
[azure]
tenants = ["11111111-1111-1111-1111-111111111111"]
[[azure.apps]]
tenant = "22222222-2222-2222-2222-222222222222"
client_id = "33333333-3333-3333-3333-333333333333"
"#;
        let e = err(text);
        assert!(e.contains("line 5: azure.apps[0].tenant"), "{e}");
    }
}
