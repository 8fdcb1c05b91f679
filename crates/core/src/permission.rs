//! The permission model of SPEC §8: features with levels, and what each API route needs.
//!
//! The level order is `None < Read < Write < Manage`: read is view, write is create and modify,
//! manage is everything including deletion and configuration.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A feature area that a role grants a level on.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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
    /// Like `Feature`, on the one entity named by the path's `{id}`: the entity's own
    /// permissions (visibility, whitelist, grants) are checked as well — see [`Entity`].
    Entity(Entity, Feature, Level),
    /// An automation token (runtime endpoints only).
    Automation,
}

impl Need {
    /// The feature level this need asks of the caller's role, if any.
    pub fn feature(self) -> Option<(Feature, Level)> {
        match self {
            Need::Feature(f, l) | Need::Entity(_, f, l) => Some((f, l)),
            Need::Public | Need::Person | Need::Automation => None,
        }
    }
}

/// An entity with its own access rules (SPEC §8, "entity permissions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// An automation. Private ones are not found for callers outside their whitelist (the
    /// Owner always sees them). With `Some(permission)` an entity grant of that permission on
    /// this automation allows the route even when the role's feature level does not — that is
    /// how a Member is let run or manage one automation without managing all of them.
    Automation(Option<AutomationPermission>),
    /// An environment variable; one with an access list is not found for callers off the list.
    EnvironmentVariable,
    /// An LLM connection; one with an access list is not found for callers off the list.
    LlmConnection,
}

/// The permission types of an entity grant on an automation (features_rbac.mdx).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AutomationPermission {
    /// Execute the automation and use its API.
    Run,
    /// View execution traces and logs.
    Traces,
    /// Edit, redeploy, rollback or delete the automation (its tokens, variables, visibility).
    ManageSettings,
    /// Respond to human-in-the-loop requests.
    HumanInTheLoop,
    /// All of the above.
    FullAccess,
}

impl AutomationPermission {
    pub const ALL: [AutomationPermission; 5] = [
        AutomationPermission::Run,
        AutomationPermission::Traces,
        AutomationPermission::ManageSettings,
        AutomationPermission::HumanInTheLoop,
        AutomationPermission::FullAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AutomationPermission::Run => "run",
            AutomationPermission::Traces => "traces",
            AutomationPermission::ManageSettings => "manage_settings",
            AutomationPermission::HumanInTheLoop => "human_in_the_loop",
            AutomationPermission::FullAccess => "full_access",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether a grant holding `held` allows this permission (`full_access` allows all).
    pub fn granted_by(self, held: &[AutomationPermission]) -> bool {
        held.iter()
            .any(|h| *h == self || *h == AutomationPermission::FullAccess)
    }
}

impl fmt::Display for AutomationPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A custom role's grants that the model does not allow.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GrantError {
    #[error(
        "{feature} accepts only 'manage' or 'none' (got '{level}'): the reference offers no read-only or write level for it; grant manage or leave it out"
    )]
    ManageOnly { feature: Feature, level: Level },
}

impl GrantError {
    pub fn feature(&self) -> Feature {
        match self {
            GrantError::ManageOnly { feature, .. } => *feature,
        }
    }
}

/// Checks a custom role's levels: manage-only features take `manage` or `none` only.
pub fn validate_custom_grants(levels: &[(Feature, Level)]) -> Result<(), GrantError> {
    for (feature, level) in levels {
        if feature.is_manage_only() && !matches!(level, Level::Manage | Level::None) {
            return Err(GrantError::ManageOnly {
                feature: *feature,
                level: *level,
            });
        }
    }
    Ok(())
}

/// The Member role's level on `feature`: the "Member (default)" column of the reference matrix
/// (features_rbac.mdx), plus `secret_providers` and `workload_identity_configs` at none
/// (features_secrets-manager_usage.mdx: "the default Member role intentionally excludes" them).
/// `audit_log` and `gateway` are Keyward's own features, not in the reference; SPEC §8 gives
/// Member "read on most", so they are read.
pub fn member_level(feature: Feature) -> Level {
    match feature {
        Feature::UsageDashboards
        | Feature::CrewsDashboards
        | Feature::Invitations
        | Feature::TrainingUi
        | Feature::Tools
        | Feature::Agents
        | Feature::AuditLog
        | Feature::Gateway => Level::Read,
        Feature::EnvironmentVariables | Feature::LlmConnections | Feature::StudioProjects => {
            Level::Manage
        }
        Feature::DefaultSettings
        | Feature::OrganizationSettings
        | Feature::SecretProviders
        | Feature::WorkloadIdentityConfigs => Level::None,
    }
}

