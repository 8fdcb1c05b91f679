//! What each `/api/v1` route takes and answers, in the route table's order. The types are the
//! ones the handlers extract and return; where a handler answers with an ad-hoc JSON object the
//! schema says `object`.

use keyward_core::api::approvals::{Approval, ApproveRequest, CommentRequest};
use keyward_core::api::gateway::GatewayRoute;
use keyward_core::api::rbac::{
    AddMember, AutomationPermissions, CreateRole, EntityAccess, Member, Role, SetMemberRole,
    UpdateRole,
};
use keyward_core::api::sessions::{
    SessionDetail, SessionRecords, SessionSummary, SessionVerification,
};
use keyward_core::api::v1::{
    AssignEnvironmentVariables, AuditPage, AuditVerification, Automation, CreateAutomation,
    CreateEnvironmentVariable, CreateLlmConnection, CreateOrg, CreateSecretProvider, CreateToken,
    CreateWorkloadIdentityConfig, EnvironmentVariable, KickoffPlan, LlmConnection, MintRequest,
    MintResponse, Org, SecretProvider, SetupRequest, SetupResponse, TokenCreated, TokenInfo,
    UpdateAutomation, UpdateEnvironmentVariable, UpdateLlmConnection, UpdateSecretProvider,
    UpdateWorkloadIdentityConfig, WorkloadIdentityConfig,
};

use super::{Op, Schemas};
use crate::api::{approvals, audit, gateway_sessions, provider_checks, roles};
use crate::domain::invitations::PendingInvitation;
use crate::people::{device, invitations, me};

