//! The webhook announcing each new approval request (SPEC §9): a JSON POST signed with
//! HMAC-SHA256 under a shared secret, in `X-Keyward-Signature: t=<unix>,v1=<hex>` over
//! `<t>.<body>` (the receiver recomputes it and compares in constant time; `t` bounds replays).
//! Sent off the request path, with a short timeout and a few retries; failures are logged
//! without the secret or the body.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::hmac;
use keyward_store::ApprovalRow;
use serde_json::json;
use thiserror::Error;
use zeroize::Zeroizing;

/// The URL the announcement goes to.
pub const URL_ENV: &str = "KEYWARD_APPROVAL_WEBHOOK_URL";
/// A file holding the signing secret (0600), required with the URL.
pub const SECRET_FILE_ENV: &str = "KEYWARD_APPROVAL_WEBHOOK_SECRET_FILE";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Keyward-Signature";
/// Per attempt.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts in all (the first and the retries).
pub const ATTEMPTS: u32 = 3;

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("{URL_ENV}: {0}")]
    Url(String),
    #[error(
        "{URL_ENV} is set but {SECRET_FILE_ENV} is not: the announcements must be signed; point it at a file holding the shared secret"
    )]
    NoSecret,
    #[error("{SECRET_FILE_ENV} ({path}): {reason}")]
    Secret { path: PathBuf, reason: String },
    #[error("the webhook's HTTP client: {0}")]
    Client(String),
}

/// Where and how announcements are sent. Debug never shows the secret.
pub struct ApprovalWebhook {
    url: reqwest::Url,
    secret: Zeroizing<Vec<u8>>,
    /// The platform's URL, for the hint where to decide.
    console: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for ApprovalWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalWebhook")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Checks a signature header against `body`, in constant time (what a receiver does).
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8]) -> Option<i64> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = t.to_string().into_bytes();
    message.push(b'.');
    message.extend_from_slice(body);
    hmac::verify(&key, &message, &v1).ok().map(|()| t)
}

impl ApprovalWebhook {
    pub fn new(url: &str, secret: Vec<u8>, console: Option<String>) -> Result<Self, WebhookError> {
        let url = reqwest::Url::parse(url).map_err(|e| WebhookError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(WebhookError::Url(format!(
                "use an http(s) URL (got scheme {})",
                url.scheme()
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Self {
            url,
            secret: Zeroizing::new(secret),
            console,
            client,
        })
    }

    /// From [`URL_ENV`] and [`SECRET_FILE_ENV`] (`KEYWARD_PUBLIC_URL` for the console hint);
    /// `None` when no URL is set.
    pub fn from_env() -> Result<Option<Self>, WebhookError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let Some(url) = get(URL_ENV) else {
            return Ok(None);
        };
        let path = get(SECRET_FILE_ENV).ok_or(WebhookError::NoSecret)?;
        let secret = read_secret(Path::new(&path))?;
        Self::new(&url, secret, get("KEYWARD_PUBLIC_URL")).map(Some)
    }

    /// The announcement's body.
    pub fn body(&self, row: &ApprovalRow) -> Vec<u8> {
        let id = row.id;
        let console = self
            .console
            .as_deref()
            .map(|base| format!("{}/api/v1/approvals/{id}", base.trim_end_matches('/')));
        json!({
            "type": "approval.requested",
            "id": id,
            "org_id": row.org_id,
            "route": row.route_name,
            "requester": {
                "kind": row.requester_kind,
                "subject": row.requester_subject,
                "email": row.requester_email,
                "automation_id": row.requester_automation,
            },
            "policy_id": row.policy_id,
            "reason": row.reason,
            "summary": row.summary,
            "mode": row.mode.as_str(),
            "grant": row.grant_kind.as_str(),
            "expires_at": row.expires_at,
            "decide": {
                "cli": format!("keyward approval approve {id} --comment '…'  (or: keyward approval deny {id} --comment '…')"),
                "api": console,
            },
        })
        .to_string()
        .into_bytes()
    }

    /// Sends the announcement from a task of its own: the request is not held up by it.
    pub fn announce(self: &std::sync::Arc<Self>, row: &ApprovalRow) {
        let hook = self.clone();
        let body = self.body(row);
        let id = row.id;
        tokio::spawn(async move { hook.deliver(id, body).await });
    }

    /// Up to [`ATTEMPTS`] attempts with a growing pause; `true` once the receiver answers 2xx.
    pub async fn deliver(&self, id: keyward_core::ApprovalId, body: Vec<u8>) -> bool {
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let t = crate::clock::now();
            let sent = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature(&self.secret, t, &body))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return true,
                Ok(r) => {
                    tracing::warn!(approval = %id, attempt, status = %r.status(), url = %self.url.host_str().unwrap_or(""), "the approval webhook refused the announcement")
                }
                Err(e) => {
                    tracing::warn!(approval = %id, attempt, error = %e.without_url(), "the approval webhook is unreachable")
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        metrics::counter!("keyward_approval_webhook_failures_total").increment(1);
        false
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, WebhookError> {
    let fail = |reason: String| WebhookError::Secret {
        path: path.to_owned(),
        reason,
    };
    let text = Zeroizing::new(std::fs::read(path).map_err(|e| fail(e.to_string()))?);
    let secret: Vec<u8> = text.trim_ascii().to_vec();
    if secret.len() < 16 {
        return Err(fail(
            "the secret is shorter than 16 bytes; use a long random value (openssl rand -hex 32)"
                .into(),
        ));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = signature(b"0123456789abcdef", 1700000000, b"{\"id\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify_signature(b"0123456789abcdef", &header, b"{\"id\":1}"),
            Some(1700000000)
        );
        assert_eq!(
            verify_signature(b"0123456789abcdef", &header, b"{\"id\":2}"),
            None
        );
        assert_eq!(
            verify_signature(b"another-secret-16", &header, b"{\"id\":1}"),
            None
        );
        let shifted = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_signature(b"0123456789abcdef", &shifted, b"{\"id\":1}"),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let hook = ApprovalWebhook::new(
            "https://hooks.example/x",
            b"super-secret-value-1234".to_vec(),
            None,
        )
        .unwrap();
        assert!(!format!("{hook:?}").contains("super-secret"));
    }
}