/// A role's grants, resolved for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrants {
    pub name: String,
    /// `None` means "everything, cannot be restricted" (the Owner).
    pub levels: Option<Vec<(Feature, Level)>>,
}

impl RoleGrants {
    pub const OWNER: &'static str = "owner";
    pub const MEMBER: &'static str = "member";

    pub fn owner() -> Self {
        Self {
            name: Self::OWNER.to_owned(),
            levels: None,
        }
    }

    pub fn member() -> Self {
        Self {
            name: Self::MEMBER.to_owned(),
            levels: Some(
                Feature::ALL
                    .iter()
                    .map(|f| (*f, member_level(*f)))
                    .collect(),
            ),
        }
    }

    /// Whether `name` is one of the predefined roles, whose grants are fixed in code.
    pub fn is_predefined(name: &str) -> bool {
        name == Self::OWNER || name == Self::MEMBER
    }

    pub fn is_owner(&self) -> bool {
        self.levels.is_none()
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

    /// Whether this role grants at least what `other` grants on every feature: who may hand a
    /// role to someone (nobody gives away more than they hold; only an Owner makes an Owner).
    pub fn covers(&self, other: &RoleGrants) -> bool {
        if self.is_owner() {
            return true;
        }
        if other.is_owner() {
            return false;
        }
        Feature::ALL
            .iter()
            .all(|f| self.level(*f) >= other.level(*f))
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
    fn manage_only_features_refuse_read_and_write_in_custom_roles() {
        for f in Feature::ALL {
            for level in [Level::Read, Level::Write] {
                let result = validate_custom_grants(&[(f, level)]);
                if f.is_manage_only() {
                    let err = result.unwrap_err();
                    assert_eq!(err.feature(), f);
                    assert!(err.to_string().contains(f.as_str()), "{err}");
                } else {
                    assert!(result.is_ok(), "{f} {level}");
                }
            }
            assert!(validate_custom_grants(&[(f, Level::Manage), (f, Level::None)]).is_ok());
        }
    }

    #[test]
    fn the_five_manage_only_features_are_the_references() {
        let manage_only: Vec<&str> = Feature::ALL
            .iter()
            .filter(|f| f.is_manage_only())
            .map(|f| f.as_str())
            .collect();
        assert_eq!(
            manage_only,
            [
                "environment_variables",
                "llm_connections",
                "default_settings",
                "organization_settings",
                "studio_projects"
            ]
        );
    }

    #[test]
    fn member_defaults_never_use_a_level_the_feature_does_not_offer() {
        let member = RoleGrants::member();
        assert!(!member.is_owner());
        for f in Feature::ALL {
            assert!(
                validate_custom_grants(&[(f, member.level(f))]).is_ok(),
                "{f}"
            );
        }
        assert!(!member.allows(Feature::OrganizationSettings, Level::Read));
        assert!(member.allows(Feature::EnvironmentVariables, Level::Manage));
        assert!(!member.allows(Feature::CrewsDashboards, Level::Write));
    }

    #[test]
    fn only_an_owner_covers_the_owner_and_nobody_hands_out_more_than_they_hold() {
        let owner = RoleGrants::owner();
        let member = RoleGrants::member();
        let secrets = RoleGrants {
            name: "secrets".into(),
            levels: Some(vec![(Feature::SecretProviders, Level::Manage)]),
        };
        assert!(owner.covers(&owner));
        assert!(owner.covers(&member));
        assert!(!member.covers(&owner));
        assert!(!member.covers(&secrets));
        assert!(!secrets.covers(&member));
        assert!(member.covers(&member));
    }

    #[test]
    fn full_access_grants_every_automation_permission() {
        for p in AutomationPermission::ALL {
            assert!(p.granted_by(&[AutomationPermission::FullAccess]));
            assert_eq!(AutomationPermission::parse(p.as_str()), Some(p));
        }
        assert!(!AutomationPermission::ManageSettings.granted_by(&[AutomationPermission::Run]));
    }

    #[test]
    fn feature_names_match_the_reference_matrix() {
        for f in Feature::ALL {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
    }
}
