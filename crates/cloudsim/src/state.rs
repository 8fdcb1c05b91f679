//! The state file: the cloud side of a federation setup, declared in TOML.
//!
//! Syntax and type errors come from the TOML parser with their line; every semantic check below
//! keeps the span of the value it looks at, so a bad state file is refused at load with the line
//! and the field named (`line 11: gcp.providers[0].attribute_condition: …`).

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::condition::{Condition, Mapping};

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state file {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("state file {path}, line {line}: {field}: {message}")]
    Invalid {
        path: String,
        line: usize,
        field: String,
        message: String,
    },
    #[error("state file {path}: cannot read it: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

type S<T> = Spanned<T>;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    pub name: S<String>,
    /// The current value; `versions` lists older ones first when history matters.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureState {
    #[serde(default)]
    pub tenants: Vec<S<String>>,
    #[serde(default)]
    pub apps: Vec<AzureApp>,
    #[serde(default)]
    pub vaults: Vec<AzureVault>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureApp {
    pub tenant: S<String>,
    pub client_id: S<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
    /// Client secrets (the static-credentials path: `client_secret` in the token request).
    #[serde(default)]
    pub client_secrets: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    pub issuer: S<String>,
    pub subject: S<String>,
    pub audiences: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureVault {
    pub name: S<String>,
    pub tenant: S<String>,
    /// `false`: the vault still uses legacy access policies and refuses every RBAC caller.
    #[serde(default = "yes")]
    pub rbac: bool,
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// The app registration's client id.
    pub principal: S<String>,
    pub role: S<String>,
    /// Set: the assignment is scoped to this one secret, not the vault.
    #[serde(default)]
    pub secret: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsState {
    pub account_id: S<String>,
    pub region: S<String>,
    #[serde(default)]
    pub oidc_providers: Vec<AwsOidcProvider>,
    #[serde(default)]
    pub roles: Vec<AwsRole>,
    /// IAM users with long-lived access keys (the static-credentials path).
    #[serde(default)]
    pub users: Vec<AwsUser>,
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsUser {
    pub name: S<String>,
    pub access_key_id: S<String>,
    pub secret_access_key: S<String>,
    #[serde(default)]
    pub policies: Vec<AwsPolicyStatement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsOidcProvider {
    pub url: S<String>,
    pub client_ids: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsRole {
    pub name: S<String>,
    pub trust: AwsTrust,
    #[serde(default)]
    pub policies: Vec<AwsPolicyStatement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsTrust {
    /// `arn:aws:iam::<account>:oidc-provider/<issuer host and path>`
    #[serde(default)]
    pub federated: Option<S<String>>,
    /// IAM principals allowed to call `sts:AssumeRole` (user ARNs or the account root).
    #[serde(default)]
    pub aws: Vec<S<String>>,
    /// `StringEquals` conditions, keyed `<issuer host>:sub` / `<issuer host>:aud`, or
    /// `sts:ExternalId` for AWS principals.
    #[serde(default)]
    pub string_equals: BTreeMap<String, S<String>>,
    /// `StringLike` conditions (`*` and `?` wildcards).
    #[serde(default)]
    pub string_like: BTreeMap<String, S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsPolicyStatement {
    pub actions: Vec<S<String>>,
    pub resources: Vec<S<String>>,
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

struct Checker<'a> {
    path: &'a str,
    text: &'a str,
    error: Option<StateError>,
}

impl Checker<'_> {
    fn fail(
        &mut self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        if self.error.is_some() {
            return;
        }
        let line = self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        self.error = Some(StateError::Invalid {
            path: self.path.to_owned(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

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

    fn gcp(&mut self, gcp: &GcpState) -> Vec<(Mapping, Option<Condition>)> {
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

    fn azure(&mut self, azure: &AzureState) {
        for (i, t) in azure.tenants.iter().enumerate() {
            self.guid(t, &format!("azure.tenants[{i}]"));
        }
        let tenant_known = |t: &str| azure.tenants.iter().any(|x| x.get_ref() == t);
        for (i, app) in azure.apps.iter().enumerate() {
            let at = format!("azure.apps[{i}]");
            self.guid(&app.client_id, &format!("{at}.client_id"));
            if !tenant_known(app.tenant.get_ref()) {
                self.fail(
                    app.tenant.span(),
                    format!("{at}.tenant"),
                    format!(
                        "tenant '{}' is not listed in azure.tenants",
                        app.tenant.get_ref()
                    ),
                );
            }
            for (j, fic) in app.federated_credentials.iter().enumerate() {
                let at = format!("{at}.federated_credentials[{j}]");
                self.https_url(&fic.issuer, &format!("{at}.issuer"));
                if fic.subject.get_ref().is_empty() {
                    self.fail(
                        fic.subject.span(),
                        format!("{at}.subject"),
                        "must not be empty",
                    );
                }
                if fic.audiences.len() != 1 {
                    let span = fic.issuer.span();
                    self.fail(span, format!("{at}.audiences"), "Entra takes exactly one audience per federated credential (api://AzureADTokenExchange)");
                }
            }
        }
        for (i, vault) in azure.vaults.iter().enumerate() {
            let at = format!("azure.vaults[{i}]");
            let name = vault.name.get_ref();
            let name_ok = (3..=24).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !name_ok {
                self.fail(
                    vault.name.span(),
                    format!("{at}.name"),
                    "a vault name is 3–24 letters, digits and hyphens, starting with a letter",
                );
            }
            if !tenant_known(vault.tenant.get_ref()) {
                self.fail(
                    vault.tenant.span(),
                    format!("{at}.tenant"),
                    format!(
                        "tenant '{}' is not listed in azure.tenants",
                        vault.tenant.get_ref()
                    ),
                );
            }
            for (j, ra) in vault.role_assignments.iter().enumerate() {
                let at = format!("{at}.role_assignments[{j}]");
                if !KEY_VAULT_ROLES.contains(&ra.role.get_ref().as_str()) {
                    self.fail(
                        ra.role.span(),
                        format!("{at}.role"),
                        format!("unknown role; use one of {}", KEY_VAULT_ROLES.join(", ")),
                    );
                }
                if !azure
                    .apps
                    .iter()
                    .any(|a| a.client_id.get_ref() == ra.principal.get_ref())
                {
                    self.fail(
                        ra.principal.span(),
                        format!("{at}.principal"),
                        format!(
                            "no app registration with client_id '{}' is declared",
                            ra.principal.get_ref()
                        ),
                    );
                }
                if let Some(secret) = &ra.secret
                    && !vault
                        .secrets
                        .iter()
                        .any(|s| s.name.get_ref() == secret.get_ref())
                {
                    self.fail(
                        secret.span(),
                        format!("{at}.secret"),
                        format!("no secret '{}' in this vault", secret.get_ref()),
                    );
                }
            }
            for s in &vault.secrets {
                let n = s.name.get_ref();
                if n.is_empty()
                    || n.len() > 127
                    || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    self.fail(s.name.span(), format!("{at}.secrets.name"), "Key Vault secret names are 1–127 letters, digits and hyphens (no underscores)");
                }
            }
            self.secrets(&vault.secrets, &format!("{at}.secrets"));
        }
    }

    fn aws(&mut self, aws: &AwsState) {
        let acct = aws.account_id.get_ref();
        if acct.len() != 12 || !acct.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(
                aws.account_id.span(),
                "aws.account_id",
                "an AWS account id is 12 digits",
            );
        }
        let region = aws.region.get_ref();
        if region.split('-').count() < 3 {
            self.fail(
                aws.region.span(),
                "aws.region",
                format!("'{region}' is not a region name like us-east-1"),
            );
        }
        for (i, p) in aws.oidc_providers.iter().enumerate() {
            self.https_url(&p.url, &format!("aws.oidc_providers[{i}].url"));
            if p.client_ids.is_empty() {
                self.fail(
                    p.url.span(),
                    format!("aws.oidc_providers[{i}].client_ids"),
                    "at least one client id (audience) is required, usually sts.amazonaws.com",
                );
            }
        }
        for (i, role) in aws.roles.iter().enumerate() {
            let at = format!("aws.roles[{i}]");
            let trust = &role.trust;
            match (&trust.federated, trust.aws.is_empty()) {
                (Some(federated), true) => {
                    let fed = federated.get_ref();
                    let prefix = format!("arn:aws:iam::{acct}:oidc-provider/");
                    match fed.strip_prefix(&prefix) {
                        Some(host) if !host.starts_with("http") && !host.ends_with('/') && !host.is_empty() => {
                            if !aws.oidc_providers.iter().any(|p| provider_host(p.url.get_ref()) == host) {
                                self.fail(federated.span(), format!("{at}.trust.federated"), format!("no [[aws.oidc_providers]] entry has the host '{host}'"));
                            }
                        }
                        _ => self.fail(
                            federated.span(),
                            format!("{at}.trust.federated"),
                            format!("must be {prefix}<issuer host> — the host without https:// and without a trailing slash"),
                        ),
                    }
                    for key in trust.string_equals.keys().chain(trust.string_like.keys()) {
                        if !(key.ends_with(":sub") || key.ends_with(":aud")) {
                            self.fail(federated.span(), format!("{at}.trust"), format!("condition key '{key}' is not supported: AWS only evaluates <host>:sub and <host>:aud for OIDC providers"));
                        }
                    }
                }
                (None, false) => {
                    for principal in &trust.aws {
                        let p = principal.get_ref();
                        let user = p
                            .strip_prefix(&format!("arn:aws:iam::{acct}:user/"))
                            .is_some_and(|u| aws.users.iter().any(|x| x.name.get_ref() == u));
                        if !(user || p == &format!("arn:aws:iam::{acct}:root")) {
                            self.fail(principal.span(), format!("{at}.trust.aws"), format!("'{p}' is not arn:aws:iam::{acct}:root or the ARN of a declared [[aws.users]] entry"));
                        }
                    }
                    for key in trust.string_equals.keys().chain(trust.string_like.keys()) {
                        if key != "sts:ExternalId" {
                            self.fail(role.name.span(), format!("{at}.trust"), format!("condition key '{key}' is not supported for AWS principals: use sts:ExternalId"));
                        }
                    }
                }
                _ => self.fail(
                    role.name.span(),
                    format!("{at}.trust"),
                    "set exactly one of federated (an OIDC provider, for workload identity) or aws (IAM principals, for AssumeRole with access keys)",
                ),
            }
            for (j, st) in role.policies.iter().enumerate() {
                for a in &st.actions {
                    let a_ref = a.get_ref();
                    if !(a_ref == "*" || a_ref.contains(':')) {
                        self.fail(
                            a.span(),
                            format!("{at}.policies[{j}].actions"),
                            format!(
                                "'{a_ref}' is not an action like secretsmanager:GetSecretValue"
                            ),
                        );
                    }
                }
                for r in &st.resources {
                    let r_ref = r.get_ref();
                    if !(r_ref == "*" || r_ref.starts_with("arn:aws:")) {
                        self.fail(
                            r.span(),
                            format!("{at}.policies[{j}].resources"),
                            format!("'{r_ref}' is not an ARN pattern or \"*\""),
                        );
                    }
                }
            }
        }
        self.secrets(&aws.secrets, "aws.secrets");
    }

    fn secrets(&mut self, secrets: &[SecretDecl], field: &str) {
        let mut seen = std::collections::BTreeSet::new();
        for s in secrets {
            if !seen.insert(s.name.get_ref().clone()) {
                self.fail(
                    s.name.span(),
                    format!("{field}.name"),
                    format!("secret '{}' is declared twice", s.name.get_ref()),
                );
            }
            if s.value.is_none() && s.versions.is_empty() {
                self.fail(
                    s.name.span(),
                    format!("{field}.value"),
                    format!("secret '{}' needs a value (or versions)", s.name.get_ref()),
                );
            }
        }
    }

    fn guid(&mut self, value: &S<String>, field: &str) {
        if uuid::Uuid::parse_str(value.get_ref()).is_err() {
            self.fail(
                value.span(),
                field.to_owned(),
                format!("'{}' is not a GUID", value.get_ref()),
            );
        }
    }

    fn https_url(&mut self, value: &S<String>, field: &str) {
        let v = value.get_ref();
        if !v.starts_with("https://") || v.len() <= "https://".len() {
            self.fail(
                value.span(),
                field.to_owned(),
                format!("'{v}' must be an https:// URL"),
            );
        }
    }
}

pub const KEY_VAULT_ROLES: &[&str] = &[
    "Key Vault Secrets User",
    "Key Vault Secrets Officer",
    "Key Vault Administrator",
];

/// What AWS calls an OIDC provider: the issuer URL without its scheme or a trailing slash.
pub fn provider_host(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .unwrap_or(issuer)
        .trim_end_matches('/')
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

impl SecretDecl {
    /// Every version in order, the current one last.
    pub fn all_versions(&self) -> Vec<String> {
        let mut v = self.versions.clone();
        if let Some(value) = &self.value {
            v.push(value.clone());
        }
        v
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
