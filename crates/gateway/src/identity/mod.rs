//! Who is calling, verified in memory on the hot path: Keyward workload tokens (the platform's
//! JWKS, cached; an unknown `kid` refetches, rate-limited), the organization IdP's access tokens
//! (issuer, audience, JWKS), and Keyward personal access tokens / device-login tokens (looked up
//! once, then cached briefly).
//!
//! How a token is told apart: an opaque one is a personal access token; a JWT goes to the
//! issuer it names — the organization IdP, or the platform (a workload token, or with `typ`
//! `at+jwt` a device-login access token) — and is then verified with that issuer's keys only.
//! Every refusal names the check that failed and never contains the token.
//!
//! For the pipeline: [`Verifier::verify_for`] with the route's organization (a person acts in
//! that organization with their role there; a workload token of another organization is
//! refused); `Missing`, `Refused` and `NotAccepted` are the caller's (401), `Unavailable` is
//! the platform's (its keys or database unreachable; not the caller's fault).

mod idp;
mod jwks;
mod jwt;
mod people;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_people;
#[cfg(test)]
mod tests_platform;
mod workload_cache;

use std::path::PathBuf;
use std::sync::Arc;

use keyward_client::Trust;
use keyward_core::OrgId;
use keyward_policy::{Accept, Principal, PrincipalKind};
// The audience of Keyward's own device-login access tokens.
use keyward_server::config::provider::LOCAL_AUDIENCE;
use keyward_store::Store;
use url::Url;

use idp::IdpVerifier;
use jwks::{Locator, RemoteKeys};
use people::{Person, PersonCache};

pub use jwks::{MAX_AGE_SECS, MIN_REFETCH_SECS};
pub use jwt::LEEWAY_SECS;
pub use people::PERSON_TTL_SECS;

/// Where tokens come from and what they must say.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// Keyward's URL: its discovery names the workload issuer and its JWKS.
    pub platform_url: Option<Url>,
    /// A CA bundle the platform's certificate chains to (default: the data dir's CA, else the
    /// platform roots).
    pub platform_ca: Option<PathBuf>,
    /// The `aud` workload tokens must carry to be accepted here.
    pub workload_audience: String,
    /// The organization identity provider, when its access tokens are accepted.
    pub idp: Option<IdpSettings>,
}

#[derive(Clone, Debug)]
pub struct IdpSettings {
    pub issuer: String,
    pub audience: String,
    /// Default: from the issuer's discovery document.
    pub jwks_url: Option<Url>,
    /// The claim holding the person's groups (default `groups`).
    pub groups_claim: String,
    pub ca_file: Option<PathBuf>,
}

/// Why a caller was refused: which check failed, never the token itself.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no credential: send Authorization: Bearer <token>")]
    Missing,
    /// The token was read and refused; `check` names the failed check in words.
    #[error("{check}")]
    Refused { check: String },
    /// The route does not take this kind of caller.
    #[error("this route does not accept {kind} callers; it accepts {accepted}")]
    NotAccepted { kind: String, accepted: String },
    /// A key set or the store could not be reached: a 503-class problem, not the caller's.
    #[error("{0}")]
    Unavailable(String),
}

/// The verifiers, built once and shared by every request.
pub struct Verifier {
    settings: IdentitySettings,
    store: Arc<dyn Store>,
    /// The platform's keys: workload tokens and device-login access tokens.
    platform: Option<RemoteKeys>,
    idp: Option<IdpVerifier>,
    people: PersonCache,
    workloads: workload_cache::WorkloadCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn discovery_url(base: &str) -> Result<Url, IdentityError> {
    let text = format!(
        "{}/.well-known/openid-configuration",
        base.trim_end_matches('/')
    );
    Url::parse(&text).map_err(|e| {
        IdentityError::Unavailable(format!(
            "{base} cannot name a discovery document ({e}): give an absolute https:// URL"
        ))
    })
}

/// Where Keyward's platform serves its key set (`GET /oauth2/jwks`, SPEC §3).
fn platform_jwks_url(base: &str) -> Result<Url, IdentityError> {
    let text = format!("{}/oauth2/jwks", base.trim_end_matches('/'));
    Url::parse(&text).map_err(|e| {
        IdentityError::Unavailable(format!(
            "{base} cannot name the platform's key set ({e}): give an absolute https:// URL"
        ))
    })
}

fn http(
    ca: Option<&std::path::Path>,
    trust: Trust,
    base: &str,
) -> Result<keyward_client::Client, IdentityError> {
    keyward_client::http_client_trusting(ca, trust)
        .and_then(|http| keyward_client::Client::with_http(http, base))
        .map_err(|e| IdentityError::Unavailable(format!("the HTTP client for {base}: {e}")))
}

/// `https://<host>[:port][/path]` of a URL: the issuer of Keyward's own access tokens for a
/// server reached at that URL.
fn https_form(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    format!("https://{}", rest.trim_end_matches('/'))
}

fn accept_name(a: Accept) -> &'static str {
    match a {
        Accept::Workload => "workload",
        Accept::Idp => "idp",
        Accept::Pat => "pat",
    }
}

