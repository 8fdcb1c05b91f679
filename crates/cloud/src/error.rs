//! What went wrong talking to a cloud, in the cloud's words and in ours.
//!
//! A [`Refusal`] keeps the provider's own status and code (`unauthorized_client`,
//! `AADSTS70021`, `AccessDenied`, …) and adds the [`Cause`] behind it with the fix, worded as the
//! reference troubleshooting tables word them, so the person reading the error at 3 a.m. knows
//! which setting on which side to change.

use std::fmt;
use std::time::Duration;

use base64::Engine;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    Gcp,
    Azure,
    Aws,
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
            Cloud::Aws => "aws",
        })
    }
}

/// One call of the federation chain; errors name it so a reader knows how far the chain got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    GcpStsExchange,
    GcpServiceAccountKey,
    GcpImpersonation,
    GcpSecretAccess,
    GcpSecretList,
    GcpVertex,
    EntraToken,
    EntraClientSecret,
    KeyVaultGet,
    KeyVaultList,
    AwsAssumeRole,
    AwsAssumeRoleStatic,
    AwsCallerIdentity,
    AwsSecretGet,
    AwsSecretList,
}

impl Step {
    pub fn cloud(self) -> Cloud {
        match self {
            Step::GcpStsExchange
            | Step::GcpServiceAccountKey
            | Step::GcpImpersonation
            | Step::GcpSecretAccess
            | Step::GcpSecretList
            | Step::GcpVertex => Cloud::Gcp,
            Step::EntraToken | Step::EntraClientSecret | Step::KeyVaultGet | Step::KeyVaultList => {
                Cloud::Azure
            }
            Step::AwsAssumeRole
            | Step::AwsAssumeRoleStatic
            | Step::AwsCallerIdentity
            | Step::AwsSecretGet
            | Step::AwsSecretList => Cloud::Aws,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::GcpStsExchange => "GCP STS token exchange",
            Step::GcpServiceAccountKey => "GCP OAuth token with a service account key (JWT bearer)",
            Step::GcpImpersonation => "GCP service account impersonation (generateAccessToken)",
            Step::GcpSecretAccess => "GCP Secret Manager access",
            Step::GcpSecretList => "GCP Secret Manager list",
            Step::GcpVertex => "Vertex AI generateContent",
            Step::EntraToken => "Microsoft Entra client-assertion token",
            Step::EntraClientSecret => "Microsoft Entra client-secret token",
            Step::KeyVaultGet => "Azure Key Vault get secret",
            Step::KeyVaultList => "Azure Key Vault list secrets",
            Step::AwsAssumeRole => "AWS STS AssumeRoleWithWebIdentity",
            Step::AwsAssumeRoleStatic => "AWS STS AssumeRole",
            Step::AwsCallerIdentity => "AWS STS GetCallerIdentity",
            Step::AwsSecretGet => "AWS Secrets Manager GetSecretValue",
            Step::AwsSecretList => "AWS Secrets Manager ListSecrets",
        })
    }
}

