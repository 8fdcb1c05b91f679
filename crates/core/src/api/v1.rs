//! `/api/v1` request and response bodies. Requests refuse unknown fields so a typo is an error,
//! not a silently ignored setting.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use std::collections::BTreeMap;

use crate::ids::{AutomationId, LlmConnectionId, OrgId, TokenId, WorkloadIdentityConfigId};

// Secret providers and environment variables live in their own file; their paths stay `v1::…`.
pub use super::secrets::*;

/// Every error answer: `{"error": "<snake_code>", "message": "<sentence>", "field"?: "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (`X-Request-Id`), as in the server log; filled in by the server's
    /// request-id layer, so handlers leave it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Org {
    pub uuid: OrgId,
    pub name: String,
    /// The caller's role in this organization.
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Automation {
    pub id: AutomationId,
    pub name: String,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAutomation {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAutomation {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Create a personal access token or an automation token.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// Lifetime in seconds; absent means the token does not expire.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A token's record. The secret itself is never part of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_id: Option<AutomationId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// The answer to a token creation: the only time the secret is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

/// `POST /api/v1/workload-identity/token`: exactly one of the three. With a config or a
/// connection Keyward computes the audience itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// A workload identity config, by id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity_config: Option<String>,
    /// An LLM connection with a workload identity config, by id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_connection: Option<String>,
    /// The kickoff this token is for (from the kickoff plan); carried as the `kickoff_id` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kickoff_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MintResponse {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub audience: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<OrgId>,
    pub actor: String,
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    pub events_checked: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<i64>,
    pub message: String,
}

/// `POST /api/v1/setup`: completes the one-time owner setup printed on first start.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub setup_token: String,
    pub org_name: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetupResponse {
    pub org: Org,
    pub token: TokenCreated,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub activates_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub retires_at: Option<OffsetDateTime>,
}

/// A workload identity config (SPEC §4); only its cloud's fields are present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkloadIdentityConfig {
    pub id: WorkloadIdentityConfigId,
    pub name: String,
    /// `gcp`, `azure` or `aws`.
    pub cloud: String,
    /// GCP: `projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// GCP: parsed from `provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The `aud` of the tokens Keyward mints for it.
    pub audience: String,
    pub default_for_cloud: bool,
    /// Names of the automations it is restricted to; empty means all of the organization's.
    pub automations: Vec<String>,
    /// `organization` (`sub` = `organization:<org>`) or `automation`
    /// (`organization:<org>:automation:<automation-id>`, so the cloud trust can check it).
    #[serde(default)]
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkloadIdentityConfig {
    pub name: String,
    pub cloud: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub default_for_cloud: Option<bool>,
    /// Automation ids or names; absent or empty means every automation.
    #[serde(default)]
    pub automations: Option<Vec<String>>,
    /// `organization` (default) or `automation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Absent fields keep their value; the cloud cannot change.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkloadIdentityConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cloud: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub default_for_cloud: Option<bool>,
    #[serde(default)]
    pub automations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LlmConnection {
    pub id: LlmConnectionId,
    pub name: String,
    pub provider: String,
    /// The workload identity config's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity_config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Names of the automations that use it.
    pub automations: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLlmConnection {
    pub name: String,
    pub provider: String,
    /// Id or name.
    #[serde(default)]
    pub workload_identity_config: Option<String>,
    #[serde(default)]
    pub service_account_email: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub automations: Option<Vec<String>>,
}

/// Absent fields keep their value; an empty string clears `workload_identity_config`,
/// `service_account_email` or `model`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLlmConnection {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub workload_identity_config: Option<String>,
    #[serde(default)]
    pub service_account_email: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub automations: Option<Vec<String>>,
}

/// `POST /api/v1/runtime/kickoff`: everything one kickoff needs, in one answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KickoffPlan {
    /// Fresh per kickoff; pass it back when minting so tokens and audit events carry it.
    pub kickoff_id: String,
    pub automation: KickoffAutomation,
    /// At most one identity per cloud: the one the automation's LLM connection uses, else a
    /// config restricted to this automation, else the organization's default for that cloud.
    pub identities: Vec<KickoffIdentity>,
    pub llm_connections: Vec<KickoffLlmConnection>,
    /// Lifetime of the tokens the platform mints, in seconds (refresh at half of it).
    pub token_ttl: i64,
    /// The automation's assigned environment variables, by key.
    #[serde(default)]
    pub env: Vec<KickoffEnvVar>,
    /// Reserved keys stored before the API refused them (security review H4), left out of this
    /// plan: one sentence each, naming the key, where it is set and what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<String>,
}

/// One assigned variable, and how its value is had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KickoffEnvVar {
    pub key: String,
    #[serde(flatten)]
    pub value: KickoffValue,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum KickoffValue {
    /// A direct value, or a static-backed one resolved at the last redeploy.
    Value { value: String },
    /// Fetched fresh by the runtime at this kickoff, through a workload identity.
    WorkloadIdentity {
        /// `aws_secrets_manager`, `gcp_secret_manager` or `azure_key_vault`.
        provider: String,
        /// The credential's name, for messages.
        credential: String,
        /// The identity to federate as (the credential's workload identity config).
        identity: Box<KickoffIdentity>,
        /// The secret's name as the provider stores it.
        secret_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        json_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vault_url: Option<String>,
    },
    /// The platform cannot resolve it; the runtime must not start the command.
    Unresolved { error: String },
}

/// Values never reach a log through `{:?}`.
impl std::fmt::Debug for KickoffValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KickoffValue::Value { .. } => f.write_str("Value(***)"),
            KickoffValue::WorkloadIdentity {
                provider,
                secret_name,
                ..
            } => {
                write!(f, "WorkloadIdentity({provider}, {secret_name})")
            }
            KickoffValue::Unresolved { error } => write!(f, "Unresolved({error})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KickoffAutomation {
    pub id: AutomationId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KickoffIdentity {
    pub config_id: WorkloadIdentityConfigId,
    pub config: String,
    pub cloud: String,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_number: Option<String>,
    /// Vertex impersonation target, from the LLM connection that uses this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KickoffLlmConnection {
    pub name: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity_config: Option<String>,
    /// Connection-scoped environment variables for the child.
    pub env: BTreeMap<String, String>,
}