fn refused(check: impl Into<String>) -> IdentityError {
    IdentityError::Refused {
        check: check.into(),
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let text = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Verifier {
    pub async fn new(
        settings: IdentitySettings,
        store: Arc<dyn Store>,
    ) -> Result<Verifier, IdentityError> {
        let platform = match &settings.platform_url {
            Some(url) => Some(RemoteKeys::new(
                "the platform",
                http(
                    settings.platform_ca.as_deref(),
                    Trust::Keyward,
                    url.as_str(),
                )?,
                Locator::Discovery {
                    url: discovery_url(url.as_str())?,
                    expect_issuer: None,
                    keys_at: Some(platform_jwks_url(url.as_str())?),
                },
            )),
            None => None,
        };
        let idp = match &settings.idp {
            Some(idp) => {
                let locator = match &idp.jwks_url {
                    Some(url) => Locator::Jwks {
                        url: url.clone(),
                        issuer: idp.issuer.clone(),
                    },
                    None => Locator::Discovery {
                        url: discovery_url(&idp.issuer)?,
                        expect_issuer: Some(idp.issuer.clone()),
                        keys_at: None,
                    },
                };
                let client = http(
                    idp.ca_file.as_deref(),
                    Trust::KeywardAndPlatform,
                    &idp.issuer,
                )?;
                Some(IdpVerifier {
                    settings: idp.clone(),
                    keys: RemoteKeys::new("the identity provider", client, locator),
                })
            }
            None => None,
        };
        Ok(Verifier {
            settings,
            store,
            platform,
            idp,
            people: PersonCache::default(),
            workloads: workload_cache::WorkloadCache::default(),
        })
    }

    /// Fetches the key sets now (at startup), so the first request does not wait for them.
    /// A failure is worth a log line, not a refusal to start: requests retry, rate-limited.
    pub async fn warm_up(&self, now: i64) -> Result<(), IdentityError> {
        if let Some(platform) = &self.platform {
            platform.published(now).await?;
        }
        if let Some(idp) = &self.idp {
            idp.keys.published(now).await?;
        }
        Ok(())
    }

    /// How many times the platform's and the identity provider's key sets were fetched
    /// (for `/metrics`).
    pub fn key_fetches(&self) -> (u64, u64) {
        (
            self.platform.as_ref().map_or(0, RemoteKeys::fetch_count),
            self.idp.as_ref().map_or(0, |i| i.keys.fetch_count()),
        )
    }

    /// Verifies the request's bearer token (`Authorization`) for a route accepting `accept`.
    /// `now` is Unix seconds. A person who belongs to several organizations is refused here;
    /// routes owned by an organization use [`Verifier::verify_for`].
    pub async fn verify(
        &self,
        headers: &http::HeaderMap,
        accept: &[Accept],
        now: i64,
    ) -> Result<Principal, IdentityError> {
        self.verify_for(headers, accept, None, now).await
    }

    /// [`Verifier::verify`] for a route owned by `route_org`: a person must be a member of it
    /// (their role there is the principal's role), and a workload token must belong to it.
    pub async fn verify_for(
        &self,
        headers: &http::HeaderMap,
        accept: &[Accept],
        route_org: Option<OrgId>,
        now: i64,
    ) -> Result<Principal, IdentityError> {
        let token = bearer(headers).ok_or(IdentityError::Missing)?;
        if !jwt::looks_like_jwt(token) {
            accepts(accept, Accept::Pat)?;
            let person =
                people::personal_token(self.store.as_ref(), &self.people, token, now).await?;
            return person_principal(PrincipalKind::Pat, &person, route_org, None, Vec::new());
        }
        // A workload token verified before: the same bytes, still unexpired.
        let cache_key = keyward_store::secret::hash_token(token);
        if let Some(principal) = self.workloads.get(&cache_key, now) {
            accepts(accept, Accept::Workload)?;
            check_route_org(&principal.org, route_org)?;
            return Ok(principal);
        }
        let parsed = jwt::parse(token)?;
        let iss = parsed.issuer().unwrap_or("").to_owned();
        if let Some(idp) = &self.idp
            && iss == idp.settings.issuer
        {
            accepts(accept, Accept::Idp)?;
            let found = idp
                .verify(self.store.as_ref(), &self.people, &parsed, now)
                .await?;
            return person_principal(
                PrincipalKind::Idp,
                &found.person,
                route_org,
                found.email,
                found.groups,
            );
        }
        let Some(platform) = &self.platform else {
            return Err(self.untrusted_issuer(&iss, None));
        };
        let published = platform.published(now).await?;
        let access = parsed
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(keyward_jose::access::ACCESS_TOKEN_TYP));
        // Keyward issues people's access tokens as `https://<its domain>`.
        let local = || {
            iss == https_form(&published.issuer)
                || self
                    .settings
                    .platform_url
                    .as_ref()
                    .is_some_and(|u| iss == https_form(u.as_str()))
        };
        if access && local() {
            // A device-login (`keyward login`) access token: a person, like a PAT.
            accepts(accept, Accept::Pat)?;
            let (published, _) = platform.key_for(parsed.kid.as_deref(), now).await?;
            let claims = keyward_jose::verify_access(
                token,
                &published.jose,
                &iss,
                LOCAL_AUDIENCE,
                now,
                LEEWAY_SECS,
            )
            .map_err(|e| refused(e.to_string()))?;
            let person =
                people::access_token_person(self.store.as_ref(), &self.people, token, &claims, now)
                    .await?;
            return person_principal(PrincipalKind::Pat, &person, route_org, None, Vec::new());
        }
        if access || iss != published.issuer {
            return Err(self.untrusted_issuer(&iss, Some(&published.issuer)));
        }
        accepts(accept, Accept::Workload)?;
        let (published, key) = platform.key_for(parsed.kid.as_deref(), now).await?;
        parsed.check_signature(&key, platform.who)?;
        let claims = &parsed.claims;
        jwt::check_claims(
            claims,
            &published.issuer,
            &self.settings.workload_audience,
            now,
        )?;
        let org = jwt::required(claims, "organization_id")?;
        let org_id: OrgId = org
            .parse()
            .map_err(|_| refused("the token's organization_id is not an organization uuid"))?;
        let principal = Principal {
            kind: PrincipalKind::Workload,
            org: org_id.to_string(),
            subject: jwt::required(claims, "sub")?.to_owned(),
            email: None,
            groups: Vec::new(),
            role: None,
            automation: Some(jwt::required(claims, "automation_name")?.to_owned()),
        };
        // Kept for the next request whatever this route's organization: the token is valid;
        // whether it may use a route is checked on every request, cached or not.
        if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64) {
            self.workloads.put(cache_key, principal.clone(), exp, now);
        }
        check_route_org(&principal.org, route_org)?;
        Ok(principal)
    }

    fn untrusted_issuer(&self, iss: &str, platform: Option<&str>) -> IdentityError {
        let mut trusted = Vec::new();
        if let Some(p) = platform {
            trusted.push(format!("{p:?} (workload tokens)"));
        }
        if let Some(idp) = &self.idp {
            trusted.push(format!("{:?} (identity provider)", idp.settings.issuer));
        }
        let trusted = if trusted.is_empty() {
            "no JWT issuer (give --platform-url or the --idp-* settings)".to_owned()
        } else {
            trusted.join(", ")
        };
        refused(format!(
            "the token's issuer is {iss:?}, this gateway accepts {trusted}"
        ))
    }
}

