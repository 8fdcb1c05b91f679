//! Azure: the Microsoft Entra client-assertion token (workload identity federation) and Key
//! Vault secret get and list.

use keyward_core::endpoints::EndpointsFile;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Cause, CloudError, Presented, Refusal, Step};
use crate::secret::Secret;
use crate::transport::{Answer, Deadline, Transport};

/// The audience Entra expects in federated assertions.
pub const ASSERTION_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The scope of a token for any Key Vault's data plane.
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const API_VERSION: &str = "7.5";

/// An Entra access token for one resource.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_in: Option<u64>,
}

/// Entra's token response.
#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: Option<u64>,
}

impl From<TokenBody> for AccessToken {
    fn from(body: TokenBody) -> AccessToken {
        AccessToken {
            token: Secret::new(body.access_token),
            expires_in: body.expires_in,
        }
    }
}

#[derive(Clone)]
pub struct AzureClient {
    transport: Transport,
    authority: String,
    /// Hosts of the endpoints file that stand in for Key Vault (the simulator's).
    vault_origins: Vec<String>,
}

impl AzureClient {
    pub(crate) fn new(transport: Transport, endpoints: &EndpointsFile) -> AzureClient {
        AzureClient {
            transport,
            authority: endpoints.azure_authority_host(),
            vault_origins: endpoints.azure_vault_origins(),
        }
    }

