//! The issuer's signing keys at run time: loads them from the store, runs the rotation schedule
//! (only on the replica holding the rotation lease), and answers "which key signs now" and
//! "what is published" from memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use keyward_jose::schedule::{self, KeyTimes, RotationPolicy, RotationStep};
use keyward_jose::{Jwk, Jwks, KeyError, SigningKey};
use keyward_store::crypto::{CryptoError, MasterKey};
use keyward_store::{KeySource, SigningKeyRow, Store, StoreError};
use serde_json::json;
use thiserror::Error;

use crate::audit::{Auditor, kind};
use crate::clock;

const LEASE: &str = "signing-key-rotation";
const ACTOR: &str = "system:key-rotation";

#[derive(Debug, Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open a stored signing key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("signing key error: {0}")]
    Key(#[from] KeyError),
    #[error("OIDC_PRIVATE_KEY is not usable: {0}")]
    ConfiguredKey(KeyError),
    #[error(
        "OIDC_PRIVATE_KEY holds the key that was published as kid {kid} and has since been retired; retired keys never come back: supply a new key"
    )]
    ConfiguredKeyRetired { kid: String },
    #[error(
        "key {kid} is already published and starts signing at unix time {activates_at}; wait for it or rotate with --immediate"
    )]
    AlreadyPending { kid: String, activates_at: i64 },
    #[error("rotation is manual while OIDC_PRIVATE_KEY is set: change that key to rotate")]
    Manual,
}

/// A stored key as loaded into memory.
struct Loaded {
    times: Vec<KeyTimes>,
    rows: Vec<SigningKeyRow>,
    jwks: Arc<Jwks>,
    /// Private halves of the live keys, by kid.
    private: HashMap<String, Arc<SigningKey>>,
    /// Server time of the read these keys came from (None: never read).
    loaded_at: Option<i64>,
}

pub struct Keyring {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    policy: RotationPolicy,
    /// This process's name in the rotation lease.
    holder: String,
    loaded: RwLock<Arc<Loaded>>,
    /// Publications stored whose audit event could not be written (the database went away in
    /// between): each tick records them first, so every stored key has its event in the chain.
    unrecorded: Mutex<Vec<serde_json::Value>>,
}

fn aad(kid: &str) -> Vec<u8> {
    keyward_store::crypto::Aad::SigningKey { kid }.bytes()
}

fn times(row: &SigningKeyRow) -> KeyTimes {
    KeyTimes {
        kid: row.kid.clone(),
        published_at: row.published_at,
        activates_at: row.activates_at,
        retires_at: row.retires_at,
        activation_recorded: row.activation_recorded,
        retired: row.retired_at.is_some(),
    }
}