/// Why a cloud said no, as far as its answer tells. Each has the reference's explanation
/// ([`Cause::summary`]) and what to change ([`Cause::fix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// GCP: the provider's attribute condition is false for the token's claims.
    AttributeConditionRejected,
    /// The token's `iss` is not the issuer the cloud's provider trusts.
    IssuerMismatch,
    /// The token's `aud` is not one the cloud's provider accepts.
    AudienceMismatch,
    /// GCP: no such workload identity pool or provider (the exchange's `audience` parameter).
    ProviderNotFound,
    /// Signed by a key the issuer's JWKS does not hold (or the cloud's JWKS cache is stale).
    UnknownSigningKey,
    /// Expired, not yet valid, or living longer than the cloud allows: clock skew or a stale token.
    TokenExpired,
    /// The cloud could not fetch the issuer's discovery document or JWKS.
    IssuerUnreachable,
    /// Entra only accepts RSA signatures.
    UnsupportedAlgorithm,
    /// The token is not a well-formed JWT.
    MalformedToken,
    /// GCP: the federated principal may not impersonate the service account.
    MissingWorkloadIdentityUser,
    /// GCP: the service account lacks `roles/aiplatform.user`.
    MissingAiplatformUser,
    /// GCP: the principal lacks `secretmanager.versions.access` on the secret.
    MissingSecretAccessor,
    /// GCP: the principal lacks `secretmanager.secrets.list` (project scope only).
    MissingSecretLister,
    /// Entra: no federated identity credential matches issuer + subject + audience exactly.
    FederatedCredentialMismatch,
    /// Entra: the application (client id) is not in the tenant.
    ApplicationNotFound,
    /// Entra: the tenant does not exist.
    TenantNotFound,
    /// Key Vault: the role is granted on single secrets, so listing the vault is forbidden.
    KeyVaultListNeedsVaultScope,
    /// Key Vault: no role assignment covers this secret.
    KeyVaultSecretRoleMissing,
    /// Key Vault still uses legacy access policies instead of Azure RBAC.
    KeyVaultLegacyAccessPolicies,
    /// Key Vault: the bearer token is for another resource or tenant.
    KeyVaultWrongToken,
    /// AWS: the role's trust policy does not admit this token (`sub`, `aud` or federated principal).
    TrustPolicyMismatch,
    /// AWS: no IAM OIDC provider is registered for the token's issuer.
    OidcProviderNotRegistered,
    /// AWS: the role may not call `secretsmanager:ListSecrets` on `*`.
    MissingListSecrets,
    /// AWS: the role may not read this secret.
    MissingGetSecretValue,
    /// The secret does not exist (or has no enabled version).
    SecretNotFound,
    /// The temporary credentials from the exchange were refused (expired or invalid session).
    SessionCredentialsRejected,
    /// GCP: the service account key is deleted, disabled or not this account's (`invalid_grant`).
    ServiceAccountKeyRejected,
    /// GCP: the key's service account does not exist.
    ServiceAccountNotFound,
    /// Entra: the client secret is wrong, or its ID was sent instead of its value.
    ClientSecretInvalid,
    /// Entra: the client secret has expired.
    ClientSecretExpired,
    /// AWS: the access key id or secret access key is wrong, or the key is deactivated.
    AccessKeyRejected,
    /// AWS: the role's trust policy, its `sts:ExternalId` condition or the user's own
    /// `sts:AssumeRole` permission does not admit this caller.
    AssumeRoleDenied,
    /// The request was malformed; a bug in the caller or an unexpected cloud version.
    BadRequest,
    /// The cloud was throttling or failing; retried until the deadline.
    Unavailable,
    /// The endpoint's name did not resolve (DNS) or no connection could be made: nothing answered.
    Unreachable,
    /// A refusal this client does not know more about; the provider's code and text say it all.
    Other,
}

