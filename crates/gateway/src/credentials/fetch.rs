//! Getting one route credential as its automation: the kickoff plan with the automation's token
//! (exactly as `keyward run` gets it), a workload token minted for the plan's identity of the
//! cloud, and the cloud's exchange. Every failure names the route, the credential kind and the
//! step, with the cloud's cause and fix; never a token or a secret value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};
use keyward_client::Client;
use keyward_cloud::{Clouds, Deadline, aws};
use keyward_core::OrgId;
use keyward_core::api::v1::{KickoffIdentity, KickoffPlan, MintRequest};
use keyward_policy::CredentialSpec;
use keyward_runtime::{Platform, RuntimeError};
use keyward_store::Store;

use super::cache::Fresh;
use super::{CredentialError, CredentialSettings};

/// How long one credential fetch may take, retries included (the request waiting for it).
const DEADLINE: Duration = Duration::from_secs(20);
/// What an impersonated GCP token asks for (Google's default and maximum without an org policy).
const GCP_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// When a cloud gives no lifetime: the shortest its documentation allows for such a token.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(300);
/// Secrets are re-read this often unless the route says otherwise.
pub const DEFAULT_SECRET_CACHE: Duration = Duration::from_secs(300);

/// What the gateway adds to the outgoing request.
pub enum Credential {
    /// One header (the secret, a bearer token).
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
    /// Session credentials the request is signed with.
    Aws {
        credentials: aws::SessionCredentials,
        region: String,
    },
}

/// The wall clock, for the clouds' absolute expiry times and SigV4 request dates (both are in
/// real time; the cache itself measures with a monotonic clock).
#[allow(clippy::disallowed_methods)] // the gateway's one reading of the wall clock
pub fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// `route 'r': gcp credential: <step>: <detail>`.
pub fn failure(
    route: &str,
    spec: &CredentialSpec,
    step: &str,
    detail: impl std::fmt::Display,
) -> CredentialError {
    CredentialError::Unavailable(format!(
        "route '{route}': {} credential (automation '{}'): {step}: {detail}",
        kind(spec),
        automation(spec)
    ))
}

pub fn kind(spec: &CredentialSpec) -> &'static str {
    match spec {
        CredentialSpec::None => "none",
        CredentialSpec::Secret { .. } => "secret",
        CredentialSpec::Gcp { .. } => "gcp",
        CredentialSpec::Azure { .. } => "azure",
        CredentialSpec::Aws { .. } => "aws",
        CredentialSpec::Keyward { .. } => "keyward",
    }
}

fn automation(spec: &CredentialSpec) -> &str {
    match spec {
        CredentialSpec::None => "",
        CredentialSpec::Secret { automation, .. }
        | CredentialSpec::Gcp { automation, .. }
        | CredentialSpec::Azure { automation, .. }
        | CredentialSpec::Aws { automation, .. }
        | CredentialSpec::Keyward { automation, .. } => automation,
    }
}

fn token_env(spec: &CredentialSpec) -> &str {
    match spec {
        CredentialSpec::None => "",
        CredentialSpec::Secret { token_env, .. }
        | CredentialSpec::Gcp { token_env, .. }
        | CredentialSpec::Azure { token_env, .. }
        | CredentialSpec::Aws { token_env, .. }
        | CredentialSpec::Keyward { token_env, .. } => token_env,
    }
}

pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Talks to Keyward and the clouds for every route.
pub struct Fetcher {
    settings: CredentialSettings,
    clouds: Clouds,
    env: EnvLookup,
    /// One platform client per automation token (by the token's variable name and value).
    platforms: Mutex<HashMap<(String, String), (Platform, Client)>>,
    /// The platform's store, to check whose an automation token is (see `check_owner`).
    pub(crate) store: Option<Arc<dyn Store>>,
}

