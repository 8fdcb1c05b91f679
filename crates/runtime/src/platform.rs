//! The runtime's calls to Keyward: the kickoff plan and token mints, with the automation token,
//! over the typed client (its TLS policy and no redirects), with a per-kickoff mint cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use keyward_client::{Client, ClientError};
use keyward_core::WorkloadIdentityConfigId;
use keyward_core::api::v1::{KickoffPlan, MintRequest, MintResponse};

use crate::RuntimeError;
use keyward_core::error_chain::root_cause;

type MintCache = HashMap<(WorkloadIdentityConfigId, String), MintResponse>;

/// A Keyward server, as one automation sees it.
#[derive(Clone)]
pub struct Platform {
    client: Client,
    /// Tokens minted for this kickoff, by config: secret resolution and the token files share
    /// one mint per identity.
    minted: Arc<Mutex<MintCache>>,
}

impl Platform {
    /// `ca_file` trusts a self-signed server (Keyward's generated CA).
    pub fn new(url: &str, token: &str, ca_file: Option<&Path>) -> Result<Platform, RuntimeError> {
        if token.trim().is_empty() {
            return Err(RuntimeError::Config(
                "no automation token: set KEYWARD_AUTOMATION_TOKEN (or --token) to a token from POST /api/v1/automations/<name>/tokens".into(),
            ));
        }
        let client = Client::new(url, ca_file)
            .map_err(|e| RuntimeError::Config(e.to_string()))?
            .token(token);
        Ok(Platform {
            client,
            minted: Default::default(),
        })
    }

    /// The automation's kickoff plan (SPEC §5 step 1).
    pub async fn kickoff(&self) -> Result<KickoffPlan, RuntimeError> {
        self.client
            .kickoff()
            .await
            .map_err(|e| self.failed("/api/v1/runtime/kickoff", e))
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

    fn cache(&self) -> MutexGuard<'_, MintCache> {
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
        self.client
            .mint(&body)
            .await
            .map_err(|e| self.failed("/api/v1/workload-identity/token", e))
    }

    /// A public JSON document (the issuer's discovery and JWKS), trusting the same CA.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, RuntimeError> {
        let fail = |status: Option<u16>, message: String| RuntimeError::Platform {
            url: url.to_owned(),
            status,
            message,
        };
        let response = self
            .client
            .http()
            .get(url)
            .send()
            .await
            .map_err(|e| fail(None, format!("cannot fetch: {}", root_cause(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(Some(status.as_u16()), "not 200".into()));
        }
        response
            .json()
            .await
            .map_err(|e| fail(Some(status.as_u16()), format!("not JSON: {e}")))
    }

    /// The client's error in the runtime's words: the URL, the status and `code: message`.
    fn failed(&self, path: &str, e: ClientError) -> RuntimeError {
        let url = format!("{}{path}", self.client.url());
        let status = e.status();
        let message = match e {
            ClientError::Api { code, message, .. } => format!("{code}: {message}"),
            ClientError::Refused { body, .. } => body,
            ClientError::Unreachable { cause, .. } => format!("cannot reach Keyward: {cause}"),
            ClientError::Decode { error, .. } => format!("unexpected answer: {error}"),
            other => other.to_string(),
        };
        RuntimeError::Platform {
            url,
            status,
            message,
        }
    }
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
