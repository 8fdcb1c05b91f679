//! Credential injection: the upstream credential is the gateway's, never the caller's. The
//! caller's `Authorization`, `Cookie`, `x-api-key`, `api-key` and `x-goog-api-key` are stripped
//! (`strip_caller_credentials`), then one route credential is added: a secrets-manager secret as
//! a header, a GCP access token (workload identity federation), an Entra token for a scope,
//! AWS SigV4 with federated session credentials, or a Keyward token for an audience. Each is
//! cached with its expiry and refreshed before it (the rule is in `cache`).
//!
//! Credentials are had as an automation, exactly as `keyward run` has them: the route names the
//! automation and the environment variable holding its token; the gateway asks Keyward for the
//! kickoff plan, mints a workload token for the plan's identity of the cloud and exchanges it.

mod cache;
mod fetch;
mod sign;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use keyward_policy::CredentialSpec;

use cache::Slot;
use fetch::{Credential, EnvLookup, Fetcher};

pub use fetch::DEFAULT_SECRET_CACHE;

/// The headers a caller may carry its own credential in; none reaches the upstream.
pub const CALLER_CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

/// Removes every caller credential header.
pub fn strip_caller_credentials(headers: &mut http::HeaderMap) {
    for name in CALLER_CREDENTIAL_HEADERS {
        headers.remove(name);
    }
}

#[derive(Clone, Debug)]
pub struct CredentialSettings {
    /// Keyward's URL, for kickoff plans and minting with an automation's token.
    pub platform_url: Option<url::Url>,
    pub platform_ca: Option<PathBuf>,
    /// `KEYWARD_CLOUD_ENDPOINTS`: where the cloud calls go (cloudsim in tests).
    pub cloud_endpoints: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The credential could not be had; the message names the route, the credential kind, the
    /// automation, the step and the fix (with the cloud's cause), never a secret.
    #[error("{0}")]
    Unavailable(String),
}

/// One route's cache, for the spec it was made for (a reload that changes it starts afresh).
struct RouteSlot {
    spec: CredentialSpec,
    slot: Arc<Slot<Credential>>,
}

/// Every route's credentials, cached until shortly before they expire.
pub struct Injector {
    fetcher: Arc<Fetcher>,
    slots: Mutex<HashMap<String, RouteSlot>>,
}

impl Injector {
    /// Automation tokens come from the process environment (the route's `token_env`).
    pub fn new(settings: CredentialSettings) -> Result<Injector, CredentialError> {
        Injector::with_env(settings, Arc::new(|name: &str| std::env::var(name).ok()))
    }

    /// Automation tokens come from `env` (by variable name) instead of the process environment.
    pub fn with_env(
        settings: CredentialSettings,
        env: EnvLookup,
    ) -> Result<Injector, CredentialError> {
        Ok(Injector {
            fetcher: Arc::new(Fetcher::new(settings, env)?),
            slots: Mutex::default(),
        })
    }