impl Cause {
    /// The likely cause, in the words of the reference troubleshooting tables.
    pub fn summary(self) -> &'static str {
        match self {
            Cause::AttributeConditionRejected => {
                "Org UUID mismatch: the provider's attribute condition rejected the token — typically the numeric org ID was used instead of the organization UUID, or the UUID in the attribute condition is wrong"
            }
            Cause::IssuerMismatch => {
                "the issuer URL configured on the cloud's side does not match the token's issuer (Keyward's public URL)"
            }
            Cause::AudienceMismatch => {
                "the token's audience does not match the audience the cloud's provider expects"
            }
            Cause::ProviderNotFound => {
                "the audience does not name an existing, enabled workload identity pool provider"
            }
            Cause::UnknownSigningKey => {
                "the cloud could not verify the token's signature: the signing key is not in the issuer's JWKS, or the cloud's JWKS cache is stale"
            }
            Cause::TokenExpired => {
                "the token is expired or not yet valid as the cloud sees it: Keyward's host clock is skewed from real time, or a stale token was presented"
            }
            Cause::IssuerUnreachable => {
                "the cloud could not fetch the issuer's OIDC discovery document or JWKS"
            }
            Cause::UnsupportedAlgorithm => {
                "Microsoft Entra accepts only RSA-signed assertions (RS256, RS384, RS512)"
            }
            Cause::MalformedToken => "the presented token is not a well-formed JWT",
            Cause::MissingWorkloadIdentityUser => {
                "the pool member is missing roles/iam.workloadIdentityUser on the service account, or the principalSet in the binding uses the wrong attribute path"
            }
            Cause::MissingAiplatformUser => {
                "the service account is missing roles/aiplatform.user (or an equivalent custom role) on the project"
            }
            Cause::MissingSecretAccessor => {
                "the workload identity binding is healthy, but secretmanager.versions.access is missing on this secret"
            }
            Cause::MissingSecretLister => {
                "the federated principal is missing roles/secretmanager.viewer at project scope; secretmanager.secrets.list is project-scoped only and cannot be granted per secret"
            }
            Cause::FederatedCredentialMismatch => {
                "the Federated Identity Credential's Issuer + Subject + Audience don't all match the JWT exactly (the match is case-sensitive)"
            }
            Cause::ApplicationNotFound => {
                "the App Registration (client id) does not exist in this tenant"
            }
            Cause::TenantNotFound => "the tenant id does not name an existing Entra tenant",
            Cause::KeyVaultListNeedsVaultScope => {
                "the App Registration's Key Vault Secrets User role is scoped to single secrets, so the vault's list action is not allowed"
            }
            Cause::KeyVaultSecretRoleMissing => {
                "the workload identity binding is healthy, but per-secret Key Vault RBAC is missing on this secret"
            }
            Cause::KeyVaultLegacyAccessPolicies => {
                "the vault hasn't been switched to Azure RBAC (it uses legacy access policies)"
            }
            Cause::KeyVaultWrongToken => {
                "the vault refused the bearer token: it was issued for another resource or tenant"
            }
            Cause::TrustPolicyMismatch => {
                "trust policy mismatch: the role's trust policy does not admit this token's federated principal, audience or sub"
            }
            Cause::OidcProviderNotRegistered => {
                "no IAM OIDC identity provider in the account matches the token's issuer"
            }
            Cause::MissingListSecrets => {
                "the role is missing secretsmanager:ListSecrets with Resource \"*\""
            }
            Cause::MissingGetSecretValue => {
                "the workload identity binding is healthy, but resource-scoped IAM is missing on this secret (secretsmanager:GetSecretValue, kms:Decrypt)"
            }
            Cause::SecretNotFound => {
                "the secret does not exist in this project, vault or region, or has no enabled version"
            }
            Cause::SessionCredentialsRejected => {
                "the temporary credentials from the exchange were refused (expired or invalid session)"
            }
            Cause::ServiceAccountKeyRejected => {
                "Google refused the service account key's signature: the key was deleted or disabled, or the JSON is not this service account's current key"
            }
            Cause::ServiceAccountNotFound => {
                "the service account named in the key file (client_email) does not exist"
            }
            Cause::ClientSecretInvalid => {
                "Entra refused the client secret: it is wrong, or the secret's ID was pasted instead of its value"
            }
            Cause::ClientSecretExpired => "the App Registration's client secret has expired",
            Cause::AccessKeyRejected => {
                "AWS refused the access key: the access key id or secret access key is wrong, or the key is deactivated or deleted"
            }
            Cause::AssumeRoleDenied => {
                "the role refused AssumeRole: its trust policy does not name this IAM user (or the account root), the sts:ExternalId condition does not match, or the user lacks sts:AssumeRole on the role"
            }
            Cause::BadRequest => "the cloud rejected the request as malformed",
            Cause::Unavailable => "the cloud kept throttling or failing",
            Cause::Unreachable => {
                "the endpoint could not be reached: its host name did not resolve (DNS) or the connection failed"
            }
            Cause::Other => "the cloud refused the request",
        }
    }

    /// What to change, and where.
    pub fn fix(self) -> &'static str {
        match self {
            Cause::AttributeConditionRejected => {
                "set the provider's attribute condition to assertion.organization_id == '<your organization UUID>' — the UUID in the token's organization_id claim, not a numeric id"
            }
            Cause::IssuerMismatch => {
                "set the issuer on the cloud's provider to exactly Keyward's issuer value (its public URL, https, no trailing slash)"
            }
            Cause::AudienceMismatch => {
                "let Keyward compute the audience: GCP //iam.googleapis.com/<provider resource name>, Azure api://AzureADTokenExchange, AWS sts.amazonaws.com; if you customised it, make both sides equal"
            }
            Cause::ProviderNotFound => {
                "check the provider resource name (projects/<PROJECT_NUMBER>/locations/global/workloadIdentityPools/<pool>/providers/<id>) and that pool and provider exist and are enabled"
            }
            Cause::UnknownSigningKey => {
                "confirm Keyward's /.well-known/openid-configuration and JWKS are reachable from the cloud and serve the current key; GCP caches the JWKS for up to 1 hour (wait, or recreate the provider)"
            }
            Cause::TokenExpired => {
                "check NTP on the Keyward host and mint a fresh token; GCP rejects tokens living longer than 60 minutes"
            }
            Cause::IssuerUnreachable => {
                "confirm Keyward's host is reachable from the cloud over the public internet and /.well-known/openid-configuration and the JWKS return 200"
            }
            Cause::UnsupportedAlgorithm => {
                "sign Entra assertions with an RSA key (Keyward's issuer uses RS256 by default)"
            }
            Cause::MalformedToken => "present the JWT exactly as Keyward minted it",
            Cause::MissingWorkloadIdentityUser => {
                "grant roles/iam.workloadIdentityUser on the service account to principalSet://iam.googleapis.com/projects/<PROJECT_NUMBER>/locations/global/workloadIdentityPools/<pool>/attribute.organization/<your organization UUID>"
            }
            Cause::MissingAiplatformUser => {
                "grant roles/aiplatform.user on the project to the service account"
            }
            Cause::MissingSecretAccessor => {
                "grant roles/secretmanager.secretAccessor (project-scoped, or on this secret) to the federated principal"
            }
            Cause::MissingSecretLister => {
                "grant roles/secretmanager.viewer at project scope to the federated principal"
            }
            Cause::FederatedCredentialMismatch => {
                "on the App Registration's federated credential set Issuer to Keyward's issuer exactly, Subject to organization:<your-org-uuid> (matching the JWT's sub claim, same case; organization:<org-uuid>:automation:<automation-uuid> for a config with subject = automation) and Audience to api://AzureADTokenExchange"
            }
            Cause::ApplicationNotFound => {
                "use the Application (client) ID of the App Registration in this tenant"
            }
            Cause::TenantNotFound => "use the Directory (tenant) ID of your Entra tenant",
            Cause::KeyVaultListNeedsVaultScope => {
                "grant Key Vault Secrets User at the vault scope so the list data-plane action is allowed (or type secret names by hand)"
            }
            Cause::KeyVaultSecretRoleMissing => {
                "grant Key Vault Secrets User on that specific secret, or extend the role assignment to the vault scope"
            }
            Cause::KeyVaultLegacyAccessPolicies => {
                "under the vault's Access configuration set the permission model to Azure role-based access control and re-grant Key Vault Secrets User"
            }
            Cause::KeyVaultWrongToken => {
                "request the Entra token with scope https://vault.azure.net/.default in the vault's tenant"
            }
            Cause::TrustPolicyMismatch => {
                "in the role's trust policy the federated principal must be arn:aws:iam::<account>:oidc-provider/<keyward host> (no https://, no trailing slash), <host>:aud must equal sts.amazonaws.com and <host>:sub must equal organization:<your organization UUID> (…:automation:<automation UUID> for a config with subject = automation)"
            }
            Cause::OidcProviderNotRegistered => {
                "create an IAM OIDC identity provider for Keyward's issuer URL with client id sts.amazonaws.com"
            }
            Cause::MissingListSecrets => {
                "add a statement allowing secretsmanager:ListSecrets on Resource \"*\" to the role"
            }
            Cause::MissingGetSecretValue => {
                "allow secretsmanager:GetSecretValue (and kms:Decrypt for its KMS key) on this secret's ARN in the role's policy"
            }
            Cause::SecretNotFound => {
                "check the secret's name, and the project, vault URL or region it lives in"
            }
            Cause::SessionCredentialsRejected => {
                "exchange the token again for fresh credentials; if it persists, check the region and endpoint"
            }
            Cause::ServiceAccountKeyRejected => {
                "create a new key for the service account (IAM → Service accounts → Keys → Add key → JSON) and paste the whole JSON file into the credential"
            }
            Cause::ServiceAccountNotFound => {
                "check that the service account in client_email exists in the project, or create a key for an existing one"
            }
            Cause::ClientSecretInvalid => {
                "paste the client secret's Value (shown once when it is created under Certificates & secrets), not its Secret ID"
            }
            Cause::ClientSecretExpired => {
                "create a new client secret under the App Registration's Certificates & secrets and update the credential"
            }
            Cause::AccessKeyRejected => {
                "check the access key id and secret access key of the IAM user, and that the key is Active (IAM → Users → Security credentials)"
            }
            Cause::AssumeRoleDenied => {
                "add the IAM user's ARN to the role's trust policy as an AWS principal with sts:AssumeRole, set the sts:ExternalId condition to the credential's external id, and allow sts:AssumeRole on the role in the user's policy"
            }
            Cause::BadRequest => "check the request parameters named in the cloud's message",
            Cause::Unavailable => {
                "check the cloud's status and the network path, then retry, or allow a longer deadline"
            }
            Cause::Unreachable => {
                "check the endpoint's host name and port, DNS and the network path (firewall, proxy), then retry; to use the cloud simulator instead, set KEYWARD_CLOUD_ENDPOINTS to its endpoints file"
            }
            Cause::Other => "read the provider's code and message above",
        }
    }
}