    /// The tenant's token endpoint. The ids go into the URL and the form, so neither may be empty
    /// or carry URL syntax.
    fn token_url(
        &self,
        step: Step,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<String, CloudError> {
        for (what, value) in [("tenant id", tenant_id), ("client id", client_id)] {
            if value.is_empty() || value.contains(['/', '?', '#']) {
                return Err(CloudError::InvalidArgument {
                    step,
                    detail: format!("the {what} '{value}' is empty or contains '/', '?' or '#'"),
                });
            }
        }
        Ok(format!("{}/{tenant_id}/oauth2/v2.0/token", self.authority))
    }

    /// Exchanges Keyward's JWT, presented as the app's client assertion, for a token with `scope`
    /// (usually [`VAULT_SCOPE`]).
    pub async fn token(
        &self,
        tenant_id: &str,
        client_id: &str,
        assertion: &str,
        scope: &str,
        deadline: &Deadline,
    ) -> Result<AccessToken, CloudError> {
        let step = Step::EntraToken;
        let url = self.token_url(step, tenant_id, client_id)?;
        let presented = Presented::from_jwt(assertion);
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    Ok(self.transport.http().post(&url).form(&[
                        ("client_id", client_id),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", assertion),
                        ("grant_type", "client_credentials"),
                        ("scope", scope),
                    ]))
                },
                |a| entra_refusal(a, presented.clone()),
            )
            .await?;
        answer.json::<TokenBody>(step).map(AccessToken::from)
    }

    /// The static path: the App Registration's own client secret instead of an assertion.
    pub async fn client_secret_token(
        &self,
        tenant_id: &str,
        client_id: &str,
        client_secret: &Secret,
        scope: &str,
        deadline: &Deadline,
    ) -> Result<AccessToken, CloudError> {
        let step = Step::EntraClientSecret;
        let url = self.token_url(step, tenant_id, client_id)?;
        let answer = self
            .transport
            .call(
                step,
                deadline,
                || {
                    Ok(self.transport.http().post(&url).form(&[
                        ("client_id", client_id),
                        ("client_secret", client_secret.expose()),
                        ("grant_type", "client_credentials"),
                        ("scope", scope),
                    ]))
                },
                |a| {
                    let mut r = entra_refusal(a, None);
                    r.step = step;
                    r
                },
            )
            .await?;
        answer.json::<TokenBody>(step).map(AccessToken::from)
    }

    /// Reads a secret's current (or a given) version from the vault at `vault_url`.
    pub async fn get_secret(
        &self,
        token: &AccessToken,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        deadline: &Deadline,
    ) -> Result<Secret, CloudError> {
        let step = Step::KeyVaultGet;
        let vault = vault_base(step, vault_url, &self.vault_origins)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(CloudError::InvalidArgument {
                step,
                detail: format!(
                    "'{name}' is not a Key Vault secret name (1-127 letters, digits and dashes)"
                ),
            });
        }
        if let Some(v) = version
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(CloudError::InvalidArgument {
                step,
                detail: format!("'{v}' is not a Key Vault secret version (32 hex characters)"),
            });
        }
        let url = match version {
            Some(v) => format!("{vault}/secrets/{name}/{v}?api-version={API_VERSION}"),
            None => format!("{vault}/secrets/{name}?api-version={API_VERSION}"),
        };
        let answer = self
            .transport
            .get_with_bearer(step, deadline, &url, token.token.expose(), |a| {
                vault_refusal(step, a)
            })
            .await?;
        #[derive(Deserialize)]
        struct Bundle {
            value: String,
        }
        let body: Bundle = answer.json(step)?;
        Ok(Secret::new(body.value))
    }

    /// Names of the vault's secrets starting with `prefix`, all pages. Needs the role at vault
    /// scope: a role granted per secret cannot list.
    pub async fn list_secrets(
        &self,
        token: &AccessToken,
        vault_url: &str,
        prefix: &str,
        deadline: &Deadline,
    ) -> Result<Vec<String>, CloudError> {
        let step = Step::KeyVaultList;
        let vault = vault_base(step, vault_url, &self.vault_origins)?;
        let mut next = Some(format!(
            "{vault}/secrets?api-version={API_VERSION}&maxresults=25"
        ));
        let mut names = Vec::new();
        while let Some(url) = next.take() {
            let answer = self
                .transport
                .get_with_bearer(step, deadline, &url, token.token.expose(), |a| {
                    vault_refusal(step, a)
                })
                .await?;
            #[derive(Deserialize)]
            struct Item {
                id: String,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Page {
                #[serde(default)]
                value: Vec<Item>,
                next_link: Option<String>,
            }
            let page: Page = answer.json(step)?;
            names.extend(
                page.value
                    .into_iter()
                    .filter_map(|s| s.id.rsplit('/').next().map(str::to_owned))
                    .filter(|n| n.starts_with(prefix)),
            );
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                // The bearer token goes only to the vault it was asked for.
                if !link.starts_with(&format!("{vault}/")) {
                    return Err(answer
                        .unexpected(step, format!("nextLink {link} leaves the vault {vault}")));
                }
                next = Some(link);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// The vault's base URL, refused unless it is a Key Vault host (or the simulator's): the vault
/// token sent there opens every vault the app can reach.
fn vault_base(step: Step, vault_url: &str, origins: &[String]) -> Result<String, CloudError> {
    keyward_core::secrets::validate_vault_url(vault_url, origins).map_err(|e| {
        CloudError::InvalidArgument {
            step,
            detail: e.to_string(),
        }
    })?;
    Ok(vault_url.trim_end_matches('/').to_owned())
}

/// Entra's OAuth error: `{"error", "error_description": "AADSTS<n>: …", "error_codes": [n]}`.
fn entra_refusal(answer: &Answer, presented: Option<Presented>) -> Refusal {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let number = body["error_codes"][0].as_u64();
    let code = match number {
        Some(n) => format!("AADSTS{n}"),
        None => body["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", answer.status)),
    };
    let message = body["error_description"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| answer.text());
    let cause = match number {
        Some(70021) => Cause::FederatedCredentialMismatch,
        Some(700024) => Cause::TokenExpired,
        Some(50013) => Cause::UnknownSigningKey,
        Some(5002738) => Cause::UnsupportedAlgorithm,
        Some(700016) => Cause::ApplicationNotFound,
        Some(7000215) => Cause::ClientSecretInvalid,
        Some(7000222) => Cause::ClientSecretExpired,
        Some(90002) => Cause::TenantNotFound,
        Some(50027) => Cause::MalformedToken,
        Some(700211) => Cause::IssuerMismatch,
        Some(700212) => Cause::AudienceMismatch,
        Some(70011 | 900144) => Cause::BadRequest,
        _ => Cause::Other,
    };
    Refusal::new(
        Step::EntraToken,
        answer.status,
        code,
        message,
        cause,
        presented,
    )
}

/// Key Vault's error: `{"error": {"code", "message", "innererror": {"code"}}}`.
fn vault_refusal(step: Step, answer: &Answer) -> Refusal {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {}", answer.status));
    let inner = body["error"]["innererror"]["code"].as_str().unwrap_or("");
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| answer.text());
    let cause = match (answer.status, code.as_str()) {
        (403, _) if inner == "ForbiddenByPolicy" || inner == "AccessDenied" => {
            Cause::KeyVaultLegacyAccessPolicies
        }
        (403, _) if step == Step::KeyVaultList => Cause::KeyVaultListNeedsVaultScope,
        (403, _) => Cause::KeyVaultSecretRoleMissing,
        (404, _) | (_, "SecretNotFound") => Cause::SecretNotFound,
        (401, _) => Cause::KeyVaultWrongToken,
        (400, _) => Cause::BadRequest,
        _ => Cause::Other,
    };
    Refusal::new(step, answer.status, code, message, cause, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_urls_must_be_key_vault_hosts() {
        assert_eq!(
            vault_base(Step::KeyVaultGet, "https://kv1.vault.azure.net/", &[]).unwrap(),
            "https://kv1.vault.azure.net"
        );
        let sim = ["https://127.0.0.1:4443".to_owned()];
        assert_eq!(
            vault_base(Step::KeyVaultGet, "https://127.0.0.1:4443/v/", &sim).unwrap(),
            "https://127.0.0.1:4443/v"
        );
        for bad in [
            "http://kv1.vault.azure.net",
            "kv1.vault.azure.net",
            "",
            "https://attacker.example",
            "https://127.0.0.1:4443/v",
        ] {
            let err = vault_base(Step::KeyVaultGet, bad, &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not a Key Vault URL"), "{err}");
        }
    }
}
