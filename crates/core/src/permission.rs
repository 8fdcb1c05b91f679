//! The permission model of SPEC §8: features with levels, and what each API route needs.
//!
//! The level order is `None < Read < Write < Manage`: read is view, write is create and modify,
//! manage is everything including deletion and configuration.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A feature area that a role grants a level on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    UsageDashboards,
    /// Deployments: automations, their settings and tokens.
    CrewsDashboards,
    Invitations,
    TrainingUi,
    Tools,
    Agents,
    EnvironmentVariables,
    LlmConnections,
    DefaultSettings,
    OrganizationSettings,
    StudioProjects,
    SecretProviders,
    WorkloadIdentityConfigs,
    AuditLog,
    Gateway,
}

impl Feature {
    pub const ALL: [Feature; 15] = [
        Feature::UsageDashboards,
        Feature::CrewsDashboards,
        Feature::Invitations,
        Feature::TrainingUi,
        Feature::Tools,
        Feature::Agents,
        Feature::EnvironmentVariables,
        Feature::LlmConnections,
        Feature::DefaultSettings,
        Feature::OrganizationSettings,
        Feature::StudioProjects,
        Feature::SecretProviders,
        Feature::WorkloadIdentityConfigs,
        Feature::AuditLog,
        Feature::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::UsageDashboards => "usage_dashboards",
            Feature::CrewsDashboards => "crews_dashboards",
            Feature::Invitations => "invitations",
            Feature::TrainingUi => "training_ui",
            Feature::Tools => "tools",
            Feature::Agents => "agents",
            Feature::EnvironmentVariables => "environment_variables",
            Feature::LlmConnections => "llm_connections",
            Feature::DefaultSettings => "default_settings",
            Feature::OrganizationSettings => "organization_settings",
            Feature::StudioProjects => "studio_projects",
            Feature::SecretProviders => "secret_providers",
            Feature::WorkloadIdentityConfigs => "workload_identity_configs",
            Feature::AuditLog => "audit_log",
            Feature::Gateway => "gateway",
        }
    }

    /// Features the reference offers only as manage-or-nothing.
    pub fn is_manage_only(self) -> bool {
        matches!(
            self,
            Feature::EnvironmentVariables
                | Feature::LlmConnections
                | Feature::DefaultSettings
                | Feature::OrganizationSettings
                | Feature::StudioProjects
        )
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    None,
    Read,
    Write,
    Manage,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Read => "read",
            Level::Write => "write",
            Level::Manage => "manage",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route requires of its caller. Every route declares exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// No authentication (discovery, JWKS, health).
    Public,
    /// Any signed-in person, acting on their own things (their tokens, their organizations).
    Person,
    /// A person whose role in the selected organization grants at least this level.
    Feature(Feature, Level),
    /// An automation token (runtime endpoints only).
    Automation,
}

/// A role's grants. Today only the Owner role exists; custom roles fill this from the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrants {
    pub name: String,
    /// `None` means "everything, cannot be restricted" (the Owner).
    pub levels: Option<Vec<(Feature, Level)>>,
}

impl RoleGrants {
    pub const OWNER: &'static str = "owner";

    pub fn owner() -> Self {
        Self {
            name: Self::OWNER.to_owned(),
            levels: None,
        }
    }

    pub fn level(&self, feature: Feature) -> Level {
        match &self.levels {
            None => Level::Manage,
            Some(levels) => levels
                .iter()
                .find(|(f, _)| *f == feature)
                .map(|(_, l)| *l)
                .unwrap_or(Level::None),
        }
    }

    pub fn allows(&self, feature: Feature, needed: Level) -> bool {
        self.level(feature) >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_manage_over_write_over_read_over_none() {
        assert!(Level::Manage > Level::Write);
        assert!(Level::Write > Level::Read);
        assert!(Level::Read > Level::None);
    }

    #[test]
    fn owner_passes_everything() {
        let owner = RoleGrants::owner();
        for f in Feature::ALL {
            assert!(owner.allows(f, Level::Manage));
        }
    }

    #[test]
    fn a_restricted_role_gets_only_its_grants() {
        let role = RoleGrants {
            name: "reader".into(),
            levels: Some(vec![(Feature::AuditLog, Level::Read)]),
        };
        assert!(role.allows(Feature::AuditLog, Level::Read));
        assert!(!role.allows(Feature::AuditLog, Level::Write));
        assert!(!role.allows(Feature::SecretProviders, Level::Read));
    }

    #[test]
    fn feature_names_match_the_reference_matrix() {
        for f in Feature::ALL {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
    }
}
