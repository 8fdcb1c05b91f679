//! Rows as stored. Times are unix seconds unless the name says otherwise. These are storage
//! shapes: the server maps them to wire types and never returns one as-is.

use keyward_core::{
    AutomationId, EnvVarId, LlmConnectionId, OrgId, SecretProviderId, TokenId, UserId,
    WorkloadIdentityConfigId,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub org: OrgRow,
    pub role: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomationRow {
    pub id: AutomationId,
    pub org_id: OrgId,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A person's personal access token.
    Personal,
    /// An automation's token, for the runtime endpoints.
    Automation,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Personal => "personal",
            TokenKind::Automation => "automation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "personal" => Some(TokenKind::Personal),
            "automation" => Some(TokenKind::Automation),
            _ => None,
        }
    }
}

/// A token record. Only the SHA-256 of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub kind: TokenKind,
    pub hash: String,
    pub prefix: String,
    pub name: String,
    pub user_id: Option<UserId>,
    pub org_id: Option<OrgId>,
    pub automation_id: Option<AutomationId>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    /// Usable at `now`: neither revoked nor expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A token with whom it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedToken {
    pub token: TokenRow,
    pub automation: Option<AutomationRow>,
    pub user: Option<UserRow>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    Generated,
    /// Supplied by the operator in `OIDC_PRIVATE_KEY`.
    Configured,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Generated => "generated",
            KeySource::Configured => "configured",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "generated" => Some(KeySource::Generated),
            "configured" => Some(KeySource::Configured),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub source: KeySource,
    pub fingerprint: String,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// The PKCS#8 private key, sealed with the master key; `None` once retired.
    pub sealed_private_key: Option<Vec<u8>>,
    pub published_at: i64,
    pub activates_at: i64,
    pub activation_recorded: bool,
    pub retires_at: Option<i64>,
    pub retired_at: Option<i64>,
}

/// An audit event before it is chained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub at_ms: i64,
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub actor: String,
    pub data: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub actor: String,
    /// The event data as the exact JSON text that was hashed.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// That organization's events, the signing-key lifecycle, and the org-less events of its
    /// members (`user:<id>` actors) from when they joined; `None` for all.
    pub visible_to_org: Option<OrgId>,
    pub kind: Option<String>,
    /// Only events of this actor (`user:<id>`, `automation:<id>`, …).
    pub actor: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// A workload identity config. `settings` holds the cloud's own fields as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WiConfigRow {
    pub id: WorkloadIdentityConfigId,
    pub org_id: OrgId,
    pub name: String,
    /// `gcp`, `azure` or `aws`.
    pub cloud: String,
    pub settings: String,
    pub default_for_cloud: bool,
    /// The automations it is restricted to; empty means every automation of the organization.
    pub automations: Vec<AutomationId>,
    /// `organization` or `automation`: the `sub` its tokens carry.
    pub subject: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmConnectionRow {
    pub id: LlmConnectionId,
    pub org_id: OrgId,
    pub name: String,
    pub provider: String,
    pub wi_config_id: Option<WorkloadIdentityConfigId>,
    pub service_account_email: Option<String>,
    pub model: Option<String>,
    /// Connection-scoped environment variables, a JSON object.
    pub env: String,
    /// The automations that use the connection.
    pub automations: Vec<AutomationId>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A secret provider credential. `settings` holds region / project / vault_url as JSON;
/// `sealed_static` the static credentials, sealed with the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretProviderRow {
    pub id: SecretProviderId,
    pub org_id: OrgId,
    pub name: String,
    /// `aws_secrets_manager`, `gcp_secret_manager` or `azure_key_vault`.
    pub provider: String,
    /// `workload_identity` or `static`.
    pub auth: String,
    pub wi_config_id: Option<WorkloadIdentityConfigId>,
    pub settings: String,
    pub sealed_static: Option<Vec<u8>>,
    pub default_for_provider: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An environment variable. A direct value is in `value` when not secret and in
/// `sealed_value` when it is; a secret reference names a credential or a provider's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVarRow {
    pub id: EnvVarId,
    pub org_id: OrgId,
    pub key: String,
    /// `direct`, `provider_default` or `credential`.
    pub source: String,
    pub provider: Option<String>,
    pub credential_id: Option<SecretProviderId>,
    /// `name` or `name#json_key`.
    pub secret_name: Option<String>,
    pub secret: bool,
    pub value: Option<String>,
    pub sealed_value: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A static-backed value resolved at registration or redeploy, sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedValue {
    pub env_var_id: EnvVarId,
    pub sealed_value: Vec<u8>,
    pub resolved_at: i64,
}

/// A person's local sign-in credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalCredentialRow {
    pub user_id: UserId,
    /// An argon2id PHC string.
    pub password_hash: String,
    /// The TOTP secret, sealed with the master key; `None` when TOTP is off.
    pub sealed_totp: Option<Vec<u8>>,
    pub updated_at: i64,
}

impl std::fmt::Debug for LocalCredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even a hash stays out of logs.
        f.debug_struct("LocalCredentialRow")
            .field("user_id", &self.user_id)
            .field("totp", &self.sealed_totp.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Approved and its token handed out: the code is spent.
    Consumed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeviceStatus::Pending),
            "approved" => Some(DeviceStatus::Approved),
            "denied" => Some(DeviceStatus::Denied),
            "consumed" => Some(DeviceStatus::Consumed),
            _ => None,
        }
    }
}

/// An RFC 8628 device authorization. Both codes are kept as SHA-256 only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCodeRow {
    pub device_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub status: DeviceStatus,
    pub user_id: Option<UserId>,
    pub interval_secs: i64,
    pub last_polled_ms: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
}

/// A web console session, by the SHA-256 of its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSessionRow {
    pub hash: String,
    pub user_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An invitation to an organization (local provider), by the SHA-256 of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationRow {
    /// What lists and revocation name it by (never the hash, which the link's secret opens).
    pub id: String,
    pub hash: String,
    pub org_id: OrgId,
    pub email: String,
    pub role: String,
    pub invited_by: Option<UserId>,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
}

/// A browser sign-in waiting for the identity provider's answer (OIDC or SAML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoPendingRow {
    /// SHA-256 of the `state` / RelayState value.
    pub state_hash: String,
    /// `oidc` or `saml`.
    pub protocol: String,
    /// The OIDC nonce, or the SAML AuthnRequest ID.
    pub nonce: String,
    /// The PKCE code verifier (OIDC); empty for SAML.
    pub pkce_verifier: String,
    /// Where to go once signed in (a path on this server).
    pub next_path: String,
    pub created_at: i64,
    pub expires_at: i64,
}
