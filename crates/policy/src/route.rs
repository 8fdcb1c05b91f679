//! A gateway route as written (TOML file, or JSON through `/api/v1/gateway/routes`) and as
//! validated.
//!
//! SKELETON — the policy helper owns this file and replaces every `todo!()`; the types below are
//! the contract the gateway and the server code against (add fields, do not rename).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::ConfigError;
use crate::cedar::Policies;

/// Which kinds of caller a route accepts (default: all three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accept {
    Workload,
    Idp,
    Pat,
}

/// What happens when no policy matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoMatch {
    #[default]
    Deny,
    Allow,
}

/// The credential the gateway adds for the upstream. Secrets and tokens are had through an
/// automation's kickoff plan with that automation's token, which the gateway reads from the
/// environment variable `token_env` (never from the file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialSpec {
    /// The caller's credential is stripped and nothing is added.
    None,
    /// An environment variable of the automation (a secrets-manager secret, resolved through its
    /// secret provider) as a header: `format` has one `{}` for the value (default `Bearer {}`).
    Secret {
        automation: String,
        token_env: String,
        env: String,
        #[serde(default = "default_header")]
        header: String,
        #[serde(default)]
        format: Option<String>,
        /// How long a resolved value is reused, in seconds (default 300).
        #[serde(default)]
        cache_seconds: Option<u64>,
    },
    /// A GCP access token through workload identity federation (Vertex AI), impersonating the
    /// identity's service account when it has one.
    Gcp {
        automation: String,
        token_env: String,
    },
    /// A Microsoft Entra access token for `scope` (Azure OpenAI:
    /// `https://cognitiveservices.azure.com/.default`).
    Azure {
        automation: String,
        token_env: String,
        scope: String,
    },
    /// AWS SigV4 with federated session credentials (Bedrock: service `bedrock`).
    Aws {
        automation: String,
        token_env: String,
        service: String,
        #[serde(default)]
        region: Option<String>,
    },
    /// A Keyward workload token of the automation for `audience`.
    Keyward {
        automation: String,
        token_env: String,
        audience: String,
    },
}

fn default_header() -> String {
    "authorization".into()
}

/// One route as written. `deny_unknown_fields`: a misspelt key is an error, not a default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    /// Matches the `Host` (or `:authority`) without port.
    pub host: Option<String>,
    /// Matches paths that start with it, on a segment boundary.
    pub path_prefix: Option<String>,
    /// Remove `path_prefix` before forwarding (default true).
    pub strip_prefix: Option<bool>,
    pub upstream: Option<String>,
    /// PEM file of an extra CA the upstream's certificate may chain to (files only).
    pub upstream_ca: Option<String>,
    pub accept: Option<Vec<Accept>>,
    /// Policy files, relative to the route file (files only).
    pub policies: Option<Vec<String>>,
    /// Inline Cedar policy text (files and stored routes).
    pub policy: Option<String>,
    pub no_match: Option<NoMatch>,
    /// `1MiB`, `512KiB`, or a number of bytes.
    pub inspect_limit: Option<toml::Value>,
    /// `5s`, `2m`, or seconds.
    pub connect_timeout: Option<toml::Value>,
    /// Until the upstream's response headers.
    pub timeout: Option<toml::Value>,
    pub credential: Option<CredentialSpec>,
}

/// A route file: `organization` (uuid or name) owns every route in it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteFile {
    pub organization: Option<String>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
}

/// A policy's text and the name errors and decisions use for it (file name, or
/// `<route>/inline`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

/// A validated route.
#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub strip_prefix: bool,
    pub upstream: Url,
    /// PEM text of the extra CA.
    pub upstream_ca: Option<String>,
    pub accept: Vec<Accept>,
    pub policies: Policies,
    pub no_match: NoMatch,
    pub inspect_limit: usize,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub credential: CredentialSpec,
}

/// A validated route file.
#[derive(Clone, Debug)]
pub struct RouteFile {
    pub organization: Option<String>,
    pub routes: Vec<Route>,
}

/// Parses and validates a route file. `read` loads a file named in it (policies, CA), relative
/// to the route file; its error is the sentence to show. Every error names `file_name`, line and
/// column.
pub fn parse_route_file(
    file_name: &str,
    text: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<RouteFile, ConfigError> {
    let _ = (file_name, text, read);
    todo!()
}

/// Validates a route stored through the API (JSON; inline policy only, no files).
pub fn route_from_json(value: &serde_json::Value) -> Result<Route, ConfigError> {
    let _ = value;
    todo!()
}
