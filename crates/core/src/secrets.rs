//! The secrets manager's vocabulary (SPEC §6): providers, authentication, static credential
//! fields, secret references with `#json_key`, the rules for each, and the sentences a secret that
//! did not resolve is reported in.

use thiserror::Error;

use crate::workload::CloudKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    AwsSecretsManager,
    GcpSecretManager,
    AzureKeyVault,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::AwsSecretsManager,
        ProviderKind::GcpSecretManager,
        ProviderKind::AzureKeyVault,
    ];

    pub fn parse(value: &str) -> Result<ProviderKind, SecretsError> {
        ProviderKind::ALL
            .into_iter()
            .find(|p| p.as_str() == value)
            .ok_or_else(|| SecretsError::UnknownProvider {
                value: value.to_owned(),
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::AwsSecretsManager => "aws_secrets_manager",
            ProviderKind::GcpSecretManager => "gcp_secret_manager",
            ProviderKind::AzureKeyVault => "azure_key_vault",
        }
    }

    /// The cloud whose workload identity can read it.
    pub fn cloud(self) -> CloudKind {
        match self {
            ProviderKind::AwsSecretsManager => CloudKind::Aws,
            ProviderKind::GcpSecretManager => CloudKind::Gcp,
            ProviderKind::AzureKeyVault => CloudKind::Azure,
        }
    }

    /// The fields of its `static` credentials: (name, required).
    pub fn static_fields(self) -> &'static [(&'static str, bool)] {
        match self {
            ProviderKind::AwsSecretsManager => &[
                ("access_key_id", true),
                ("secret_access_key", true),
                ("role_arn", false),
                ("external_id", false),
            ],
            ProviderKind::GcpSecretManager => &[("service_account_json", true)],
            ProviderKind::AzureKeyVault => &[
                ("tenant_id", true),
                ("client_id", true),
                ("client_secret", true),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    WorkloadIdentity,
    Static,
}

impl AuthKind {
    pub fn parse(value: &str) -> Result<AuthKind, SecretsError> {
        match value {
            "workload_identity" => Ok(AuthKind::WorkloadIdentity),
            "static" => Ok(AuthKind::Static),
            other => Err(SecretsError::UnknownAuth {
                value: other.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::WorkloadIdentity => "workload_identity",
            AuthKind::Static => "static",
        }
    }
}

/// `name` or `name#json_key`: the secret, and the field of its JSON object to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub json_key: Option<String>,
}

impl SecretRef {
    pub fn parse(value: &str) -> Result<SecretRef, SecretsError> {
        let (name, key) = match value.split_once('#') {
            Some((name, key)) => (name, Some(key)),
            None => (value, None),
        };
        let bad = |why: &'static str| SecretsError::SecretName {
            value: value.to_owned(),
            why,
        };
        if name.is_empty() || name.len() > 512 {
            return Err(bad("the name must be 1-512 characters"));
        }
        if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(
                "the name must not contain spaces or control characters",
            ));
        }
        if key.is_some_and(|k| k.is_empty() || k.contains('#')) {
            return Err(bad(
                "after '#' comes one JSON key, e.g. db-credentials#password",
            ));
        }
        Ok(SecretRef {
            name: name.to_owned(),
            json_key: key.map(str::to_owned),
        })
    }

    /// The name as the provider stores it: Key Vault does not allow `_`, so it becomes `-`.
    pub fn provider_name(&self, provider: ProviderKind) -> String {
        match provider {
            ProviderKind::AzureKeyVault => self.name.replace('_', "-"),
            _ => self.name.clone(),
        }
    }
}

/// One variable's secret as every resolution sentence names it: the variable, the provider, the
/// secret's name at the provider, the credential it is read through, and the `#json_key` to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretUse {
    pub key: String,
    pub provider: String,
    pub secret: String,
    pub credential: String,
    pub json_key: Option<String>,
}

impl SecretUse {
    /// The provider has no secret of that name.
    pub fn not_found(&self) -> ResolveError {
        ResolveError::SecretNotFound {
            of: Box::new(self.clone()),
        }
    }

    /// The read failed for another `reason` (the cloud's refusal, its cause and fix).
    pub fn read_failed(&self, reason: impl std::fmt::Display) -> ResolveError {
        ResolveError::Read {
            of: Box::new(self.clone()),
            reason: reason.to_string(),
        }
    }

