//! One method per `/api/v1` route a client calls, typed with `keyward_core::api::v1` (and
//! `api::rbac`) where the wire type exists. Ids and names go through [`segment`].

use keyward_core::api::rbac::{
    AddMember, AutomationPermissions, CreateRole, Member, Role, SetMemberRole, UpdateRole,
};
use keyward_core::api::v1::{
    AssignEnvironmentVariables, AuditPage, AuditVerification, Automation, CreateAutomation,
    CreateEnvironmentVariable, CreateLlmConnection, CreateSecretProvider, CreateToken,
    CreateWorkloadIdentityConfig, EnvironmentVariable, KickoffPlan, LlmConnection, MintRequest,
    MintResponse, Org, SecretProvider, TokenCreated, TokenInfo, UpdateAutomation,
    UpdateEnvironmentVariable, UpdateLlmConnection, UpdateSecretProvider,
    UpdateWorkloadIdentityConfig, WorkloadIdentityConfig,
};
use reqwest::Method;
use serde_json::Value;

use crate::error::ClientError;
use crate::http::{Client, segment};

const NONE: &[(&str, &str)] = &[];
const WI: &str = "/api/v1/workload-identity-configs";
const LLM: &str = "/api/v1/llm-connections";
const ENV: &str = "/api/v1/environment-variables";
const PROVIDERS: &str = "/api/v1/secret-providers";
const AUTOMATIONS: &str = "/api/v1/automations";

fn one(base: &str, id: &str) -> String {
    format!("{base}/{}", segment(id))
}

/// The filters of `GET /api/v1/audit`; times are RFC 3339.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub kind: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