    fn slot(&self, route: &str, spec: &CredentialSpec) -> Arc<Slot<Credential>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(route) {
            Some(found) if found.spec == *spec => found.slot.clone(),
            _ => {
                let slot = Arc::new(Slot::default());
                slots.insert(
                    route.to_owned(),
                    RouteSlot {
                        spec: spec.clone(),
                        slot: slot.clone(),
                    },
                );
                slot
            }
        }
    }

    /// Adds the route's credential to an outgoing request whose caller credentials were already
    /// stripped. `body` is the whole request body when the credential signs it (AWS), which the
    /// pipeline buffers for such routes (within the inspection limit).
    pub async fn apply(
        &self,
        route: &str,
        spec: &CredentialSpec,
        request: &mut http::request::Parts,
        body: Option<&[u8]>,
    ) -> Result<(), CredentialError> {
        if matches!(spec, CredentialSpec::None) {
            return Ok(());
        }
        // Owned, so a refresh can finish in the background after this request is done.
        let (fetcher, owned_route, owned_spec) =
            (self.fetcher.clone(), route.to_owned(), spec.clone());
        let credential = self
            .slot(route, spec)
            .get(move || async move { fetcher.fetch(&owned_route, &owned_spec).await })
            .await?;
        match (&*credential, spec) {
            (Credential::Header { name, value }, _) => {
                request.headers.insert(name.clone(), value.clone());
                Ok(())
            }
            (
                Credential::Aws {
                    credentials,
                    region,
                },
                CredentialSpec::Aws { service, .. },
            ) => sign::sign_request(
                request,
                body.unwrap_or_default(),
                credentials,
                service,
                region,
                fetch::wall_clock(),
            )
            .map_err(|detail| fetch::failure(route, spec, "SigV4 signing", detail)),
            (Credential::Aws { .. }, _) => Err(fetch::failure(
                route,
                spec,
                "SigV4 signing",
                "the cached credential is not this route's kind",
            )),
        }
    }

    /// Whether the credential signs the body (the pipeline must buffer it).
    pub fn needs_body(spec: &CredentialSpec) -> bool {
        matches!(spec, CredentialSpec::Aws { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_credential_header_is_stripped_and_the_rest_stay() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("Authorization", "Bearer caller-token"),
            ("Cookie", "session=abc"),
            ("X-API-Key", "sk-caller"),
            ("api-key", "azure-caller"),
            ("x-goog-api-key", "AIza-caller"),
            ("content-type", "application/json"),
            ("x-request-id", "42"),
        ] {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_static(value),
            );
        }
        // A second Authorization line must not survive either.
        headers.append(
            "authorization",
            http::HeaderValue::from_static("Basic eA=="),
        );
        strip_caller_credentials(&mut headers);
        for name in CALLER_CREDENTIAL_HEADERS {
            assert!(headers.get(name).is_none(), "{name} survived");
        }
        assert_eq!(headers.len(), 2);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-request-id"], "42");
    }

    fn injector(env: &'static [(&'static str, &'static str)], url: Option<&str>) -> Injector {
        Injector::with_env(
            CredentialSettings {
                platform_url: url.map(|u| url::Url::parse(u).unwrap()),
                platform_ca: None,
                cloud_endpoints: None,
            },
            Arc::new(move |name: &str| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }),
        )
        .unwrap()
    }

    fn secret_spec() -> CredentialSpec {
        CredentialSpec::Secret {
            automation: "llm-proxy".into(),
            token_env: "LLM_PROXY_TOKEN".into(),
            env: "OPENAI_API_KEY".into(),
            header: "authorization".into(),
            format: None,
            cache_seconds: None,
        }
    }

    fn parts() -> http::request::Parts {
        http::Request::get("http://127.0.0.1:9/v1/models")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[tokio::test]
    async fn none_adds_nothing_and_needs_no_platform() {
        let injector = injector(&[], None);
        let mut request = parts();
        injector
            .apply("plain", &CredentialSpec::None, &mut request, None)
            .await
            .unwrap();
        assert!(request.headers.is_empty());
        assert!(!Injector::needs_body(&CredentialSpec::None));
        assert!(!Injector::needs_body(&secret_spec()));
    }

    #[tokio::test]
    async fn a_missing_token_variable_or_platform_url_is_named_with_the_route_and_the_fix() {
        let err = injector(&[], Some("https://127.0.0.1:1"))
            .apply("openai", &secret_spec(), &mut parts(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("route 'openai': secret credential (automation 'llm-proxy')"),
            "{err}"
        );
        assert!(
            err.contains("LLM_PROXY_TOKEN is not set")
                && err.contains("/api/v1/automations/llm-proxy/tokens"),
            "{err}"
        );
        let err = injector(&[("LLM_PROXY_TOKEN", "kwa_secret-token-value")], None)
            .apply("openai", &secret_spec(), &mut parts(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("--platform-url"), "{err}");
        assert!(!err.contains("kwa_secret-token-value"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_platform_fails_naming_the_step_without_the_token() {
        // Nothing listens on port 1: the kickoff cannot be had.
        let err = injector(
            &[("LLM_PROXY_TOKEN", "kwa_secret-token-value")],
            Some("http://127.0.0.1:1"),
        )
        .apply("openai", &secret_spec(), &mut parts(), None)
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("route 'openai'") && err.contains("Keyward kickoff plan"),
            "{err}"
        );
        assert!(!err.contains("kwa_secret-token-value"), "{err}");
    }
}
