//! The organization identity provider's access tokens: verified against the provider's issuer,
//! audience and published keys, then mapped to the Keyward person that identity is linked to
//! (the link SSO made at the person's first sign-in: issuer and `sub`, never an address alone).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::jwks::RemoteKeys;
use super::jwt::{self, Unverified};
use super::people::{Person, PersonCache, load_person, unavailable};
use super::{IdentityError, IdpSettings};
use keyward_store::Store;

/// What an IdP token says about its person, after verification.
pub(crate) struct IdpPerson {
    pub person: Arc<Person>,
    pub groups: Vec<String>,
    pub email: Option<String>,
}

pub(crate) struct IdpVerifier {
    pub settings: IdpSettings,
    pub keys: RemoteKeys,
}

impl IdpVerifier {
    pub async fn verify(
        &self,
        store: &dyn Store,
        cache: &PersonCache,
        token: &Unverified<'_>,
        now: i64,
    ) -> Result<IdpPerson, IdentityError> {
        let (_, key) = self.keys.key_for(token.kid.as_deref(), now).await?;
        token.check_signature(&key, self.keys.who)?;
        let claims = &token.claims;
        jwt::check_claims(claims, &self.settings.issuer, &self.settings.audience, now)?;
        let subject = jwt::required(claims, "sub")?;
        let cache_key = format!("idp:{}\n{subject}", self.settings.issuer);
        let person = match cache.get(&cache_key, now) {
            Some(person) => person,
            None => {
                let link = store
                    .sso_link(&self.settings.issuer, subject)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| IdentityError::Refused {
                        check: format!(
                            "the identity provider's person {subject:?} is not known to Keyward: they must sign in to Keyward once (console or keyward login) so the identity is linked to their account"
                        ),
                    })?;
                if !link.admitted {
                    return Err(IdentityError::Refused {
                        check: format!(
                            "the identity provider's person {subject:?} was refused at their most recent sign-in to Keyward (no member role)"
                        ),
                    });
                }
                let person = Arc::new(load_person(store, link.user_id, None).await?);
                cache.put(cache_key, person.clone(), now);
                person
            }
        };
        Ok(IdpPerson {
            person,
            groups: groups(claims, &self.settings.groups_claim),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// The groups under `claim`: a top-level name, or a dotted path such as `realm_access.roles`
/// (Keycloak); an array of strings or one string.
pub(crate) fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.get(p))
    });
    match value {
        Some(Value::Array(all)) => all
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}