impl Client {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request(Method::GET, path, NONE, None::<&()>).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.request(Method::POST, path, NONE, Some(body)).await
    }

    async fn patch<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.request(Method::PATCH, path, NONE, Some(body)).await
    }

    async fn put<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.request(Method::PUT, path, NONE, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.request_empty(Method::DELETE, path, NONE).await
    }

    // The runtime, as an automation.

    /// The automation's kickoff plan (SPEC §5 step 1).
    pub async fn kickoff(&self) -> Result<KickoffPlan, ClientError> {
        self.request(Method::POST, "/api/v1/runtime/kickoff", NONE, None::<&()>)
            .await
    }

    /// A workload token for one identity.
    pub async fn mint(&self, body: &MintRequest) -> Result<MintResponse, ClientError> {
        self.post("/api/v1/workload-identity/token", body).await
    }

    // Public documents and, as a person, organizations and personal access tokens.

    /// `/auth/parameters`: the identity provider a CLI signs in with (public, no token).
    pub async fn auth_parameters(&self) -> Result<Value, ClientError> {
        self.get("/auth/parameters").await
    }

    pub async fn orgs(&self) -> Result<Vec<Org>, ClientError> {
        self.get("/api/v1/orgs").await
    }

    /// The CrewAI CLI's organization list (`uuid`, `name`), as its `org` commands read it.
    pub async fn my_organizations(&self) -> Result<Vec<Value>, ClientError> {
        self.get("/crewai_plus/api/v1/me/organizations").await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.get("/api/v1/tokens").await
    }

    pub async fn create_token(&self, body: &CreateToken) -> Result<TokenCreated, ClientError> {
        self.post("/api/v1/tokens", body).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<TokenInfo, ClientError> {
        self.request(
            Method::DELETE,
            &one("/api/v1/tokens", id),
            NONE,
            None::<&()>,
        )
        .await
    }

    // Automations and their tokens.

    pub async fn automations(&self) -> Result<Vec<Automation>, ClientError> {
        self.get(AUTOMATIONS).await
    }

    pub async fn automation(&self, id: &str) -> Result<Automation, ClientError> {
        self.get(&one(AUTOMATIONS, id)).await
    }

    pub async fn create_automation(
        &self,
        body: &CreateAutomation,
    ) -> Result<Automation, ClientError> {
        self.post(AUTOMATIONS, body).await
    }

    pub async fn update_automation(
        &self,
        id: &str,
        body: &UpdateAutomation,
    ) -> Result<Automation, ClientError> {
        self.patch(&one(AUTOMATIONS, id), body).await
    }

    pub async fn delete_automation(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&one(AUTOMATIONS, id)).await
    }

    /// Resolves the automation's static-backed values anew; the answer reports each value.
    pub async fn redeploy(&self, id: &str) -> Result<Value, ClientError> {
        let path = format!("{}/redeploy", one(AUTOMATIONS, id));
        self.request(Method::POST, &path, NONE, None::<&()>).await
    }

    pub async fn automation_tokens(&self, id: &str) -> Result<Vec<TokenInfo>, ClientError> {
        self.get(&format!("{}/tokens", one(AUTOMATIONS, id))).await
    }

    pub async fn create_automation_token(
        &self,
        id: &str,
        body: &CreateToken,
    ) -> Result<TokenCreated, ClientError> {
        self.post(&format!("{}/tokens", one(AUTOMATIONS, id)), body)
            .await
    }

    pub async fn revoke_automation_token(
        &self,
        id: &str,
        token: &str,
    ) -> Result<TokenInfo, ClientError> {
        let path = format!("{}/tokens/{}", one(AUTOMATIONS, id), segment(token));
        self.request(Method::DELETE, &path, NONE, None::<&()>).await
    }

    pub async fn automation_permissions(
        &self,
        id: &str,
    ) -> Result<AutomationPermissions, ClientError> {
        self.get(&format!("{}/permissions", one(AUTOMATIONS, id)))
            .await
    }

    pub async fn set_automation_permissions(
        &self,
        id: &str,
        body: &AutomationPermissions,
    ) -> Result<AutomationPermissions, ClientError> {
        self.put(&format!("{}/permissions", one(AUTOMATIONS, id)), body)
            .await
    }

    // Audit.

    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        let after = query.after.map(|a| a.to_string());
        let limit = query.limit.map(|l| l.to_string());
        let pairs: Vec<(&str, &str)> = [
            ("type", query.kind.as_deref()),
            ("since", query.since.as_deref()),
            ("until", query.until.as_deref()),
            ("after", after.as_deref()),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        self.request(Method::GET, "/api/v1/audit", &pairs, None::<&()>)
            .await
    }

    pub async fn audit_verify(&self) -> Result<AuditVerification, ClientError> {
        self.get("/api/v1/audit/verify").await
    }

    // Workload identity configs.

    pub async fn wi_configs(&self) -> Result<Vec<WorkloadIdentityConfig>, ClientError> {
        self.get(WI).await
    }

    pub async fn wi_config(&self, id: &str) -> Result<WorkloadIdentityConfig, ClientError> {
        self.get(&one(WI, id)).await
    }

    pub async fn create_wi_config(
        &self,
        body: &CreateWorkloadIdentityConfig,
    ) -> Result<WorkloadIdentityConfig, ClientError> {
        self.post(WI, body).await
    }

    pub async fn update_wi_config(
        &self,
        id: &str,
        body: &UpdateWorkloadIdentityConfig,
    ) -> Result<WorkloadIdentityConfig, ClientError> {
        self.patch(&one(WI, id), body).await
    }

    pub async fn delete_wi_config(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&one(WI, id)).await
    }

    // LLM connections.

    pub async fn llm_connections(&self) -> Result<Vec<LlmConnection>, ClientError> {
        self.get(LLM).await
    }

    pub async fn llm_connection(&self, id: &str) -> Result<LlmConnection, ClientError> {
        self.get(&one(LLM, id)).await
    }

    pub async fn create_llm_connection(
        &self,
        body: &CreateLlmConnection,
    ) -> Result<LlmConnection, ClientError> {
        self.post(LLM, body).await
    }

    pub async fn update_llm_connection(
        &self,
        id: &str,
        body: &UpdateLlmConnection,
    ) -> Result<LlmConnection, ClientError> {
        self.patch(&one(LLM, id), body).await
    }

    pub async fn delete_llm_connection(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&one(LLM, id)).await
    }

    // Environment variables.

    pub async fn env_vars(&self) -> Result<Vec<EnvironmentVariable>, ClientError> {
        self.get(ENV).await
    }

    pub async fn env_var(&self, id: &str) -> Result<EnvironmentVariable, ClientError> {
        self.get(&one(ENV, id)).await
    }

    pub async fn create_env_var(
        &self,
        body: &CreateEnvironmentVariable,
    ) -> Result<EnvironmentVariable, ClientError> {
        self.post(ENV, body).await
    }

    pub async fn update_env_var(
        &self,
        id: &str,
        body: &UpdateEnvironmentVariable,
    ) -> Result<EnvironmentVariable, ClientError> {
        self.patch(&one(ENV, id), body).await
    }

    pub async fn delete_env_var(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&one(ENV, id)).await
    }

    pub async fn assigned_env_vars(
        &self,
        automation: &str,
    ) -> Result<Vec<EnvironmentVariable>, ClientError> {
        self.get(&format!(
            "{}/environment-variables",
            one(AUTOMATIONS, automation)
        ))
        .await
    }

    pub async fn assign_env_vars(
        &self,
        automation: &str,
        body: &AssignEnvironmentVariables,
    ) -> Result<Vec<EnvironmentVariable>, ClientError> {
        let path = format!("{}/environment-variables", one(AUTOMATIONS, automation));
        self.put(&path, body).await
    }

    // Secret providers.

    pub async fn secret_providers(&self) -> Result<Vec<SecretProvider>, ClientError> {
        self.get(PROVIDERS).await
    }

    pub async fn secret_provider(&self, id: &str) -> Result<SecretProvider, ClientError> {
        self.get(&one(PROVIDERS, id)).await
    }

    pub async fn create_secret_provider(
        &self,
        body: &CreateSecretProvider,
    ) -> Result<SecretProvider, ClientError> {
        self.post(PROVIDERS, body).await
    }

    pub async fn update_secret_provider(
        &self,
        id: &str,
        body: &UpdateSecretProvider,
    ) -> Result<SecretProvider, ClientError> {
        self.patch(&one(PROVIDERS, id), body).await
    }

    pub async fn delete_secret_provider(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&one(PROVIDERS, id)).await
    }

    /// Test Connection: the federation handshake step by step (`ok` and the steps).
    pub async fn test_secret_provider(
        &self,
        id: &str,
        automation: Option<&str>,
    ) -> Result<Value, ClientError> {
        let query: Vec<(&str, &str)> = automation.map(|a| ("automation", a)).into_iter().collect();
        let path = format!("{}/test", one(PROVIDERS, id));
        self.request(Method::POST, &path, &query, None::<&()>).await
    }

    /// Secret names by prefix (`names`, and a `hint` when the provider refused).
    pub async fn provider_secrets(&self, id: &str, prefix: &str) -> Result<Value, ClientError> {
        let path = format!("{}/secrets", one(PROVIDERS, id));
        self.request(Method::GET, &path, &[("prefix", prefix)], None::<&()>)
            .await
    }

    // Roles and members.

    pub async fn roles(&self) -> Result<Vec<Role>, ClientError> {
        self.get("/api/v1/roles").await
    }

    pub async fn role(&self, id: &str) -> Result<Role, ClientError> {
        self.get(&one("/api/v1/roles", id)).await
    }

    pub async fn create_role(&self, body: &CreateRole) -> Result<Role, ClientError> {
        self.post("/api/v1/roles", body).await
    }

    pub async fn update_role(&self, id: &str, body: &UpdateRole) -> Result<Role, ClientError> {
        self.patch(&one("/api/v1/roles", id), body).await
    }

    /// Deletes a custom role; `reassign_to` moves its members first.
    pub async fn delete_role(
        &self,
        id: &str,
        reassign_to: Option<&str>,
    ) -> Result<(), ClientError> {
        let query: Vec<(&str, &str)> = reassign_to
            .map(|r| ("reassign_to", r))
            .into_iter()
            .collect();
        self.request_empty(Method::DELETE, &one("/api/v1/roles", id), &query)
            .await
    }

    pub async fn members(&self) -> Result<Vec<Member>, ClientError> {
        self.get("/api/v1/members").await
    }

    pub async fn add_member(&self, body: &AddMember) -> Result<Member, ClientError> {
        self.post("/api/v1/members", body).await
    }

    pub async fn set_member_role(
        &self,
        member: &str,
        body: &SetMemberRole,
    ) -> Result<Member, ClientError> {
        self.patch(&one("/api/v1/members", member), body).await
    }

    pub async fn remove_member(&self, member: &str) -> Result<(), ClientError> {
        self.delete(&one("/api/v1/members", member)).await
    }
}
