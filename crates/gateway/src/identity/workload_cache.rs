//! Verified workload tokens, by the SHA-256 of the token, until they expire. Agents send the
//! same token for up to an hour; verifying its RSA signature and claims once instead of on
//! every request takes the largest fixed cost off the hot path (issue 16 bench). Only a token
//! that passed every check is kept, under its own hash, so a cache hit is that same token.

use std::collections::HashMap;
use std::sync::RwLock;

use keyward_policy::Principal;

/// Most tokens kept; past it, expired ones go, and if that is not enough, all of them.
const CAPACITY: usize = 10_000;

struct Entry {
    principal: Principal,
    /// The token's `exp`: a hit at or after it is a miss (full verification says why).
    until: i64,
}

#[derive(Default)]
pub(crate) struct WorkloadCache {
    map: RwLock<HashMap<String, Entry>>,
}

impl WorkloadCache {
    pub fn get(&self, key: &str, now: i64) -> Option<Principal> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| now < e.until)
            .map(|e| e.principal.clone())
    }

    pub fn put(&self, key: String, principal: Principal, until: i64, now: i64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| now < e.until);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key, Entry { principal, until });
    }
}
