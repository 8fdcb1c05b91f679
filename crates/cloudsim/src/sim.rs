//! The simulated world at run time: the declarations from the state file, the secrets as they
//! change, the tokens the simulated clouds issued, fault knobs, request counters and the clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aws::types::{AwsSecret, AwsSession};
use crate::jwt::KeyCache;
use crate::state::{SecretDecl, State};
use crate::version::Version;

/// The public half of a service account key, as IAM keeps it.
#[derive(Clone, Debug)]
pub struct ServiceAccountKey {
    pub email: String,
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

/// A bearer token a simulated cloud handed out, and what it stands for.
#[derive(Clone, Debug)]
pub enum Grant {
    GcpFederated {
        project_number: String,
        pool: String,
        subject: String,
        attributes: BTreeMap<String, Value>,
        exp: i64,
    },
    GcpServiceAccount {
        email: String,
        exp: i64,
    },
    Entra {
        tenant: String,
        client_id: String,
        resource: String,
        exp: i64,
    },
}

impl Grant {
    pub fn exp(&self) -> i64 {
        match self {
            Grant::GcpFederated { exp, .. }
            | Grant::GcpServiceAccount { exp, .. }
            | Grant::Entra { exp, .. } => *exp,
        }
    }
}

/// A fault knob. `endpoint` is one of [`ENDPOINTS`] or absent for every endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Added to every matching request.
    #[serde(default)]
    pub latency_ms: u64,
    /// Probability (0–1) that a matching request fails.
    #[serde(default)]
    pub error_rate: f64,
    /// Fail exactly the next `count` matching requests (takes precedence over `error_rate`).
    #[serde(default)]
    pub count: Option<u32>,
    /// Status of an injected failure: 429 or 5xx (default 503).
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds on an injected failure.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Close the connection instead of answering.
    #[serde(default)]
    pub drop: bool,
}

pub const ENDPOINTS: &[&str] = &[
    "gcp.sts",
    "gcp.oauth2",
    "gcp.iam",
    "gcp.secretmanager",
    "gcp.vertex",
    "azure.token",
    "azure.discovery",
    "azure.keyvault",
    "aws.sts",
    "aws.secretsmanager",
    "azure.openai",
    "aws.bedrock",
];

pub enum Injected {
    None,
    Fail {
        status: u16,
        retry_after: Option<u64>,
    },
    Drop,
}

#[derive(Default)]
pub struct Mutable {
    pub gcp_secrets: BTreeMap<String, Vec<Version>>,
    /// Keyed by (vault name, secret name).
    pub azure_secrets: BTreeMap<(String, String), Vec<Version>>,
    pub aws_secrets: BTreeMap<String, AwsSecret>,
    pub tokens: HashMap<String, Grant>,
    pub aws_sessions: HashMap<String, AwsSession>,
    /// Service account keys created through the admin endpoint, by key id.
    pub gcp_keys: HashMap<String, ServiceAccountKey>,
    pub faults: Vec<Fault>,
    pub counts: BTreeMap<String, u64>,
    pub clock_offset: i64,
    /// Set through `POST /_cloudsim/token-lifetime`: every access token, federated token and
    /// session issued from then on lives at most this long (refresh tests).
    pub token_lifetime: Option<i64>,
}

pub struct Sim {
    pub state: State,
    pub keys: KeyCache,
    /// `https://127.0.0.1:<port>`: the origin every simulated endpoint lives under.
    pub base: String,
    /// Each Key Vault's own origin (vault name → `https://127.0.0.1:<port>`), as real vaults each
    /// have their own host: the SDK parses `<vault origin>/secrets/<name>/<version>` ids.
    pub vault_origins: std::collections::BTreeMap<String, String>,
    /// Bearer token of the `/_cloudsim/*` admin endpoints (in the endpoints file): loopback
    /// alone admits every local user of a shared host.
    pub admin_token: String,
    pub m: Mutex<Mutable>,
}

pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn random_upper(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

impl Sim {
    pub fn new(
        state: State,
        keys: KeyCache,
        base: String,
        vault_origins: std::collections::BTreeMap<String, String>,
        now: i64,
    ) -> Self {
        let mut m = Mutable::default();
        let versions = |decl: &SecretDecl| -> Vec<Version> {
            decl.all_versions()
                .into_iter()
                .enumerate()
                .map(|(i, value)| Version {
                    id: (i + 1).to_string(),
                    value,
                    created: now,
                })
                .collect()
        };
        if let Some(gcp) = &state.file.gcp {
            for s in &gcp.secrets {
                m.gcp_secrets.insert(s.name.get_ref().clone(), versions(s));
            }
        }
        if let Some(azure) = &state.file.azure {
            for vault in &azure.vaults {
                for s in &vault.secrets {
                    let mut v = versions(s);
                    for version in &mut v {
                        version.id = random_string(32).to_lowercase();
                    }
                    m.azure_secrets
                        .insert((vault.name.get_ref().clone(), s.name.get_ref().clone()), v);
                }
            }
        }
        if let Some(aws) = &state.file.aws {
            for s in &aws.secrets {
                let name = s.name.get_ref().clone();
                let mut v = versions(s);
                for version in &mut v {
                    version.id = uuid::Uuid::new_v4().to_string();
                }
                let arn = format!(
                    "arn:aws:secretsmanager:{}:{}:secret:{}-{}",
                    aws.region.get_ref(),
                    aws.account_id.get_ref(),
                    name,
                    random_string(6)
                );
                m.aws_secrets.insert(name, AwsSecret { arn, versions: v });
            }
        }
        Sim {
            state,
            keys,
            base,
            vault_origins,
            admin_token: format!("kwsim_{}", random_string(40)),
            m: Mutex::new(m),
        }
    }

    /// The vault's URL: its own origin, or under `/vaults/<name>` on the main origin when it has
    /// none (a simulator built without listeners, in unit tests).
    pub fn vault_url(&self, name: &str) -> String {
        self.vault_origins
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("{}/vaults/{name}", self.base))
    }

    /// The resource a vault's 401 challenge names. Real vaults live at `<name>.vault.azure.net`
    /// and name `https://vault.azure.net`; azure-keyvault-secrets checks that the vault's host
    /// ends with `.` + the resource's host. A loopback vault `127.0.0.1:<port>` therefore names
    /// `https://0.0.1:<port>` — its host minus the first label — which Entra here accepts as a
    /// Key Vault resource.
    pub fn vault_resource(&self, name: &str) -> String {
        let url = self.vault_url(name);
        let authority = url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default();
        match authority.split_once('.') {
            Some((_, parent)) if parent.contains('.') => format!("https://{parent}"),
            _ => self.base.clone(),
        }
    }

    /// Whether `resource` is one a Key Vault token may be issued for.
    pub fn is_vault_resource(&self, resource: &str) -> bool {
        resource == "https://vault.azure.net"
            || resource == self.base
            || self
                .vault_origins
                .keys()
                .any(|name| self.vault_resource(name) == resource)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.m
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unix seconds as the simulated clouds see them (wall clock plus the admin offset).
    pub fn now(&self) -> i64 {
        crate::clock::wall_unix() + self.lock().clock_offset
    }

    /// A token's lifetime: `default`, shortened by the token-lifetime knob when set.
    pub fn lifetime(&self, default: i64) -> i64 {
        match self.lock().token_lifetime {
            Some(max) => default.min(max),
            None => default,
        }
    }

    pub fn issue(&self, grant: Grant, prefix: &str) -> String {
        let token = format!("{prefix}{}", random_string(48));
        let mut m = self.lock();
        let now = crate::clock::wall_unix() + m.clock_offset;
        m.tokens.retain(|_, g| g.exp() > now - 3600);
        m.tokens.insert(token.clone(), grant);
        token
    }

    /// The grant behind a bearer token, if it exists and has not expired.
    pub fn grant(&self, token: &str) -> Option<Grant> {
        let m = self.lock();
        let now = crate::clock::wall_unix() + m.clock_offset;
        m.tokens.get(token).filter(|g| g.exp() > now).cloned()
    }

    /// Counts the request and decides whether a fault knob hits it.
    pub fn count_and_fault(&self, endpoint: &str) -> (u64, Injected) {
        let mut m = self.lock();
        *m.counts.entry(endpoint.to_owned()).or_default() += 1;
        let mut latency = 0;
        let mut injected = Injected::None;
        for fault in m.faults.iter_mut() {
            if fault.endpoint.as_deref().is_some_and(|e| e != endpoint) {
                continue;
            }
            latency += fault.latency_ms;
            if !matches!(injected, Injected::None) {
                continue;
            }
            let hit = match fault.count.as_mut() {
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
                None => {
                    fault.error_rate > 0.0
                        && rand::rng().random_bool(fault.error_rate.clamp(0.0, 1.0))
                }
            };
            if hit {
                injected = if fault.drop {
                    Injected::Drop
                } else {
                    Injected::Fail {
                        status: fault.status.unwrap_or(503),
                        retry_after: fault.retry_after,
                    }
                };
            }
        }
        (latency, injected)
    }
}
