//! What routes need: the named permissions that the API's route table and the console's pages
//! declare (so a page and the API call it mirrors cannot drift apart), and one row of the route
//! table.

use axum::http::Method;
use keyward_core::{AutomationPermission, Entity, Feature, Level, Need};

/// One row of the route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDecl {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
}

pub(crate) const GATEWAY_READ: Need = Need::Feature(Feature::Gateway, Level::Read);
pub(crate) const GATEWAY_MANAGE: Need = Need::Feature(Feature::Gateway, Level::Manage);
pub(crate) const AUTOMATIONS_READ: Need = Need::Feature(Feature::CrewsDashboards, Level::Read);
pub(crate) const AUTOMATIONS_MANAGE: Need = Need::Feature(Feature::CrewsDashboards, Level::Manage);
/// One automation (`{id}`): hidden when private and not shared with the caller.
pub(crate) const AUTOMATION_VIEW: Need = Need::Entity(
    Entity::Automation(None),
    Feature::CrewsDashboards,
    Level::Read,
);
/// Changing one automation: `crews_dashboards: manage`, or a `manage_settings` grant on it
/// ("edit, redeploy, rollback, or delete the automation").
pub(crate) const AUTOMATION_SETTINGS: Need = Need::Entity(
    Entity::Automation(Some(AutomationPermission::ManageSettings)),
    Feature::CrewsDashboards,
    Level::Manage,
);
pub(crate) const AUTOMATION_ENV_READ: Need = Need::Entity(
    Entity::Automation(None),
    Feature::EnvironmentVariables,
    Level::Read,
);
/// Assigning variables is editing the automation's settings, so `manage_settings` allows it too.
pub(crate) const AUTOMATION_ENV_MANAGE: Need = Need::Entity(
    Entity::Automation(Some(AutomationPermission::ManageSettings)),
    Feature::EnvironmentVariables,
    Level::Manage,
);
pub(crate) const ENV_VAR_READ: Need = Need::Entity(
    Entity::EnvironmentVariable,
    Feature::EnvironmentVariables,
    Level::Read,
);
pub(crate) const ENV_VAR_MANAGE: Need = Need::Entity(
    Entity::EnvironmentVariable,
    Feature::EnvironmentVariables,
    Level::Manage,
);
pub(crate) const LLM_ONE_READ: Need =
    Need::Entity(Entity::LlmConnection, Feature::LlmConnections, Level::Read);
pub(crate) const LLM_ONE_WRITE: Need =
    Need::Entity(Entity::LlmConnection, Feature::LlmConnections, Level::Write);
pub(crate) const LLM_ONE_MANAGE: Need = Need::Entity(
    Entity::LlmConnection,
    Feature::LlmConnections,
    Level::Manage,
);
// Roles and members. The reference puts role editing and assignment under Settings → Roles:
// organization configuration, so `organization_settings: manage` (Member: none). Seeing who is
// in the organization and which roles exist, and adding or removing people, is the
// `invitations` feature ("invite new members to the organization"; Member: read).
pub(crate) const MEMBERS_READ: Need = Need::Feature(Feature::Invitations, Level::Read);
pub(crate) const MEMBERS_MANAGE: Need = Need::Feature(Feature::Invitations, Level::Manage);
pub(crate) const ROLES_MANAGE: Need = Need::Feature(Feature::OrganizationSettings, Level::Manage);
pub(crate) const AUDIT_READ: Need = Need::Feature(Feature::AuditLog, Level::Read);
pub(crate) const WI_READ: Need = Need::Feature(Feature::WorkloadIdentityConfigs, Level::Read);
pub(crate) const WI_WRITE: Need = Need::Feature(Feature::WorkloadIdentityConfigs, Level::Write);
pub(crate) const WI_MANAGE: Need = Need::Feature(Feature::WorkloadIdentityConfigs, Level::Manage);
pub(crate) const LLM_READ: Need = Need::Feature(Feature::LlmConnections, Level::Read);
pub(crate) const LLM_WRITE: Need = Need::Feature(Feature::LlmConnections, Level::Write);
pub(crate) const ENV_MANAGE: Need = Need::Feature(Feature::EnvironmentVariables, Level::Manage);
pub(crate) const ENV_READ: Need = Need::Feature(Feature::EnvironmentVariables, Level::Read);
pub(crate) const SECRETS_READ: Need = Need::Feature(Feature::SecretProviders, Level::Read);
pub(crate) const SECRETS_WRITE: Need = Need::Feature(Feature::SecretProviders, Level::Write);
pub(crate) const INVITATIONS_MANAGE: Need = Need::Feature(Feature::Invitations, Level::Manage);
pub(crate) const SECRETS_MANAGE: Need = Need::Feature(Feature::SecretProviders, Level::Manage);
