//! What the stored entity rules (SPEC §8) mean for one caller: private automations, automation
//! grants and the access lists of environment variables and LLM connections. The permission
//! layer enforces them on `{id}` routes; lists filter through [`visible_automations`] and
//! [`hidden`].

use std::collections::{BTreeMap, HashSet};

use keyward_core::permission::AutomationPermission;
use keyward_core::{AutomationId, OrgId, RoleId, UserId};
use keyward_store::{AccessListed, AutomationAccessRow, AutomationRow, PrincipalRef};
use uuid::Uuid;

use crate::caller::{Caller, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// Who the caller is for entity rules.
pub(crate) struct Subject {
    user: UserId,
    role: Option<RoleId>,
    pub(crate) owner: bool,
}

impl Subject {
    fn is(&self, p: &PrincipalRef) -> bool {
        match p {
            PrincipalRef::User(u) => *u == self.user,
            PrincipalRef::Role(r) => Some(*r) == self.role,
        }
    }
}

pub(crate) async fn subject(app: &AppState, caller: &Caller) -> Result<Subject, ApiError> {
    let org = caller.org()?;
    let Principal::Person { user, .. } = &caller.principal else {
        return Err(ApiError::internal("entity rules are for people"));
    };
    let role = app
        .store
        .find_role_by_name(org.id, &org.role.name)
        .await?
        .map(|r| r.id);
    Ok(Subject {
        user: *user,
        role,
        owner: org.role.is_owner(),
    })
}

/// The entity permissions the calling person holds on an automation with `access`.
pub async fn held_on_automation(
    app: &AppState,
    caller: &Caller,
    access: &AutomationAccessRow,
) -> Result<Vec<AutomationPermission>, ApiError> {
    let who = subject(app, caller).await?;
    Ok(automation_rights(access, &who).1)
}

/// Whether the calling person sees the automation `automation` names (private ones only when
/// shared with them).
pub async fn sees_automation_id(
    app: &AppState,
    caller: &Caller,
    automation: AutomationId,
) -> Result<bool, ApiError> {
    let org = caller.org()?.id;
    let access = app.store.automation_access(org, automation).await?;
    let who = subject(app, caller).await?;
    Ok(automation_rights(&access, &who).0)
}

/// What an automation's access gives the subject: (sees it, its entity permissions).
pub(crate) fn automation_rights(
    access: &AutomationAccessRow,
    who: &Subject,
) -> (bool, Vec<AutomationPermission>) {
    if who.owner {
        return (true, vec![AutomationPermission::FullAccess]);
    }
    let mine: Vec<_> = access
        .grants
        .iter()
        .filter(|g| who.is(&g.principal))
        .collect();
    let permissions: Vec<AutomationPermission> = mine
        .iter()
        .flat_map(|g| g.permissions.iter())
        .filter_map(|p| AutomationPermission::parse(p))
        .collect();
    // Entity permissions on a private automation imply seeing it.
    let sees = !access.private || mine.iter().any(|g| g.whitelisted) || !permissions.is_empty();
    (sees, permissions)
}

/// Whether an access-listed entity is open to the subject: no list, or one naming them.
pub(crate) async fn listed_for(
    app: &AppState,
    who: &Subject,
    org: OrgId,
    kind: AccessListed,
    id: Uuid,
) -> bool {
    if who.owner {
        return true;
    }
    match app.store.access_list(org, kind, id).await {
        Ok(list) => list.is_empty() || list.iter().any(|p| who.is(p)),
        Err(e) => {
            // Fail closed: an unreadable list hides the entity.
            tracing::error!(error = %e, "reading an access list");
            false
        }
    }
}

/// The automations of `rows` that the caller sees (private ones only when whitelisted).
pub async fn visible_automations(
    app: &AppState,
    caller: &Caller,
    rows: Vec<AutomationRow>,
) -> Result<Vec<AutomationRow>, ApiError> {
    let who = subject(app, caller).await?;
    if who.owner {
        return Ok(rows);
    }
    let access: BTreeMap<_, _> = app
        .store
        .org_automation_access(caller.org()?.id)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .filter(|a| {
            access
                .get(&a.id)
                .is_none_or(|acc| automation_rights(acc, &who).0)
        })
        .collect())
}

/// The ids of `kind` that the caller may not see: those with an access list not naming them.
pub async fn hidden(
    app: &AppState,
    caller: &Caller,
    kind: AccessListed,
) -> Result<HashSet<Uuid>, ApiError> {
    let who = subject(app, caller).await?;
    if who.owner {
        return Ok(HashSet::new());
    }
    let mut listed: BTreeMap<Uuid, bool> = BTreeMap::new();
    for (id, p) in app.store.org_access_lists(caller.org()?.id, kind).await? {
        *listed.entry(id).or_default() |= who.is(&p);
    }
    Ok(listed
        .into_iter()
        .filter(|(_, me)| !me)
        .map(|(id, _)| id)
        .collect())
}