/// The claims of the token presented to the cloud (no signature, nothing secret): what the cloud
/// compared against its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presented {
    pub iss: String,
    pub sub: String,
    pub aud: String,
}

impl Presented {
    /// Reads `iss`, `sub` and `aud` from a JWT without verifying it; `None` if it is not one.
    pub fn from_jwt(jwt: &str) -> Option<Presented> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let text = |key: &str| match &claims[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        Some(Presented {
            iss: text("iss"),
            sub: text("sub"),
            aud: text("aud"),
        })
    }
}

/// A cloud's answer that was not a success, with the provider's own code kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub step: Step,
    /// HTTP status the cloud answered with.
    pub status: u16,
    /// The provider's code: `unauthorized_client`, `PERMISSION_DENIED`, `AADSTS70021`,
    /// `Forbidden`, `AccessDenied`, `ResourceNotFoundException`, …
    pub code: String,
    /// The provider's message, as sent.
    pub message: String,
    pub cause: Cause,
    pub presented: Option<Presented>,
    /// Requests sent for this call, retries included.
    pub attempts: u32,
}

impl Refusal {
    /// A refusal read from an answer; `attempts` is filled in by the transport.
    pub(crate) fn new(
        step: Step,
        status: u16,
        code: String,
        message: String,
        cause: Cause,
        presented: Option<Presented>,
    ) -> Refusal {
        Refusal {
            step,
            status,
            code,
            message,
            cause,
            presented,
            attempts: 0,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refused (HTTP {}, {}): {}",
            self.step, self.status, self.code, self.message
        )?;
        write!(f, "\n  cause: {}", self.cause.summary())?;
        if let Some(p) = &self.presented {
            write!(
                f,
                "\n  presented: iss={} sub={} aud={}",
                p.iss, p.sub, p.aud
            )?;
        }
        write!(f, "\n  fix: {}", self.cause.fix())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The cloud answered and said no.
    #[error("{0}")]
    Refused(Box<Refusal>),
    /// Transient failures went on until the caller's deadline, or the wait the cloud asked for
    /// (`Retry-After`) would not fit in what was left of it.
    #[error(
        "{step}: gave up after {attempts} attempt(s), as the deadline of {deadline:?} left no time for another; last failure: {last}\n  cause: {summary}\n  fix: {fix}",
        summary = cause.summary(),
        fix = cause.fix()
    )]
    DeadlineExceeded {
        step: Step,
        attempts: u32,
        deadline: Duration,
        last: String,
        /// [`Cause::Unreachable`] when the last attempt could not connect, else `Unavailable`.
        cause: Cause,
    },
    /// The endpoint's host name does not resolve: retrying cannot help.
    #[error(
        "{step}: {detail}\n  cause: {summary}\n  fix: {fix}",
        summary = Cause::Unreachable.summary(),
        fix = Cause::Unreachable.fix()
    )]
    Unresolvable { step: Step, detail: String },
    /// The cloud answered with something that is not its API's shape.
    #[error(
        "{step}: {url} answered HTTP {status} with a body that is not the cloud's API format ({detail}); check that the endpoint URL points at the real service"
    )]
    UnexpectedResponse {
        step: Step,
        url: String,
        status: u16,
        detail: String,
    },
    /// The endpoints configuration cannot be used.
    #[error("cloud endpoints: {0}")]
    Config(String),
    /// The request could not be built from the given arguments.
    #[error("{step}: {detail}")]
    InvalidArgument { step: Step, detail: String },
}

