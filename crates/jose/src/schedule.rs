//! The three-phase key rotation schedule (as SPIFFE/SPIRE does it):
//!
//! 1. **published** — a new key appears in the JWKS at least `publish_lead` before it signs, so
//!    every verifier's cache holds it before the first token carrying its `kid` exists;
//! 2. **active** — it signs every new token until its successor activates;
//! 3. **retiring** — it stays in the JWKS until `superseded + max_token_ttl + jwks_cache_age`, so
//!    every token it signed expires before a verifier could miss its key; then it is **retired**.
//!
//! Everything here is a pure function of the key times and `now`, so the replica that holds the
//! rotation lease can compute the same steps any other replica would.

/// How keys rotate. All durations are in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long one key signs before its successor takes over.
    pub interval: i64,
    /// How long a key is published before it signs.
    pub publish_lead: i64,
    /// The longest lifetime of a token this issuer mints.
    pub max_token_ttl: i64,
    /// The longest a verifier may cache the JWKS (also the cap of `Cache-Control: max-age`).
    pub jwks_cache_age: i64,
    /// `false` when the operator supplies the key (`OIDC_PRIVATE_KEY`): no keys are generated.
    pub automatic: bool,
}

impl RotationPolicy {
    pub const DAY: i64 = 24 * 3600;

    pub fn production() -> Self {
        Self {
            interval: 30 * Self::DAY,
            publish_lead: Self::DAY,
            max_token_ttl: 3600,
            jwks_cache_age: 3600,
            automatic: true,
        }
    }
}

/// What the schedule needs to know of one stored key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTimes {
    pub kid: String,
    pub published_at: i64,
    pub activates_at: i64,
    /// Set once the key has been superseded: when it leaves the JWKS.
    pub retires_at: Option<i64>,
    /// Whether its activation has been recorded (so it is audited once).
    pub activation_recorded: bool,
    pub retired: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPhase {
    Published,
    Active,
    Retiring,
    Retired,
}

impl KeyPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPhase::Published => "published",
            KeyPhase::Active => "active",
            KeyPhase::Retiring => "retiring",
            KeyPhase::Retired => "retired",
        }
    }
}

/// One change the rotation task must make and audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// Generate and publish a new key that starts signing at `activates_at`.
    Generate { activates_at: i64 },
    /// Record that `kid` now signs.
    RecordActivation { kid: String },
    /// `kid` was superseded; it leaves the JWKS at `retires_at`.
    ScheduleRetirement { kid: String, retires_at: i64 },
    /// Remove `kid` from the JWKS and destroy its private half.
    Retire { kid: String },
}

/// The earliest activation for a key published at `now`. Times are whole seconds and `now` is
/// rounded down, so one second is added: the real lead is then never shorter than the policy's.
pub fn earliest_activation(now: i64, policy: &RotationPolicy) -> i64 {
    now + policy.publish_lead + 1
}

/// The key that signs at `now`: the most recently activated live key.
pub fn signing_key(now: i64, keys: &[KeyTimes]) -> Option<&KeyTimes> {
    keys.iter()
        .filter(|k| !k.retired && k.activates_at <= now)
        .max_by_key(|k| (k.activates_at, k.published_at))
}

pub fn phase(now: i64, key: &KeyTimes, keys: &[KeyTimes]) -> KeyPhase {
    if key.retired {
        KeyPhase::Retired
    } else if key.activates_at > now {
        KeyPhase::Published
    } else if signing_key(now, keys).is_some_and(|s| s.kid == key.kid) {
        KeyPhase::Active
    } else {
        KeyPhase::Retiring
    }
}

/// When the key after the newest one must be published, if rotation is automatic.
pub fn next_publication(keys: &[KeyTimes], policy: &RotationPolicy) -> Option<i64> {
    if !policy.automatic {
        return None;
    }
    let newest = keys
        .iter()
        .filter(|k| !k.retired)
        .max_by_key(|k| k.activates_at)?;
    Some(newest.activates_at + policy.interval - policy.publish_lead)
}

/// `Cache-Control: max-age` for the JWKS: never longer than the time until the next key is
/// published, so no cache can hide a key that is about to sign; capped at the cache age.
pub fn jwks_max_age(now: i64, keys: &[KeyTimes], policy: &RotationPolicy) -> i64 {
    let cap = policy.jwks_cache_age.clamp(0, 3600);
    match next_publication(keys, policy) {
        Some(at) => (at - now).clamp(0, cap),
        None => cap,
    }
}