impl Fetcher {
    pub fn new(settings: CredentialSettings, env: EnvLookup) -> Result<Fetcher, CredentialError> {
        let clouds = match &settings.cloud_endpoints {
            Some(path) => Clouds::from_file(path),
            None => Clouds::real(),
        }
        .map_err(|e| {
            CredentialError::Unavailable(format!(
                "the gateway's cloud clients cannot be built: {e}"
            ))
        })?;
        Ok(Fetcher {
            settings,
            clouds,
            env,
            platforms: Mutex::default(),
            store: None,
        })
    }

    /// Keyward as the route's automation: its token from the environment variable the route
    /// names, on the platform URL the gateway was given.
    fn platform(
        &self,
        route: &str,
        spec: &CredentialSpec,
    ) -> Result<(Platform, Client), CredentialError> {
        let fail = |detail: String| failure(route, spec, "the automation token", detail);
        let name = token_env(spec);
        let token = (self.env)(name).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            fail(format!(
                "the environment variable {name} is not set in the gateway's environment; set it to a token of automation '{}' (POST /api/v1/automations/{}/tokens)",
                automation(spec),
                automation(spec)
            ))
        })?;
        let url = self.settings.platform_url.as_ref().ok_or_else(|| {
            fail("the gateway has no Keyward URL to ask for it; start it with --platform-url (KEYWARD_PLATFORM_URL)".into())
        })?;
        let key = (name.to_owned(), token.clone());
        let mut platforms = self.platforms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = platforms.get(&key) {
            return Ok(hit.clone());
        }
        let ca = self.settings.platform_ca.as_deref();
        let platform = Platform::new(url.as_str(), &token, ca).map_err(|e| fail(e.to_string()))?;
        let client = Client::new(url.as_str(), ca)
            .map_err(|e| fail(e.to_string()))?
            .token(&token);
        platforms.insert(key, (platform.clone(), client.clone()));
        Ok((platform, client))
    }

    /// The automation token belongs to the route's organization. Routes of several
    /// organizations share one gateway process (stored routes); without this a route could name
    /// the variable holding another organization's token and send its credential to its own
    /// upstream.
    async fn check_owner(
        &self,
        org: Option<OrgId>,
        route: &str,
        spec: &CredentialSpec,
    ) -> Result<(), CredentialError> {
        let (Some(org), Some(store)) = (org, self.store.as_ref()) else {
            return Ok(());
        };
        let fail = |detail: String| failure(route, spec, "the automation token", detail);
        let name = token_env(spec);
        let token = (self.env)(name).unwrap_or_default();
        let resolved = store
            .resolve_token(&keyward_store::secret::hash_token(token.trim()))
            .await
            .map_err(|e| fail(format!("the token could not be looked up: {e}")))?;
        match resolved.and_then(|r| r.automation) {
            Some(automation) if automation.org_id == org => Ok(()),
            Some(_) => Err(fail(format!(
                "the token in {name} belongs to an automation of another organization than the route's; a route may only use its own organization's automations"
            ))),
            None => Err(fail(format!(
                "the token in {name} is not an automation token Keyward knows (revoked, or a personal token); create one with POST /api/v1/automations/{}/tokens",
                automation(spec)
            ))),
        }
    }

    /// The automation's kickoff plan, checked to be the route's automation's.
    async fn kickoff(
        &self,
        route: &str,
        spec: &CredentialSpec,
        platform: &Platform,
    ) -> Result<KickoffPlan, CredentialError> {
        let plan = platform
            .kickoff()
            .await
            .map_err(|e| failure(route, spec, "Keyward kickoff plan", e))?;
        if plan.automation.name != automation(spec) {
            return Err(failure(
                route,
                spec,
                "the automation token",
                format!(
                    "the token in {} belongs to automation '{}', not '{}'; put a token of '{}' there or name '{}' in the route",
                    token_env(spec),
                    plan.automation.name,
                    automation(spec),
                    automation(spec),
                    plan.automation.name
                ),
            ));
        }
        Ok(plan)
    }

    /// The plan's identity for `cloud` and a fresh workload token for it.
    async fn identity_token(
        &self,
        route: &str,
        spec: &CredentialSpec,
        platform: &Platform,
        plan: &KickoffPlan,
        cloud: &str,
    ) -> Result<(KickoffIdentity, String, String), CredentialError> {
        let identity = plan
            .identities
            .iter()
            .find(|i| i.cloud == cloud)
            .cloned()
            .ok_or_else(|| {
                failure(
                    route,
                    spec,
                    "workload identity",
                    format!(
                        "automation '{}' has no {cloud} workload identity config (none is the organization's default for {cloud} or restricted to it); create one or mark one default_for_cloud",
                        automation(spec)
                    ),
                )
            })?;
        let minted = platform
            .mint(identity.config_id, &plan.kickoff_id)
            .await
            .map_err(|e| {
                failure(
                    route,
                    spec,
                    &format!("minting a workload token for config '{}'", identity.config),
                    e,
                )
            })?;
        Ok((identity, minted.token, minted.audience))
    }

    /// Fetches the route's credential.
    pub async fn fetch(
        &self,
        org: Option<OrgId>,
        route: &str,
        spec: &CredentialSpec,
    ) -> Result<Fresh<Credential>, CredentialError> {
        let (platform, client) = self.platform(route, spec)?;
        self.check_owner(org, route, spec).await?;
        let plan = self.kickoff(route, spec, &platform).await?;
        let deadline = Deadline::after(DEADLINE);
        // The cloud's error names its step (and the cause and fix) itself.
        let cloud = |e: keyward_cloud::CloudError| {
            CredentialError::Unavailable(format!(
                "route '{route}': {} credential (automation '{}'): {e}",
                kind(spec),
                automation(spec)
            ))
        };
        match spec {
            CredentialSpec::None => Err(failure(route, spec, "none", "nothing to fetch")),
            CredentialSpec::Secret {
                env,
                header,
                format,
                cache_seconds,
                ..
            } => {
                let value = self.secret(route, spec, &platform, &plan, env).await?;
                crate::masking::report_secret(org, &value);
                let text = format
                    .as_deref()
                    .unwrap_or("Bearer {}")
                    .replace("{}", &value);
                let lifetime = cache_seconds
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_SECRET_CACHE);
                Ok(Fresh {
                    value: header_credential(route, spec, header, &text)?,
                    lifetime,
                })
            }
            CredentialSpec::Gcp { .. } => {
                let (identity, token, audience) = self
                    .identity_token(route, spec, &platform, &plan, "gcp")
                    .await?;
                let gcp = self.clouds.gcp();
                let federated = gcp
                    .exchange(&audience, &token, &deadline)
                    .await
                    .map_err(cloud)?;
                let access = match identity.service_account_email.as_deref() {
                    Some(email) if !email.is_empty() => gcp
                        .generate_access_token(&federated, email, GCP_TOKEN_LIFETIME, &deadline)
                        .await
                        .map_err(cloud)?,
                    _ => federated,
                };
                let lifetime = match (&access.expire_time, access.expires_in) {
                    (Some(at), _) => until(route, spec, at)?,
                    (None, Some(secs)) => Duration::from_secs(secs),
                    (None, None) => UNKNOWN_LIFETIME,
                };
                Ok(Fresh {
                    value: bearer(route, spec, access.token.expose())?,
                    lifetime,
                })
            }
            CredentialSpec::Azure { scope, .. } => {
                let (identity, token, _) = self
                    .identity_token(route, spec, &platform, &plan, "azure")
                    .await?;
                let access = self
                    .clouds
                    .azure()
                    .token(
                        identity.tenant_id.as_deref().unwrap_or_default(),
                        identity.client_id.as_deref().unwrap_or_default(),
                        &token,
                        scope,
                        &deadline,
                    )
                    .await
                    .map_err(cloud)?;
                Ok(Fresh {
                    value: bearer(route, spec, access.token.expose())?,
                    lifetime: access
                        .expires_in
                        .map(Duration::from_secs)
                        .unwrap_or(UNKNOWN_LIFETIME),
                })
            }
            CredentialSpec::Aws { region, .. } => {
                let (identity, token, _) = self
                    .identity_token(route, spec, &platform, &plan, "aws")
                    .await?;
                let identity_region = aws::region_or_default(identity.region.as_deref()).to_owned();
                let session = format!(
                    "keyward-gateway-{}",
                    &plan.kickoff_id[..8.min(plan.kickoff_id.len())]
                );
                let credentials = self
                    .clouds
                    .aws(&identity_region)
                    .assume_role_with_web_identity(
                        identity.role_arn.as_deref().unwrap_or_default(),
                        &session,
                        &token,
                        None,
                        &deadline,
                    )
                    .await
                    .map_err(cloud)?;
                let lifetime = until(route, spec, &credentials.expiration)?;
                Ok(Fresh {
                    value: Credential::Aws {
                        credentials,
                        region: region.clone().unwrap_or(identity_region),
                    },
                    lifetime,
                })
            }
            CredentialSpec::Keyward { audience, .. } => {
                let minted = client
                    .mint(&MintRequest {
                        audience: Some(audience.clone()),
                        kickoff_id: Some(plan.kickoff_id.clone()),
                        ..MintRequest::default()
                    })
                    .await
                    .map_err(|e| {
                        failure(
                            route,
                            spec,
                            &format!("minting a Keyward token for audience {audience}"),
                            e,
                        )
                    })?;
                let left = minted.expires_at.unix_timestamp() - unix(wall_clock());
                Ok(Fresh {
                    value: bearer(route, spec, &minted.token)?,
                    lifetime: Duration::from_secs(left.max(0) as u64),
                })
            }
        }
    }

    /// One variable of the automation's plan, resolved as `keyward run` resolves it (a direct
    /// value, or fetched from its secrets manager through the provider's workload identity).
    async fn secret(
        &self,
        route: &str,
        spec: &CredentialSpec,
        platform: &Platform,
        plan: &KickoffPlan,
        key: &str,
    ) -> Result<String, CredentialError> {
        let mut only = plan.clone();
        only.env.retain(|v| v.key == key);
        if only.env.is_empty() {
            return Err(failure(
                route,
                spec,
                &format!("environment variable {key}"),
                format!(
                    "automation '{}' has no variable {key} assigned; assign it with PUT /api/v1/automations/{}/environment-variables",
                    automation(spec),
                    automation(spec)
                ),
            ));
        }
        let step = format!("resolving environment variable {key}");
        let mut values = keyward_runtime::secrets::resolve(platform, &self.clouds, &only)
            .await
            .map_err(|e| match e {
                RuntimeError::Secrets(lines) => failure(route, spec, &step, lines.join("; ")),
                other => failure(route, spec, &step, other),
            })?;
        values
            .remove(key)
            .map(|v| v.expose().to_owned())
            .ok_or_else(|| failure(route, spec, &step, "the plan resolved without it"))
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The time from now until an RFC 3339 expiry the cloud gave.
fn until(route: &str, spec: &CredentialSpec, at: &str) -> Result<Duration, CredentialError> {
    let parsed = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            failure(
                route,
                spec,
                "reading the credential's expiry",
                format!("'{at}' is not an RFC 3339 time: {e}"),
            )
        })?;
    let left = parsed.unix_timestamp() - unix(wall_clock());
    Ok(Duration::from_secs(left.max(0) as u64))
}

fn bearer(route: &str, spec: &CredentialSpec, token: &str) -> Result<Credential, CredentialError> {
    header_credential(route, spec, "authorization", &format!("Bearer {token}"))
}

/// A header the upstream gets; marked sensitive so no debug output or HPACK table keeps it.
fn header_credential(
    route: &str,
    spec: &CredentialSpec,
    name: &str,
    text: &str,
) -> Result<Credential, CredentialError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        failure(
            route,
            spec,
            "the header",
            format!("'{name}' is not an HTTP header name; use letters, digits and '-'"),
        )
    })?;
    let mut value = HeaderValue::from_str(text).map_err(|_| {
        failure(
            route,
            spec,
            "the header value",
            "the credential contains a line break or control character that no HTTP header can carry; fix the stored secret",
        )
    })?;
    value.set_sensitive(true);
    Ok(Credential::Header { name, value })
}
