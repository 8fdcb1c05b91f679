//! The `[azure]` section: tenants, app registrations with their federated credentials and
//! client secrets, and Key Vaults with their role assignments and secrets.

use serde::Deserialize;

use super::check::{Checker, S, SecretDecl};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureState {
    #[serde(default)]
    pub tenants: Vec<S<String>>,
    #[serde(default)]
    pub apps: Vec<AzureApp>,
    #[serde(default)]
    pub vaults: Vec<AzureVault>,
    /// The Azure OpenAI resource behind `/openai/deployments/…` (one per simulated world).
    #[serde(default)]
    pub openai: Option<AzureOpenAi>,
}

/// An Azure OpenAI resource: its tenant, deployments, and who may call them (Azure RBAC on the
/// data plane, as Azure OpenAI checks it for Entra tokens).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureOpenAi {
    pub tenant: S<String>,
    #[serde(default)]
    pub deployments: Vec<S<String>>,
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
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

pub const KEY_VAULT_ROLES: &[&str] = &[
    "Key Vault Secrets User",
    "Key Vault Secrets Officer",
    "Key Vault Administrator",
];

impl Checker<'_> {
    pub(super) fn azure(&mut self, azure: &AzureState) {
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
}