    /// What the variable takes from the secret's `value`: `None` for all of it (no `#json_key`),
    /// else the key's field of the JSON object, strings as they are and other values as JSON.
    pub fn take(&self, value: &str) -> Result<Option<String>, ResolveError> {
        let Some(key) = &self.json_key else {
            return Ok(None);
        };
        let Ok(serde_json::Value::Object(object)) = serde_json::from_str(value) else {
            return Err(ResolveError::NotJsonObject {
                of: Box::new(self.clone()),
            });
        };
        match object.get(key) {
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Ok(Some(other.to_string())),
            None => Err(ResolveError::JsonKeyNotFound {
                of: Box::new(self.clone()),
                json_key: key.clone(),
            }),
        }
    }
}

/// Why a variable's secret did not resolve, in the sentences `keyward run` and the server show.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error(
        "secret not found: {} ({} secret '{}' through credential '{}')",
        .of.key, .of.provider, .of.secret, .of.credential
    )]
    SecretNotFound { of: Box<SecretUse> },
    #[error("{}: {} secret '{}': {reason}", .of.key, .of.provider, .of.secret)]
    Read { of: Box<SecretUse>, reason: String },
    #[error(
        "JSON key not found: {} ('{json_key}' in {} secret '{}')",
        .of.key, .of.provider, .of.secret
    )]
    JsonKeyNotFound {
        of: Box<SecretUse>,
        json_key: String,
    },
    #[error(
        "JSON key not found: {} ({} secret '{}' is not a JSON object)",
        .of.key, .of.provider, .of.secret
    )]
    NotJsonObject { of: Box<SecretUse> },
}

/// A GCP project id (`my-project`) or number (`123456789012`).
pub fn validate_gcp_project(project: &str) -> Result<(), SecretsError> {
    let number = !project.is_empty() && project.bytes().all(|b| b.is_ascii_digit());
    let id = (6..=30).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && !project.ends_with('-')
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if number || id {
        Ok(())
    } else {
        Err(SecretsError::Project {
            value: project.to_owned(),
        })
    }
}

/// Key Vault's DNS suffixes in Azure's public and sovereign clouds. A vault URL elsewhere would
/// receive the vault access token Keyward obtains with the stored credential, so no other host is
/// ever sent one (but a simulator's, see [`validate_vault_url`]).
pub const KEY_VAULT_SUFFIXES: &[&str] = &[
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
];

/// `https://<vault>.vault.azure.net` (or a sovereign cloud's Key Vault domain), or a URL on one of
/// `extra_origins` (`https://host[:port]`, the simulator's from the endpoints file).
pub fn validate_vault_url(url: &str, extra_origins: &[String]) -> Result<(), SecretsError> {
    let refuse = |why: &'static str| SecretsError::VaultUrl {
        value: url.to_owned(),
        why,
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse("it contains spaces or control characters"));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(refuse("it must start with https://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(refuse("it has no host"));
    }
    if authority.contains(['@', '\\']) {
        return Err(refuse("it carries user information"));
    }
    let origin = format!("https://{authority}").to_ascii_lowercase();
    if extra_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    {
        return Ok(());
    }
    let host = authority.to_ascii_lowercase();
    let vault_name = KEY_VAULT_SUFFIXES
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix));
    match vault_name {
        // Key Vault names: 3-24 characters, letters, digits and dashes, starting with a letter.
        Some(name)
            if (3..=24).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Ok(())
        }
        Some(_) => Err(refuse(
            "the vault name before the Key Vault domain is not 3-24 letters, digits or dashes",
        )),
        None => Err(refuse(
            "its host is not a Key Vault domain (*.vault.azure.net, *.vault.azure.cn, *.vault.usgovcloudapi.net) nor a host of the KEYWARD_CLOUD_ENDPOINTS file",
        )),
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error(
        "provider must be aws_secrets_manager, gcp_secret_manager or azure_key_vault, not {value:?}"
    )]
    UnknownProvider { value: String },
    #[error("auth must be workload_identity or static, not {value:?}")]
    UnknownAuth { value: String },
    #[error("secret_name {value:?} is not usable: {why}")]
    SecretName { value: String, why: &'static str },
    #[error("project {value:?} is not a GCP project id (my-project) or number (123456789012)")]
    Project { value: String },
    #[error(
        "vault_url {value:?} is not a Key Vault URL such as https://my-vault.vault.azure.net: {why}"
    )]
    VaultUrl { value: String, why: &'static str },
}