impl Keyring {
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, policy: RotationPolicy) -> Self {
        Self {
            store,
            master,
            policy,
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            loaded: RwLock::new(Arc::new(Loaded {
                times: Vec::new(),
                rows: Vec::new(),
                jwks: Arc::new(Jwks::default()),
                private: HashMap::new(),
                loaded_at: None,
            })),
            unrecorded: Mutex::new(Vec::new()),
        }
    }

    fn unrecorded(&self) -> std::sync::MutexGuard<'_, Vec<serde_json::Value>> {
        match self.unrecorded.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Writes the publication events an outage kept out of the audit chain, oldest first.
    async fn record_unrecorded(&self, audit: &Auditor) -> Result<(), KeyringError> {
        let pending = std::mem::take(&mut *self.unrecorded());
        let mut left = pending.into_iter();
        while let Some(data) = left.next() {
            if let Err(e) = audit
                .record(kind::KEY_PUBLISHED, None, ACTOR, data.clone())
                .await
            {
                let mut unrecorded = self.unrecorded();
                let newer = std::mem::take(&mut *unrecorded);
                unrecorded.push(data);
                unrecorded.extend(left);
                unrecorded.extend(newer);
                return Err(e.into());
            }
        }
        Ok(())
    }

    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    fn snapshot(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How often every replica reloads keys and the lease holder runs the schedule: well inside
    /// the shortest phase, so a published key is loaded everywhere before it signs.
    pub fn tick_period(&self) -> Duration {
        let p = &self.policy;
        let shortest = p
            .interval
            .min(p.publish_lead)
            .min(p.max_token_ttl + p.jwks_cache_age)
            .max(1);
        Duration::from_millis(((shortest * 1000) / 4).clamp(250, 30_000) as u64)
    }

    /// Re-reads the keys from the store, opening private halves not yet in memory.
    pub async fn reload(&self, now: i64) -> Result<(), KeyringError> {
        let rows = self.store.signing_keys().await?;
        let previous = self.snapshot();
        let mut private = HashMap::new();
        let mut jwks = Jwks::default();
        for row in rows.iter().filter(|r| r.retired_at.is_none()) {
            let jwk: Jwk = serde_json::from_str(&row.public_jwk)
                .map_err(|e| StoreError::Corrupt(format!("public JWK of {}: {e}", row.kid)))?;
            jwks.keys.push(jwk);
            let key = match previous.private.get(&row.kid) {
                Some(key) => key.clone(),
                None => {
                    let Some(sealed) = &row.sealed_private_key else {
                        continue;
                    };
                    let der = self.master.open(&aad(&row.kid), sealed)?;
                    Arc::new(SigningKey::from_pkcs8(row.kid.clone(), &der)?)
                }
            };
            private.insert(row.kid.clone(), key);
        }
        let loaded = Loaded {
            times: rows.iter().map(times).collect(),
            rows,
            jwks: Arc::new(jwks),
            private,
            loaded_at: Some(now),
        };
        match self.loaded.write() {
            Ok(mut guard) => *guard = Arc::new(loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
        }
        Ok(())
    }

    /// The key that signs at `now`.
    pub fn signer(&self, now: i64) -> Option<Arc<SigningKey>> {
        let loaded = self.snapshot();
        let kid = &schedule::signing_key(now, &loaded.times)?.kid;
        loaded.private.get(kid).cloned()
    }

    /// The key that signs at `now`, from keys read recently enough to hold every successor that
    /// could be signing by now. Keys are published at least the publish lead before they sign,
    /// so keys read at `t` know every key that activates before `t + lead`; a replica that could
    /// not reload for longer (its database was unreachable, or the test clock jumped) would
    /// otherwise sign with a key the others have superseded and, a token lifetime later,
    /// retired — handing out tokens no verifier accepts. It reads the keys again first.
    pub async fn current_signer(&self, now: i64) -> Result<Option<Arc<SigningKey>>, KeyringError> {
        let margin = (self.policy.publish_lead - 1).max(0);
        if self
            .snapshot()
            .loaded_at
            .is_none_or(|at| now - at >= margin)
        {
            self.reload(now).await?;
        }
        Ok(self.signer(now))
    }

    /// The published keys and the `max-age` they may be cached for.
    pub fn jwks(&self, now: i64) -> (Arc<Jwks>, i64) {
        let loaded = self.snapshot();
        let max_age = schedule::jwks_max_age(now, &loaded.times, &self.policy);
        (loaded.jwks.clone(), max_age)
    }

    /// Every stored key with its phase at `now`, for `keyward keys list`.
    pub fn list(&self, now: i64) -> Vec<(SigningKeyRow, schedule::KeyPhase)> {
        let loaded = self.snapshot();
        loaded
            .rows
            .iter()
            .map(|row| {
                (
                    row.clone(),
                    schedule::phase(now, &times(row), &loaded.times),
                )
            })
            .collect()
    }

    /// Stores the operator's `OIDC_PRIVATE_KEY` as the active key, unless it is already stored.
    pub async fn import_configured(
        &self,
        pem: &str,
        now: i64,
        audit: &Auditor,
    ) -> Result<(), KeyringError> {
        let kid = keyward_jose::key::random_kid()?;
        let key = SigningKey::from_pem(kid, pem).map_err(KeyringError::ConfiguredKey)?;
        let fingerprint = key.fingerprint();
        if let Some(row) = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .find(|r| r.fingerprint == fingerprint)
        {
            return match row.retired_at {
                Some(_) => Err(KeyringError::ConfiguredKeyRetired { kid: row.kid }),
                None => Ok(()),
            };
        }
        self.insert(&key, KeySource::Configured, now, now, audit)
            .await
    }

    async fn insert(
        &self,
        key: &SigningKey,
        source: KeySource,
        now: i64,
        activates_at: i64,
        audit: &Auditor,
    ) -> Result<(), KeyringError> {
        let der = zeroize::Zeroizing::new(key.to_pkcs8()?);
        let row = SigningKeyRow {
            kid: key.kid().to_owned(),
            alg: key.alg().to_owned(),
            source,
            fingerprint: key.fingerprint(),
            public_jwk: serde_json::to_string(&key.public_jwk())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            sealed_private_key: Some(self.master.seal(&aad(key.kid()), &der)?),
            published_at: now,
            activates_at,
            activation_recorded: false,
            retires_at: None,
            retired_at: None,
        };
        self.store.insert_signing_key(&row).await?;
        let data = json!({"kid": row.kid, "alg": row.alg, "source": source.as_str(), "activates_at": clock::rfc3339(activates_at)});
        if let Err(e) = audit
            .record(kind::KEY_PUBLISHED, None, ACTOR, data.clone())
            .await
        {
            // The key is stored and will be served: its event is written on a later tick.
            self.unrecorded().push(data);
            return Err(e.into());
        }
        tracing::info!(kid = %row.kid, activates_at, source = source.as_str(), "signing key published");
        Ok(())
    }

    async fn generate(
        &self,
        now: i64,
        activates_at: i64,
        audit: &Auditor,
    ) -> Result<String, KeyringError> {
        let key = tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(|_| KeyringError::Key(KeyError::Generation))??;
        self.insert(&key, KeySource::Generated, now, activates_at, audit)
            .await?;
        Ok(key.kid().to_owned())
    }

    /// One pass of the schedule: if this process holds (or takes) the rotation lease, apply every
    /// due step; in any case reload, so replicas without the lease see new keys.
    pub async fn tick(&self, now: i64, audit: &Auditor) -> Result<(), KeyringError> {
        self.record_unrecorded(audit).await?;
        let lease_ttl = (self.tick_period().as_secs() as i64 * 3).max(3);
        if self
            .store
            .try_lease(LEASE, &self.holder, now, lease_ttl)
            .await?
        {
            // A step can make another due (the first key's activation), so plan again until done.
            for _ in 0..4 {
                let rows = self.store.signing_keys().await?;
                let keys: Vec<KeyTimes> = rows.iter().map(times).collect();
                let steps = schedule::plan(now, &keys, &self.policy);
                if steps.is_empty() {
                    break;
                }
                for step in steps {
                    self.apply(now, step, audit).await?;
                }
            }
        }
        self.reload(now).await
    }

    async fn apply(
        &self,
        now: i64,
        step: RotationStep,
        audit: &Auditor,
    ) -> Result<(), KeyringError> {
        match step {
            RotationStep::Generate { activates_at } => {
                self.generate(now, activates_at, audit).await?;
            }
            RotationStep::RecordActivation { kid } => {
                self.store.record_key_activation(&kid).await?;
                audit
                    .record(kind::KEY_ACTIVATED, None, ACTOR, json!({"kid": kid}))
                    .await?;
                tracing::info!(%kid, "signing key activated");
            }
            RotationStep::ScheduleRetirement { kid, retires_at } => {
                self.store.schedule_key_retirement(&kid, retires_at).await?;
                audit
                    .record(
                        kind::KEY_SUPERSEDED,
                        None,
                        ACTOR,
                        json!({"kid": kid, "retires_at": clock::rfc3339(retires_at)}),
                    )
                    .await?;
            }
            RotationStep::Retire { kid } => {
                self.store.retire_key(&kid, now).await?;
                audit
                    .record(kind::KEY_RETIRED, None, ACTOR, json!({"kid": kid}))
                    .await?;
                tracing::info!(%kid, "signing key retired");
            }
        }
        Ok(())
    }

    /// `keyward keys rotate`: publish a successor now. It signs after the publish lead, or at
    /// once with `immediate` (for a suspected compromise; verifiers refetch on the unknown kid).
    pub async fn rotate(
        &self,
        now: i64,
        immediate: bool,
        audit: &Auditor,
    ) -> Result<String, KeyringError> {
        if !self.policy.automatic {
            return Err(KeyringError::Manual);
        }
        let rows = self.store.signing_keys().await?;
        if let Some(pending) = rows
            .iter()
            .find(|r| r.retired_at.is_none() && r.activates_at > now)
            && !immediate
        {
            return Err(KeyringError::AlreadyPending {
                kid: pending.kid.clone(),
                activates_at: pending.activates_at,
            });
        }
        let activates_at = if immediate {
            now
        } else {
            schedule::earliest_activation(now, &self.policy)
        };
        let kid = self.generate(now, activates_at, audit).await?;
        self.reload(now).await?;
        Ok(kid)
    }
}
