//! The administrators' API client behind `keyward wi`, `keyward llm` and the other resource
//! commands: a personal access token, Keyward's CA, one request at a time.

use std::time::Duration;

use anyhow::{Context, bail};
use keyward_core::api::v1::ErrorBody;
use serde_json::Value;

use crate::args::ApiArgs;

pub struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
    org: Option<String>,
}

impl Api {
    pub fn new(args: &ApiArgs) -> anyhow::Result<Api> {
        let token = super::token_input::resolve(
            args.token.as_deref(),
            args.token_file.as_deref(),
            "KEYWARD_TOKEN",
        )?
        .context(
            "no token: set KEYWARD_TOKEN (or --token-file) to a personal access token (kwp_…)",
        )?;
        super::token_input::warn_if_cleartext(&args.url);
        // Redirects are not followed: the bearer token would go along wherever they point.
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &args.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read KEYWARD_CA_FILE {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("KEYWARD_CA_FILE {} is not PEM", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Api {
            http: builder.build().context("cannot build the HTTPS client")?,
            url: args.url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            org: args.org.clone(),
        })
    }

    /// `method /api/v1<path>`; a refusal becomes an error with the server's message and field.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.url);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(org) = &self.org {
            request = request.header("X-Keyward-Organization-Id", org);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach Keyward at {}", self.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(e) => match e.field {
                    Some(field) => bail!(
                        "{} ({}, field {field}): {}",
                        status.as_u16(),
                        e.error,
                        e.message
                    ),
                    None => bail!("{} ({}): {}", status.as_u16(), e.error, e.message),
                },
                Err(_) => bail!("{method} {url} answered {status}: {text}"),
            }
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{url} answered something that is not JSON"))
    }
}

pub fn print(value: &Value) {
    if !value.is_null() {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

/// One line per item: its name and the fields that say what it is.
pub fn print_list(items: &Value, columns: &[&str]) {
    for item in items.as_array().into_iter().flatten() {
        let line: Vec<String> = columns
            .iter()
            .filter_map(|c| match &item[*c] {
                Value::Null => None,
                Value::String(s) => Some(format!("{c}={s}")),
                other => Some(format!("{c}={other}")),
            })
            .collect();
        println!("{}", line.join("  "));
    }
}

/// A path segment from an id or a name the user typed.
pub fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