impl SecretsError {
    pub fn field(&self) -> &'static str {
        match self {
            SecretsError::UnknownProvider { .. } => "provider",
            SecretsError::UnknownAuth { .. } => "auth",
            SecretsError::SecretName { .. } => "secret_name",
            SecretsError::Project { .. } => "project",
            SecretsError::VaultUrl { .. } => "vault_url",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_split_at_the_json_key_and_azure_names_use_dashes() {
        let r = SecretRef::parse("db_credentials#password").unwrap();
        assert_eq!(
            (r.name.as_str(), r.json_key.as_deref()),
            ("db_credentials", Some("password"))
        );
        assert_eq!(
            r.provider_name(ProviderKind::AzureKeyVault),
            "db-credentials"
        );
        assert_eq!(
            r.provider_name(ProviderKind::AwsSecretsManager),
            "db_credentials"
        );
        assert_eq!(SecretRef::parse("plain").unwrap().json_key, None);
        for bad in ["", "#key", "name#", "a#b#c", "has space"] {
            let err = SecretRef::parse(bad).unwrap_err();
            assert_eq!(err.field(), "secret_name", "{bad:?}");
        }
    }

    fn used(json_key: Option<&str>) -> SecretUse {
        SecretUse {
            key: "DB_PASSWORD".into(),
            provider: "aws_secrets_manager".into(),
            secret: "db".into(),
            credential: "aws".into(),
            json_key: json_key.map(str::to_owned),
        }
    }

    #[test]
    fn json_keys_take_one_field_and_a_missing_one_names_the_variable() {
        let secret = r#"{"username": "crew", "password": "pw", "port": 5432}"#;
        assert_eq!(
            used(Some("password")).take(secret).unwrap().as_deref(),
            Some("pw")
        );
        assert_eq!(
            used(Some("port")).take(secret).unwrap().as_deref(),
            Some("5432")
        );
        assert_eq!(used(None).take(secret).unwrap(), None);
        assert_eq!(
            used(Some("host")).take(secret).unwrap_err().to_string(),
            "JSON key not found: DB_PASSWORD ('host' in aws_secrets_manager secret 'db')"
        );
        for not_an_object in ["plain", "[1]", "\"text\""] {
            assert_eq!(
                used(Some("x")).take(not_an_object).unwrap_err().to_string(),
                "JSON key not found: DB_PASSWORD (aws_secrets_manager secret 'db' is not a JSON object)"
            );
        }
        assert_eq!(
            used(None).not_found().to_string(),
            "secret not found: DB_PASSWORD (aws_secrets_manager secret 'db' through credential 'aws')"
        );
        assert_eq!(
            used(None).read_failed("HTTP 403").to_string(),
            "DB_PASSWORD: aws_secrets_manager secret 'db': HTTP 403"
        );
    }

    #[test]
    fn providers_auth_projects_and_vault_urls_are_checked() {
        assert_eq!(
            ProviderKind::parse("azure_key_vault").unwrap().cloud(),
            CloudKind::Azure
        );
        assert_eq!(
            ProviderKind::parse("vault").unwrap_err().field(),
            "provider"
        );
        assert_eq!(AuthKind::parse("oauth").unwrap_err().field(), "auth");
        for good in ["keyward-demo", "123456789012"] {
            validate_gcp_project(good).unwrap();
        }
        for bad in ["Keyward", "ab", "-demo-", "projects/x"] {
            assert!(validate_gcp_project(bad).is_err(), "{bad}");
        }
        for good in [
            "https://my-vault.vault.azure.net",
            "https://My-Vault.vault.azure.net/",
            "https://kv1.vault.azure.cn",
            "https://kv1.vault.usgovcloudapi.net/secrets",
        ] {
            validate_vault_url(good, &[]).unwrap();
        }
        // A simulator's host is a vault only when the endpoints file names it (M1).
        let sim = ["https://127.0.0.1:8443".to_owned()];
        validate_vault_url("https://127.0.0.1:8443/keyward-demo-vault", &sim).unwrap();
        for bad in [
            "http://my-vault.vault.azure.net",
            "my-vault",
            "https://",
            "https://attacker.example",
            "https://127.0.0.1:8443",
            "https://127.0.0.1:9999/x",
            "https://vault.azure.net.attacker.example",
            "https://attacker.example/.vault.azure.net",
            "https://x@my-vault.vault.azure.net",
            "https://my-vault.vault.azure.net:8443",
            "https://ab.vault.azure.net",
            "https://my-vault.vault.azure.net\t/",
            "https://evil.example\\@my-vault.vault.azure.net",
        ] {
            let sim = if bad.contains("9999") { &sim[..] } else { &[] };
            assert!(validate_vault_url(bad, sim).is_err(), "{bad}");
        }
    }
}
