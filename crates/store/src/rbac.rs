//! Roles, memberships and entity permissions (SPEC §8): the rows and the [`RbacStore`] trait,
//! implemented for both backends by the `sql_rbac` module.

use async_trait::async_trait;
use keyward_core::{AutomationId, OrgId, RoleId, UserId};
use uuid::Uuid;

use crate::Result;
use crate::model::UserRow;

/// A role of an organization. Predefined roles (Owner, Member) keep `grants` empty: their
/// grants are defined in `keyward_core::permission`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRow {
    pub id: RoleId,
    pub org_id: OrgId,
    pub name: String,
    pub description: String,
    /// A JSON object `{"<feature>": "<level>"}`.
    pub grants: String,
    pub predefined: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A person in an organization, with the name of their role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub user: UserRow,
    pub role: String,
    pub joined_at: i64,
}

/// Whom an entity permission names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalRef {
    User(UserId),
    Role(RoleId),
}

impl PrincipalRef {
    /// The stored key, `user:<uuid>` or `role:<uuid>`.
    pub fn key(&self) -> String {
        match self {
            PrincipalRef::User(u) => format!("user:{u}"),
            PrincipalRef::Role(r) => format!("role:{r}"),
        }
    }
}

/// One user or role named on an automation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomationGrantRow {
    pub principal: PrincipalRef,
    /// Sees the automation while it is private.
    pub whitelisted: bool,
    /// Entity permission names (`run`, `traces`, `manage_settings`, `human_in_the_loop`,
    /// `full_access`).
    pub permissions: Vec<String>,
}

/// An automation's visibility and entity permissions. The default is public with no grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutomationAccessRow {
    pub private: bool,
    pub grants: Vec<AutomationGrantRow>,
}

/// Resources with an access list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessListed {
    EnvironmentVariable,
    LlmConnection,
}

#[async_trait]
pub trait RbacStore: Send + Sync {
    async fn list_roles(&self, org: OrgId) -> Result<Vec<RoleRow>>;
    async fn get_role(&self, org: OrgId, id: RoleId) -> Result<RoleRow>;
    async fn find_role_by_name(&self, org: OrgId, name: &str) -> Result<Option<RoleRow>>;
    /// `Conflict { field: "name" }` for a name the organization already has.
    async fn create_role(&self, row: &RoleRow) -> Result<()>;
    /// Replaces name, description and grants; members holding `previous_name` follow a rename
    /// in the same transaction.
    async fn update_role(&self, row: &RoleRow, previous_name: &str) -> Result<()>;
    /// Deletes the role. Its members move to `reassign_to` (a role name) when given; without
    /// it a role that members still hold is `InUse`.
    async fn delete_role(&self, org: OrgId, id: RoleId, reassign_to: Option<&str>) -> Result<()>;

    async fn list_members(&self, org: OrgId) -> Result<Vec<MemberRow>>;
    /// `Conflict { field: "email" }` if the user is already a member.
    async fn add_member(&self, org: OrgId, user: UserId, role: &str, now: i64) -> Result<()>;
    /// `LastOwner` if it would leave the organization without an owner.
    async fn set_member_role(&self, org: OrgId, user: UserId, role: &str) -> Result<()>;
    /// Removes the membership and the user's entity permissions in the organization;
    /// `LastOwner` if it would leave the organization without an owner.
    async fn remove_member(&self, org: OrgId, user: UserId) -> Result<()>;

    async fn automation_access(
        &self,
        org: OrgId,
        automation: AutomationId,
    ) -> Result<AutomationAccessRow>;
    /// Replaces visibility and grants; `NotFound` if the automation is not the organization's.
    async fn set_automation_access(
        &self,
        org: OrgId,
        automation: AutomationId,
        access: &AutomationAccessRow,
    ) -> Result<()>;
    /// The access of every automation of the organization that has any (for filtering lists).
    async fn org_automation_access(
        &self,
        org: OrgId,
    ) -> Result<Vec<(AutomationId, AutomationAccessRow)>>;

    /// The access list of one variable or connection (empty: no list).
    async fn access_list(
        &self,
        org: OrgId,
        kind: AccessListed,
        id: Uuid,
    ) -> Result<Vec<PrincipalRef>>;
    /// Replaces it; `NotFound` if the resource is not the organization's.
    async fn set_access_list(
        &self,
        org: OrgId,
        kind: AccessListed,
        id: Uuid,
        principals: &[PrincipalRef],
    ) -> Result<()>;
    /// Every access-list entry of that kind in the organization, as (resource id, principal).
    async fn org_access_lists(
        &self,
        org: OrgId,
        kind: AccessListed,
    ) -> Result<Vec<(Uuid, PrincipalRef)>>;
}

/// The predefined roles every organization has: (name, description).
pub const PREDEFINED_ROLES: [(&str, &str); 2] = [
    (
        "owner",
        "Full access to all features and settings. Cannot be restricted.",
    ),
    (
        "member",
        "Read access to most features, manage access to environment variables, LLM connections, and Studio projects.",
    ),
];