/// The steps that bring the stored keys in line with the schedule at `now`.
pub fn plan(now: i64, keys: &[KeyTimes], policy: &RotationPolicy) -> Vec<RotationStep> {
    let mut steps = Vec::new();
    let live: Vec<&KeyTimes> = keys.iter().filter(|k| !k.retired).collect();

    if policy.automatic {
        match live.iter().map(|k| k.activates_at).max() {
            // The very first key signs at once: no verifier can have cached anything yet.
            None => steps.push(RotationStep::Generate { activates_at: now }),
            Some(newest_activation) if newest_activation <= now => {
                let due = newest_activation + policy.interval;
                if now >= due - policy.publish_lead {
                    steps.push(RotationStep::Generate {
                        activates_at: due.max(earliest_activation(now, policy)),
                    });
                }
            }
            // A successor is already published and waiting.
            Some(_) => {}
        }
    }

    let signer = signing_key(now, keys).map(|k| k.kid.as_str());
    for key in &live {
        if key.activates_at > now {
            continue;
        }
        if !key.activation_recorded {
            steps.push(RotationStep::RecordActivation {
                kid: key.kid.clone(),
            });
        }
        if Some(key.kid.as_str()) == signer {
            continue;
        }
        // Superseded by the first key that activated after it.
        let superseded_at = live
            .iter()
            .filter(|k| k.activates_at > key.activates_at && k.activates_at <= now)
            .map(|k| k.activates_at)
            .min()
            .unwrap_or(now);
        let retires_at = key
            .retires_at
            .unwrap_or(superseded_at + policy.max_token_ttl + policy.jwks_cache_age);
        if key.retires_at.is_none() {
            steps.push(RotationStep::ScheduleRetirement {
                kid: key.kid.clone(),
                retires_at,
            });
        }
        if now >= retires_at {
            steps.push(RotationStep::Retire {
                kid: key.kid.clone(),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            interval: 100,
            publish_lead: 30,
            max_token_ttl: 10,
            jwks_cache_age: 5,
            automatic: true,
        }
    }

    /// Applies steps the way the server's rotation task does.
    fn apply(now: i64, keys: &mut Vec<KeyTimes>, steps: &[RotationStep], next_kid: &mut u32) {
        for step in steps {
            match step {
                RotationStep::Generate { activates_at } => {
                    *next_kid += 1;
                    keys.push(KeyTimes {
                        kid: format!("k{next_kid}"),
                        published_at: now,
                        activates_at: *activates_at,
                        retires_at: None,
                        activation_recorded: false,
                        retired: false,
                    });
                }
                RotationStep::RecordActivation { kid } => {
                    keys.iter_mut()
                        .find(|k| &k.kid == kid)
                        .unwrap()
                        .activation_recorded = true
                }
                RotationStep::ScheduleRetirement { kid, retires_at } => {
                    keys.iter_mut().find(|k| &k.kid == kid).unwrap().retires_at = Some(*retires_at)
                }
                RotationStep::Retire { kid } => {
                    keys.iter_mut().find(|k| &k.kid == kid).unwrap().retired = true
                }
            }
        }
    }

    #[test]
    fn a_full_cycle_publishes_early_signs_on_time_and_retires_late() {
        let policy = policy();
        let mut keys = Vec::new();
        let mut next_kid = 0;
        // Which kid signed at each second, and which kids were published.
        let mut signed_with: Vec<(i64, String)> = Vec::new();
        let mut published_since: std::collections::HashMap<String, i64> = Default::default();
        let mut removed_at: std::collections::HashMap<String, i64> = Default::default();
        for now in 0..400 {
            let steps = plan(now, &keys, &policy);
            apply(now, &mut keys, &steps, &mut next_kid);
            for k in keys.iter().filter(|k| !k.retired) {
                published_since.entry(k.kid.clone()).or_insert(now);
            }
            for k in keys.iter().filter(|k| k.retired) {
                removed_at.entry(k.kid.clone()).or_insert(now);
            }
            let signer = signing_key(now, &keys).unwrap();
            signed_with.push((now, signer.kid.clone()));
        }
        assert!(next_kid >= 4, "several rotations happened: {next_kid}");
        for (at, kid) in &signed_with {
            let published = published_since[kid];
            // The first key is the only one that may sign at the moment it appears.
            if kid != "k1" {
                assert!(
                    at - published >= policy.publish_lead,
                    "{kid} signed at {at} but was published at {published}"
                );
            }
            // A key signs only while it is published.
            assert!(removed_at.get(kid).is_none_or(|r| r > at));
        }
        // Every retired key outlived its last signature by ttl + cache age.
        for (kid, removed) in &removed_at {
            let last_signed = signed_with
                .iter()
                .filter(|(_, k)| k == kid)
                .map(|(t, _)| *t)
                .max()
                .unwrap();
            assert!(removed - last_signed > policy.max_token_ttl + policy.jwks_cache_age - 1);
        }
        // Activation is recorded once per key.
        assert!(
            keys.iter()
                .filter(|k| k.activates_at < 399)
                .all(|k| k.activation_recorded)
        );
    }

    #[test]
    fn jwks_max_age_never_outlasts_the_next_publication() {
        let policy = RotationPolicy::production();
        let keys = vec![KeyTimes {
            kid: "a".into(),
            published_at: 0,
            activates_at: 0,
            retires_at: None,
            activation_recorded: true,
            retired: false,
        }];
        let next = policy.interval - policy.publish_lead;
        assert_eq!(jwks_max_age(0, &keys, &policy), 3600);
        assert_eq!(jwks_max_age(next - 60, &keys, &policy), 60);
        assert_eq!(jwks_max_age(next + 1, &keys, &policy), 0);
        let manual = RotationPolicy {
            automatic: false,
            ..policy
        };
        assert_eq!(jwks_max_age(next + 1, &keys, &manual), 3600);
    }

    #[test]
    fn manual_keys_are_never_generated_but_superseded_ones_still_retire() {
        let policy = RotationPolicy {
            automatic: false,
            ..policy()
        };
        assert!(plan(0, &[], &policy).is_empty());
        let keys = vec![
            KeyTimes {
                kid: "old".into(),
                published_at: 0,
                activates_at: 0,
                retires_at: None,
                activation_recorded: true,
                retired: false,
            },
            KeyTimes {
                kid: "new".into(),
                published_at: 50,
                activates_at: 50,
                retires_at: None,
                activation_recorded: true,
                retired: false,
            },
        ];
        assert_eq!(
            plan(60, &keys, &policy),
            vec![RotationStep::ScheduleRetirement {
                kid: "old".into(),
                retires_at: 65
            }]
        );
    }
}