impl CloudError {
    /// The provider's code, when the cloud answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Refused(r) => Some(&r.code),
            _ => None,
        }
    }

    pub fn cause(&self) -> Option<Cause> {
        match self {
            CloudError::Refused(r) => Some(r.cause),
            CloudError::DeadlineExceeded { cause, .. } => Some(*cause),
            CloudError::Unresolvable { .. } => Some(Cause::Unreachable),
            _ => None,
        }
    }

    /// What happened, without the `cause:` and `fix:` lines: for reports that show
    /// [`CloudError::cause`] in their own fields, so the reader sees them once.
    pub fn headline(&self) -> String {
        let text = self.to_string();
        match text.split_once("\n  cause:") {
            Some((head, _)) => head.to_owned(),
            None => text,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            CloudError::Refused(r) => Some(r),
            _ => None,
        }
    }

    pub fn step(&self) -> Option<Step> {
        match self {
            CloudError::Refused(r) => Some(r.step),
            CloudError::DeadlineExceeded { step, .. }
            | CloudError::Unresolvable { step, .. }
            | CloudError::UnexpectedResponse { step, .. }
            | CloudError::InvalidArgument { step, .. } => Some(*step),
            CloudError::Config(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_claims_are_read_without_verifying() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://kw.example","sub":"organization:abc","aud":["a","b"]}"#);
        let jwt = format!("e30.{payload}.sig");
        assert_eq!(
            Presented::from_jwt(&jwt),
            Some(Presented {
                iss: "https://kw.example".into(),
                sub: "organization:abc".into(),
                aud: "a,b".into(),
            })
        );
        assert_eq!(Presented::from_jwt("not a jwt"), None);
    }

    #[test]
    fn a_refusal_reads_code_cause_presented_claims_and_fix() {
        let refusal = Refusal {
            step: Step::EntraToken,
            status: 401,
            code: "AADSTS70021".into(),
            message: "AADSTS70021: No matching federated identity record found".into(),
            cause: Cause::FederatedCredentialMismatch,
            presented: Some(Presented {
                iss: "https://kw.example".into(),
                sub: "organization:abc".into(),
                aud: "api://AzureADTokenExchange".into(),
            }),
            attempts: 1,
        };
        let text = CloudError::Refused(Box::new(refusal)).to_string();
        assert!(
            text.starts_with(
                "Microsoft Entra client-assertion token refused (HTTP 401, AADSTS70021)"
            ),
            "{text}"
        );
        assert!(
            text.contains("cause: the Federated Identity Credential's Issuer + Subject + Audience"),
            "{text}"
        );
        assert!(text.contains("presented: iss=https://kw.example sub=organization:abc aud=api://AzureADTokenExchange"), "{text}");
        assert!(
            text.contains("fix: on the App Registration's federated credential"),
            "{text}"
        );
    }
}
