//! Wire types of the RBAC API (SPEC §8, §10b): roles, members, and entity permissions on
//! automations, environment variables and LLM connections.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{RoleId, UserId};
use crate::permission::{AutomationPermission, Feature, Level};

/// A role with its level on every feature (absent features are `none`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub description: String,
    /// Owner and Member: their grants are fixed and they cannot be renamed or deleted.
    pub predefined: bool,
    /// The Owner's "everything, cannot be restricted".
    pub unrestricted: bool,
    pub grants: BTreeMap<Feature, Level>,
    /// How many members hold it.
    pub members: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Feature → level; features left out get `none`.
    #[serde(default)]
    pub grants: BTreeMap<Feature, Level>,
}

/// Fields left out keep their value; `grants` replaces the whole set when given.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<BTreeMap<Feature, Level>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    /// The role's name.
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

/// Adds a person who already has a Keyward account (signed in once, or created by the local
/// identity provider) to the organization.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub email: String,
    /// A role name or id; `member` when left out.
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMemberRole {
    /// A role name or id.
    pub role: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone whose role allows it sees the automation.
    #[default]
    Public,
    /// Only the Owner and the whitelisted users and roles see it.
    Private,
}

/// Users (email or id) and roles (name or id). Answers name users by email and roles by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Entity permissions of one user or one role on an automation: exactly one of `user`, `role`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub permissions: Vec<AutomationPermission>,
}

/// `GET|PUT /api/v1/automations/{id}/permissions`; a PUT replaces all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationPermissions {
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub whitelist: Principals,
    #[serde(default)]
    pub grants: Vec<AutomationGrant>,
}

/// `GET|PUT /api/v1/{environment-variables,llm-connections}/{id}/permissions`: who may see and
/// use it. Empty means everyone whose role allows the feature; otherwise only the Owner and
/// the listed users and roles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityAccess {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}