pub(super) fn operations(s: &mut Schemas) -> Vec<Op> {
    vec![
        Op::get("/api/v1/openapi.json", "This document").ok(s.object()),
        Op::post("/api/v1/setup", "Complete the one-time owner setup")
            .body(s.of::<SetupRequest>())
            .created(s.of::<SetupResponse>()),
        Op::post(
            "/api/v1/device/approve",
            "Approve a device login by its user code",
        )
        .body(s.of::<device::UserCodeBody>())
        .ok(s.object()),
        Op::post(
            "/api/v1/device/deny",
            "Deny a device login by its user code",
        )
        .body(s.of::<device::UserCodeBody>())
        .ok(s.object()),
        Op::put("/api/v1/me/password", "Set the caller's console password")
            .body(s.of::<me::SetPassword>())
            .no_content(),
        Op::post("/api/v1/me/totp", "Turn on TOTP; answers the secret, once")
            .body(s.of::<me::EnableTotp>())
            .created(s.object()),
        Op::delete("/api/v1/me/totp", "Turn off TOTP")
            .body(s.of::<me::DisableTotp>())
            .no_content(),
        Op::get(
            "/api/v1/invitations",
            "Pending invitations (never their links)",
        )
        .ok(s.list::<PendingInvitation>()),
        Op::post(
            "/api/v1/invitations",
            "Invite a person; answers the link, once",
        )
        .body(s.of::<invitations::CreateInvitation>())
        .created(s.object()),
        Op::delete(
            "/api/v1/invitations/{id}",
            "Revoke a pending invitation; its link stops working",
        )
        .ok(s.of::<PendingInvitation>()),
        // Organizations and personal access tokens.
        Op::get("/api/v1/orgs", "The caller's organizations").ok(s.list::<Org>()),
        Op::post("/api/v1/orgs", "Create an organization")
            .body(s.of::<CreateOrg>())
            .created(s.of::<Org>()),
        Op::get("/api/v1/orgs/{uuid}", "One of the caller's organizations").ok(s.of::<Org>()),
        Op::get("/api/v1/tokens", "The caller's personal access tokens").ok(s.list::<TokenInfo>()),
        Op::post(
            "/api/v1/tokens",
            "Create a personal access token; answers the secret, once",
        )
        .body(s.of::<CreateToken>())
        .created(s.of::<TokenCreated>()),
        Op::delete("/api/v1/tokens/{id}", "Revoke a personal access token").ok(s.of::<TokenInfo>()),
        // Automations.
        Op::get("/api/v1/automations", "Automations").ok(s.list::<Automation>()),
        Op::post("/api/v1/automations", "Create an automation")
            .body(s.of::<CreateAutomation>())
            .created(s.of::<Automation>()),
        Op::get("/api/v1/automations/{id}", "One automation").ok(s.of::<Automation>()),
        Op::patch("/api/v1/automations/{id}", "Change an automation")
            .body(s.of::<UpdateAutomation>())
            .ok(s.of::<Automation>()),
        Op::delete("/api/v1/automations/{id}", "Delete an automation").no_content(),
        Op::get("/api/v1/automations/{id}/tokens", "An automation's tokens")
            .ok(s.list::<TokenInfo>()),
        Op::post(
            "/api/v1/automations/{id}/tokens",
            "Create an automation token; answers the secret, once",
        )
        .body(s.of::<CreateToken>())
        .created(s.of::<TokenCreated>()),
        Op::delete(
            "/api/v1/automations/{id}/tokens/{token_id}",
            "Revoke an automation token",
        )
        .ok(s.of::<TokenInfo>()),
        Op::post(
            "/api/v1/automations/{id}/redeploy",
            "Resolve static-backed values anew",
        )
        .ok(s.object()),
        // Workload identity configs.
        Op::get(
            "/api/v1/workload-identity-configs",
            "Workload identity configs",
        )
        .ok(s.list::<WorkloadIdentityConfig>()),
        Op::post(
            "/api/v1/workload-identity-configs",
            "Create a workload identity config",
        )
        .body(s.of::<CreateWorkloadIdentityConfig>())
        .created(s.of::<WorkloadIdentityConfig>()),
        Op::get(
            "/api/v1/workload-identity-configs/{id}",
            "One workload identity config",
        )
        .ok(s.of::<WorkloadIdentityConfig>()),
        Op::patch(
            "/api/v1/workload-identity-configs/{id}",
            "Change a workload identity config",
        )
        .body(s.of::<UpdateWorkloadIdentityConfig>())
        .ok(s.of::<WorkloadIdentityConfig>()),
        Op::delete(
            "/api/v1/workload-identity-configs/{id}",
            "Delete a workload identity config",
        )
        .no_content(),
        // LLM connections.
        Op::get("/api/v1/llm-connections", "LLM connections").ok(s.list::<LlmConnection>()),
        Op::post("/api/v1/llm-connections", "Create an LLM connection")
            .body(s.of::<CreateLlmConnection>())
            .created(s.of::<LlmConnection>()),
        Op::get("/api/v1/llm-connections/{id}", "One LLM connection").ok(s.of::<LlmConnection>()),
        Op::patch("/api/v1/llm-connections/{id}", "Change an LLM connection")
            .body(s.of::<UpdateLlmConnection>())
            .ok(s.of::<LlmConnection>()),
        Op::delete("/api/v1/llm-connections/{id}", "Delete an LLM connection").no_content(),
        // Environment variables.
        Op::get("/api/v1/environment-variables", "Environment variables")
            .ok(s.list::<EnvironmentVariable>()),
        Op::post(
            "/api/v1/environment-variables",
            "Create an environment variable",
        )
        .body(s.of::<CreateEnvironmentVariable>())
        .created(s.of::<EnvironmentVariable>()),
        Op::get(
            "/api/v1/environment-variables/{id}",
            "One environment variable",
        )
        .ok(s.of::<EnvironmentVariable>()),
        Op::patch(
            "/api/v1/environment-variables/{id}",
            "Change an environment variable",
        )
        .body(s.of::<UpdateEnvironmentVariable>())
        .ok(s.of::<EnvironmentVariable>()),
        Op::delete(
            "/api/v1/environment-variables/{id}",
            "Delete an environment variable",
        )
        .no_content(),
        Op::get(
            "/api/v1/automations/{id}/environment-variables",
            "An automation's variables",
        )
        .ok(s.list::<EnvironmentVariable>()),
        Op::put(
            "/api/v1/automations/{id}/environment-variables",
            "Replace an automation's variables",
        )
        .body(s.of::<AssignEnvironmentVariables>())
        .ok(s.list::<EnvironmentVariable>()),
        // Secret providers.
        Op::get("/api/v1/secret-providers", "Secret provider credentials")
            .ok(s.list::<SecretProvider>()),
        Op::post(
            "/api/v1/secret-providers",
            "Create a secret provider credential",
        )
        .body(s.of::<CreateSecretProvider>())
        .created(s.of::<SecretProvider>()),
        Op::get(
            "/api/v1/secret-providers/{id}",
            "One secret provider credential",
        )
        .ok(s.of::<SecretProvider>()),
        Op::patch(
            "/api/v1/secret-providers/{id}",
            "Change a secret provider credential",
        )
        .body(s.of::<UpdateSecretProvider>())
        .ok(s.of::<SecretProvider>()),
        Op::delete(
            "/api/v1/secret-providers/{id}",
            "Delete a secret provider credential",
        )
        .no_content(),
        Op::post(
            "/api/v1/secret-providers/{id}/test",
            "Test a credential's handshake",
        )
        .query::<provider_checks::TestQuery>()
        .ok(s.object()),
        Op::get(
            "/api/v1/secret-providers/{id}/secrets",
            "Secret names from the provider",
        )
        .query::<provider_checks::SecretsQuery>()
        .ok(s.object()),
        // The runtime (automation tokens).
        Op::post(
            "/api/v1/workload-identity/token",
            "Mint a workload identity token",
        )
        .body(s.of::<MintRequest>())
        .ok(s.of::<MintResponse>()),
        Op::post(
            "/api/v1/runtime/kickoff",
            "The kickoff plan of the calling automation",
        )
        .ok(s.of::<KickoffPlan>()),
        // Audit.
        Op::get("/api/v1/audit", "Audit events, oldest first")
            .query::<audit::AuditQuery>()
            .ok(s.of::<AuditPage>()),
        Op::get("/api/v1/audit/verify", "Verify the audit chain").ok(s.of::<AuditVerification>()),
        // Gateway routes and sessions.
        Op::get("/api/v1/gateway/routes", "Gateway routes").ok(s.list::<GatewayRoute>()),
        Op::post(
            "/api/v1/gateway/routes",
            "Create a gateway route from its definition",
        )
        .body(s.object())
        .created(s.of::<GatewayRoute>()),
        Op::get("/api/v1/gateway/routes/{id}", "One gateway route").ok(s.of::<GatewayRoute>()),
        Op::put(
            "/api/v1/gateway/routes/{id}",
            "Replace a gateway route's definition",
        )
        .body(s.object())
        .ok(s.of::<GatewayRoute>()),
        Op::delete("/api/v1/gateway/routes/{id}", "Delete a gateway route").no_content(),
        Op::get(
            "/api/v1/sessions",
            "Gateway sessions, most recently active first",
        )
        .query::<gateway_sessions::ListQuery>()
        .ok(s.list::<SessionSummary>()),
        Op::get("/api/v1/sessions/{id}", "One gateway session").ok(s.of::<SessionDetail>()),
        Op::get(
            "/api/v1/sessions/{id}/records",
            "A session's masked records",
        )
        .query::<gateway_sessions::RecordsQuery>()
        .ok(s.of::<SessionRecords>()),
        Op::get(
            "/api/v1/sessions/{id}/verify",
            "Verify a session's recording",
        )
        .ok(s.of::<SessionVerification>()),
        // Approvals.
        Op::get("/api/v1/approvals", "Approval requests the caller may see")
            .query::<approvals::ListParams>()
            .ok(s.list::<Approval>()),
        Op::get("/api/v1/approvals/{id}", "One approval request").ok(s.of::<Approval>()),
        Op::post("/api/v1/approvals/{id}/approve", "Approve a request")
            .body(s.of::<ApproveRequest>())
            .ok(s.of::<Approval>()),
        Op::post("/api/v1/approvals/{id}/deny", "Deny a request")
            .body(s.of::<CommentRequest>())
            .ok(s.of::<Approval>()),
        Op::post("/api/v1/approvals/{id}/revoke", "Revoke an approved grant")
            .body(s.of::<CommentRequest>())
            .ok(s.of::<Approval>()),
        // RBAC.
        Op::get("/api/v1/roles", "Roles").ok(s.list::<Role>()),
        Op::post("/api/v1/roles", "Create a role")
            .body(s.of::<CreateRole>())
            .created(s.of::<Role>()),
        Op::get("/api/v1/roles/{id}", "One role").ok(s.of::<Role>()),
        Op::patch("/api/v1/roles/{id}", "Change a role")
            .body(s.of::<UpdateRole>())
            .ok(s.of::<Role>()),
        Op::delete("/api/v1/roles/{id}", "Delete a role")
            .query::<roles::DeleteQuery>()
            .no_content(),
        Op::get("/api/v1/members", "Members").ok(s.list::<Member>()),
        Op::post("/api/v1/members", "Add a person with an account")
            .body(s.of::<AddMember>())
            .created(s.of::<Member>()),
        Op::patch("/api/v1/members/{user_id}", "Change a member's role")
            .body(s.of::<SetMemberRole>())
            .ok(s.of::<Member>()),
        Op::delete("/api/v1/members/{user_id}", "Remove a member").no_content(),
        Op::get(
            "/api/v1/automations/{id}/permissions",
            "An automation's permissions",
        )
        .ok(s.of::<AutomationPermissions>()),
        Op::put(
            "/api/v1/automations/{id}/permissions",
            "Replace an automation's permissions",
        )
        .body(s.of::<AutomationPermissions>())
        .ok(s.of::<AutomationPermissions>()),
        Op::get(
            "/api/v1/environment-variables/{id}/permissions",
            "Who may use a variable",
        )
        .ok(s.of::<EntityAccess>()),
        Op::put(
            "/api/v1/environment-variables/{id}/permissions",
            "Replace who may use a variable",
        )
        .body(s.of::<EntityAccess>())
        .ok(s.of::<EntityAccess>()),
        Op::get(
            "/api/v1/llm-connections/{id}/permissions",
            "Who may use a connection",
        )
        .ok(s.of::<EntityAccess>()),
        Op::put(
            "/api/v1/llm-connections/{id}/permissions",
            "Replace who may use a connection",
        )
        .body(s.of::<EntityAccess>())
        .ok(s.of::<EntityAccess>()),
    ]
}
