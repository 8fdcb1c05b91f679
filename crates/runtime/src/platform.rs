//! The runtime's calls to Keyward: the kickoff plan and token mints, with the automation token.

use std::path::Path;
use std::time::Duration;

use keyward_core::WorkloadIdentityConfigId;
use keyward_core::api::v1::{ErrorBody, KickoffPlan, MintRequest, MintResponse};

use crate::RuntimeError;

/// A Keyward server, as one automation sees it.
#[derive(Clone)]
pub struct Platform {
    http: reqwest::Client,
    url: String,
    token: String,
    /// Tokens minted for this kickoff, by config: secret resolution and the token files share
    /// one mint per identity.
    minted: std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<(WorkloadIdentityConfigId, String), MintResponse>,
        >,
    >,
}

impl Platform {
    /// `ca_file` trusts a self-signed server (Keyward's generated CA).
    pub fn new(url: &str, token: &str, ca_file: Option<&Path>) -> Result<Platform, RuntimeError> {
        if token.trim().is_empty() {
            return Err(RuntimeError::Config(
                "no automation token: set KEYWARD_AUTOMATION_TOKEN (or --token) to a token from POST /api/v1/automations/<name>/tokens".into(),
            ));
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            RuntimeError::Config(format!(
                "KEYWARD_URL {url:?} is not a URL ({e}); use the server's address, e.g. https://127.0.0.1:8443"
            ))
        })?;
        // Redirects are not followed: reqwest strips the automation token only across hosts,
        // and a redirect to another port or scheme of the same host would carry it along.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                RuntimeError::Config(format!(
                    "cannot read KEYWARD_CA_FILE {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                RuntimeError::Config(format!(
                    "KEYWARD_CA_FILE {} is not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            // The CA named for Keyward is the only one trusted: loading and parsing the
            // system store costs more CPU than the whole kickoff (measured with bench/run.sh).
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| RuntimeError::Config(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Platform {
            http,
            url: parsed.as_str().trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            minted: Default::default(),
        })
    }

    /// The automation's kickoff plan (SPEC §5 step 1).
    pub async fn kickoff(&self) -> Result<KickoffPlan, RuntimeError> {
        self.post("/api/v1/runtime/kickoff", None::<&()>).await
    }

    /// A token for one identity of the kickoff, minted once and then reused (a fresh one lives
    /// the whole TTL; refresh calls [`Platform::mint`]).
    pub async fn mint_once(
        &self,
        config: WorkloadIdentityConfigId,
        kickoff_id: &str,
    ) -> Result<MintResponse, RuntimeError> {
        let key = (config, kickoff_id.to_owned());
        if let Some(hit) = self.cache().get(&key) {
            return Ok(hit.clone());
        }
        let minted = self.mint(config, kickoff_id).await?;
        self.cache().insert(key, minted.clone());
        Ok(minted)
    }

    fn cache(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<(WorkloadIdentityConfigId, String), MintResponse>,
    > {
        // A panic while holding it leaves a plain map behind; keep using it.
        self.minted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh token for one identity of the plan.
    pub async fn mint(
        &self,
        config: WorkloadIdentityConfigId,
        kickoff_id: &str,
    ) -> Result<MintResponse, RuntimeError> {
        let body = MintRequest {
            workload_identity_config: Some(config.to_string()),
            kickoff_id: Some(kickoff_id.to_owned()),
            ..MintRequest::default()
        };
        self.post("/api/v1/workload-identity/token", Some(&body))
            .await
    }

    /// A public JSON document (the issuer's discovery and JWKS), trusting the same CA.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, RuntimeError> {
        let fail = |status: Option<u16>, message: String| RuntimeError::Platform {
            url: url.to_owned(),
            status,
            message,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(None, format!("cannot fetch: {}", root(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(Some(status.as_u16()), "not 200".into()));
        }
        response
            .json()
            .await
            .map_err(|e| fail(Some(status.as_u16()), format!("not JSON: {e}")))
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, RuntimeError> {
        let url = format!("{}{path}", self.url);
        let mut request = self.http.post(&url).bearer_auth(&self.token);
        request = match body {
            Some(b) => request.json(b),
            None => request.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        let response = request.send().await.map_err(|e| RuntimeError::Platform {
            url: url.clone(),
            status: None,
            message: format!("cannot reach Keyward: {}", root(&e)),
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| format!("{}: {}", b.error, b.message))
                .unwrap_or(text);
            return Err(RuntimeError::Platform {
                url,
                status: Some(status.as_u16()),
                message,
            });
        }
        serde_json::from_str(&text).map_err(|e| RuntimeError::Platform {
            url,
            status: Some(status.as_u16()),
            message: format!("unexpected answer: {e}"),
        })
    }
}

fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_automation_token_does_not_follow_a_redirect() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere_url = format!("http://{}", elsewhere.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((_socket, _)) = elsewhere.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let keyward = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let keyward_url = format!("http://{}", keyward.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = keyward.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere_url}/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let platform = Platform::new(&keyward_url, "kwa_test-token", None).unwrap();
        assert!(platform.kickoff().await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    }
}
