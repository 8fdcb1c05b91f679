//! People: Keyward personal access tokens (opaque, looked up by their SHA-256) and device-login
//! access tokens (Keyward's own `at+jwt`, verified against the platform's keys), resolved to the
//! person and their memberships once and then kept for at most [`PERSON_TTL_SECS`] — keyed by
//! the token's hash, never the token — so the store is not on the hot path. A revoked token
//! stops working within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyward_core::{OrgId, UserId};
use keyward_store::{Store, StoreError, TokenKind, secret};

use super::IdentityError;

/// How long a resolved person is reused.
pub const PERSON_TTL_SECS: i64 = 30;
/// Entries held at most; beyond it expired entries go, and if that is not enough, all.
const CAPACITY: usize = 50_000;

/// One organization the person belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub org: OrgId,
    pub name: String,
    pub role: String,
}

/// A person as the store knows them.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub user: UserId,
    pub email: String,
    pub memberships: Vec<Member>,
    /// When the credential itself expires (a PAT's `expires_at`).
    pub expires_at: Option<i64>,
}

impl Person {
    /// The membership the request acts in: the route's organization when it names one (the
    /// person must belong to it), else the person's only organization.
    pub fn choose(&self, route_org: Option<OrgId>) -> Result<&Member, IdentityError> {
        match route_org {
            Some(org) => self
                .memberships
                .iter()
                .find(|m| m.org == org)
                .ok_or_else(|| IdentityError::Refused {
                    check: format!(
                        "{} is not a member of organization {org}, which owns this route",
                        self.email
                    ),
                }),
            None => match self.memberships.as_slice() {
                [only] => Ok(only),
                [] => Err(IdentityError::Refused {
                    check: format!("{} belongs to no organization", self.email),
                }),
                several => Err(IdentityError::Refused {
                    check: format!(
                        "{} belongs to {} organizations ({}) and this route names none of them",
                        self.email,
                        several.len(),
                        several
                            .iter()
                            .map(|m| format!("{:?} {}", m.name, m.org))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            },
        }
    }
}

struct Entry {
    person: Arc<Person>,
    until: i64,
}

/// Resolved people by a key derived from the credential (its SHA-256, or issuer and subject).
#[derive(Default)]
pub(crate) struct PersonCache {
    map: RwLock<HashMap<String, Entry>>,
}

impl PersonCache {
    pub fn get(&self, key: &str, now: i64) -> Option<Arc<Person>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| now < e.until)
            .map(|e| e.person.clone())
    }

    pub fn put(&self, key: String, person: Arc<Person>, now: i64) {
        let until = now + PERSON_TTL_SECS;
        let until = person.expires_at.map_or(until, |e| e.min(until));
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| now < e.until);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key, Entry { person, until });
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

pub(crate) fn unavailable(e: StoreError) -> IdentityError {
    IdentityError::Unavailable(format!(
        "the platform's database could not be read to identify the caller: {e}"
    ))
}

fn refused(check: impl Into<String>) -> IdentityError {
    IdentityError::Refused {
        check: check.into(),
    }
}

/// The person and memberships of `user`.
pub(crate) async fn load_person(
    store: &dyn Store,
    user: UserId,
    expires_at: Option<i64>,
) -> Result<Person, IdentityError> {
    let row = match store.get_user(user).await {
        Ok(row) => row,
        Err(StoreError::NotFound) => {
            return Err(refused(
                "the person this token was issued to no longer exists",
            ));
        }
        Err(e) => return Err(unavailable(e)),
    };
    // A person whose most recent sign-in through the identity provider was refused for lack
    // of a role has been withdrawn there: their Keyward tokens are suspended, as by the API.
    if store.sso_admitted(user).await.map_err(unavailable)? == Some(false) {
        return Err(refused(format!(
            "{}'s most recent sign-in through the identity provider showed they are no longer assigned to Keyward, so their tokens are suspended",
            row.email
        )));
    }
    let memberships = store
        .memberships(user)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|m| Member {
            org: m.org.id,
            name: m.org.name,
            role: m.role,
        })
        .collect();
    Ok(Person {
        user,
        email: row.email,
        memberships,
        expires_at,
    })
}

/// A personal access token: the cached person, or the store's answer for its hash.
pub(crate) async fn personal_token(
    store: &dyn Store,
    cache: &PersonCache,
    token: &str,
    now: i64,
) -> Result<Arc<Person>, IdentityError> {
    // Only the hash is ever compared, stored or used as a key.
    let hash = secret::hash_token(token);
    let key = format!("pat:{hash}");
    if let Some(person) = cache.get(&key, now) {
        return Ok(person);
    }
    let resolved = store
        .resolve_token(&hash)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| refused("the token is not known to the platform"))?;
    let record = &resolved.token;
    if record.kind == TokenKind::Automation {
        return Err(refused(format!(
            "token '{}' ({}…) is an automation token; the gateway takes the automation's workload token instead (POST /api/v1/workload-identity/token with audience keyward-gateway)",
            record.name, record.prefix
        )));
    }
    if record.revoked_at.is_some() {
        return Err(refused(format!(
            "token '{}' ({}…) was revoked; create a new one",
            record.name, record.prefix
        )));
    }
    if let Some(expires_at) = record.expires_at
        && now >= expires_at
    {
        return Err(refused(format!(
            "token '{}' ({}…) has expired; create a new one",
            record.name, record.prefix
        )));
    }
    let user = resolved
        .user
        .as_ref()
        .map(|u| u.id)
        .or(record.user_id)
        .ok_or_else(|| refused("the personal access token belongs to no person"))?;
    let person = Arc::new(load_person(store, user, record.expires_at).await?);
    cache.put(key, person.clone(), now);
    Ok(person)
}

/// A device-login access token whose signature and claims were verified: the person its
/// `sub` names, unless a password change since its `iat` cut it off.
pub(crate) async fn access_token_person(
    store: &dyn Store,
    cache: &PersonCache,
    token: &str,
    claims: &keyward_jose::AccessClaims,
    now: i64,
) -> Result<Arc<Person>, IdentityError> {
    let key = format!("at:{}", secret::hash_token(token));
    if let Some(person) = cache.get(&key, now) {
        return Ok(person);
    }
    let user: UserId = claims
        .sub
        .strip_prefix("user:")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| refused("the access token's subject is not a person"))?;
    if let Some(after) = store.tokens_valid_after(user).await.map_err(unavailable)?
        && claims.iat <= after
    {
        return Err(refused(
            "this access token was issued before the password of its account changed; sign in again (keyward login)",
        ));
    }
    let person = Arc::new(load_person(store, user, Some(claims.exp)).await?);
    cache.put(key, person.clone(), now);
    Ok(person)
}
