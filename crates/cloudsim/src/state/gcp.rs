//! The `[gcp]` section: projects, workload identity providers, service accounts, IAM bindings
//! and Secret Manager secrets, and the checks GCP itself would make on them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::check::{Checker, S, SecretDecl};
use crate::condition::{Condition, Mapping};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpState {
    pub project_id: S<String>,
    pub project_number: S<String>,
    #[serde(default)]
    pub providers: Vec<GcpProvider>,
    #[serde(default)]
    pub service_accounts: Vec<GcpServiceAccount>,
    /// Project-level (or, with `secret`, per-secret) IAM bindings for any principal.
    #[serde(default)]
    pub bindings: Vec<GcpBinding>,
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpProvider {
    pub pool: S<String>,
    pub id: S<String>,
    pub issuer: S<String>,
    /// Empty: the provider's own `//iam.googleapis.com/…` name is the only accepted audience.
    #[serde(default)]
    pub allowed_audiences: Vec<S<String>>,
    #[serde(default = "default_mapping")]
    pub attribute_mapping: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub attribute_condition: Option<S<String>>,
    #[serde(default)]
    pub disabled: bool,
}

fn default_mapping() -> BTreeMap<String, S<String>> {
    BTreeMap::from([(
        "google.subject".to_owned(),
        Spanned::new(0..0, "assertion.sub".to_owned()),
    )])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpServiceAccount {
    pub email: S<String>,
    /// Members holding `roles/iam.workloadIdentityUser` on this service account.
    #[serde(default)]
    pub workload_identity_users: Vec<S<String>>,
    /// Project roles granted to the service account itself.
    #[serde(default)]
    pub roles: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpBinding {
    pub member: S<String>,
    pub role: S<String>,
    /// Set: the binding is on this one secret, not the project.
    #[serde(default)]
    pub secret: Option<S<String>>,
}

impl Checker<'_> {
    pub(super) fn gcp(&mut self, gcp: &GcpState) -> Vec<(Mapping, Option<Condition>)> {
        let number = gcp.project_number.get_ref();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(
                gcp.project_number.span(),
                "gcp.project_number",
                format!("'{number}' is not a project number: it must be all digits (the project id goes in gcp.project_id)"),
            );
        }
        if !is_gcp_id(gcp.project_id.get_ref()) {
            self.fail(
                gcp.project_id.span(),
                "gcp.project_id",
                "a project id is 6–30 lowercase letters, digits and hyphens, starting with a letter",
            );
        }
        let mut rules = Vec::new();
        for (i, p) in gcp.providers.iter().enumerate() {
            let at = format!("gcp.providers[{i}]");
            for (field, value) in [("pool", &p.pool), ("id", &p.id)] {
                if !is_gcp_short_id(value.get_ref()) {
                    self.fail(
                        value.span(),
                        format!("{at}.{field}"),
                        "must be 4–32 lowercase letters, digits and hyphens",
                    );
                }
            }
            self.https_url(&p.issuer, &format!("{at}.issuer"));
            let mapping = match Mapping::parse(
                p.attribute_mapping
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.get_ref().as_str())),
            ) {
                Ok(m) => m,
                Err(e) => {
                    let span = p
                        .attribute_mapping
                        .values()
                        .next()
                        .map(|v| v.span())
                        .unwrap_or(p.pool.span());
                    self.fail(span, format!("{at}.attribute_mapping"), e.to_string());
                    Mapping::default()
                }
            };
            let condition = match &p.attribute_condition {
                None => None,
                Some(text) => match Condition::parse(text.get_ref()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.fail(
                            text.span(),
                            format!("{at}.attribute_condition"),
                            e.to_string(),
                        );
                        None
                    }
                },
            };
            rules.push((mapping, condition));
        }
        for (i, sa) in gcp.service_accounts.iter().enumerate() {
            let at = format!("gcp.service_accounts[{i}]");
            if !sa.email.get_ref().ends_with(".iam.gserviceaccount.com")
                || !sa.email.get_ref().contains('@')
            {
                self.fail(
                    sa.email.span(),
                    format!("{at}.email"),
                    "a service account email looks like <name>@<project>.iam.gserviceaccount.com",
                );
            }
            for (j, m) in sa.workload_identity_users.iter().enumerate() {
                self.gcp_member(m, &format!("{at}.workload_identity_users[{j}]"));
            }
            for (j, r) in sa.roles.iter().enumerate() {
                self.gcp_role(r, &format!("{at}.roles[{j}]"));
            }
        }
        for (i, b) in gcp.bindings.iter().enumerate() {
            let at = format!("gcp.bindings[{i}]");
            self.gcp_member(&b.member, &format!("{at}.member"));
            self.gcp_role(&b.role, &format!("{at}.role"));
            if let Some(secret) = &b.secret
                && !gcp
                    .secrets
                    .iter()
                    .any(|s| s.name.get_ref() == secret.get_ref())
            {
                self.fail(
                    secret.span(),
                    format!("{at}.secret"),
                    format!(
                        "no secret '{}' is declared under [[gcp.secrets]]",
                        secret.get_ref()
                    ),
                );
            }
        }
        self.secrets(&gcp.secrets, "gcp.secrets");
        rules
    }

    fn gcp_member(&mut self, member: &S<String>, field: &str) {
        let m = member.get_ref();
        let ok = if let Some(rest) = m.strip_prefix("principalSet://iam.googleapis.com/") {
            let parts: Vec<&str> = rest.split('/').collect();
            parts.len() >= 7
                && parts[0] == "projects"
                && parts[1].bytes().all(|b| b.is_ascii_digit())
                && parts[2] == "locations"
                && parts[4] == "workloadIdentityPools"
                && (parts[6] == "*" || parts[6].starts_with("attribute.") || parts[6] == "group")
        } else if let Some(rest) = m.strip_prefix("principal://iam.googleapis.com/") {
            rest.starts_with("projects/") && rest.contains("/subject/")
        } else {
            m.starts_with("serviceAccount:") || m.starts_with("user:")
        };
        if !ok {
            self.fail(
                member.span(),
                field.to_owned(),
                format!(
                    "'{m}' is not a member GCP accepts; use principalSet://iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<pool>/attribute.<name>/<value>, principal://…/subject/<sub> or serviceAccount:<email>"
                ),
            );
        }
    }

    fn gcp_role(&mut self, role: &S<String>, field: &str) {
        if !role.get_ref().starts_with("roles/") {
            self.fail(
                role.span(),
                field.to_owned(),
                format!(
                    "'{}' is not a role name: roles look like roles/aiplatform.user",
                    role.get_ref()
                ),
            );
        }
    }
}

fn is_gcp_id(id: &str) -> bool {
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_gcp_short_id(id: &str) -> bool {
    (4..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