fn accepts(accept: &[Accept], kind: Accept) -> Result<(), IdentityError> {
    if accept.contains(&kind) {
        return Ok(());
    }
    let accepted = if accept.is_empty() {
        "none".to_owned()
    } else {
        accept
            .iter()
            .map(|a| accept_name(*a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(IdentityError::NotAccepted {
        kind: accept_name(kind).to_owned(),
        accepted,
    })
}

fn person_principal(
    kind: PrincipalKind,
    person: &Person,
    route_org: Option<OrgId>,
    email: Option<String>,
    groups: Vec<String>,
) -> Result<Principal, IdentityError> {
    let member = person.choose(route_org)?;
    Ok(Principal {
        kind,
        org: member.org.to_string(),
        subject: format!("user:{}", person.user),
        email: Some(email.unwrap_or_else(|| person.email.clone())),
        groups,
        role: Some(member.role.clone()),
        automation: None,
    })
}

/// A workload token of another organization than the route's is refused.
fn check_route_org(org: &str, route_org: Option<OrgId>) -> Result<(), IdentityError> {
    match route_org {
        Some(route_org) if route_org.to_string() != org => Err(refused(format!(
            "the token belongs to organization {org}; this route belongs to organization {route_org}"
        ))),
        _ => Ok(()),
    }
}
