//! A gateway route as written (TOML file, or JSON through `/api/v1/gateway/routes`) and as
//! validated.
//!
//! The types below are the contract the gateway and the server code against. Validation is in
//! `validate.rs` (the same for files and stored routes), quantities (`5s`, `1MiB`) in
//! `quantity.rs`, and the TOML positions errors point at in `spans.rs`.

mod quantity;
mod spans;
mod validate;

pub use quantity::{Quantity, parse_duration, parse_size};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::cedar::Policies;
pub use crate::cedar::{NoMatch, PolicySource};
use crate::{ConfigError, Location};

/// Which kinds of caller a route accepts (default: all three).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accept {
    Workload,
    Idp,
    Pat,
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
/// Serialized (the JSON `spec` of a stored route), absent fields are left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches the `Host` (or `:authority`) without port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Matches paths that start with it, on a segment boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Remove `path_prefix` before forwarding (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// PEM file of an extra CA the upstream's certificate may chain to (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<Accept>>,
    /// Policy files, relative to the route file (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// Inline Cedar policy text (files and stored routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_match: Option<NoMatch>,
    /// `1MiB`, `512KiB`, or a number of bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect_limit: Option<Quantity>,
    /// `5s`, `2m`, or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Quantity>,
    /// Until the upstream's response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Quantity>,
    /// How a request needing approval waits: `hold` (default) or `async` (403 with the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalWait>,
    /// How long a held request waits for a decision (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialSpec>,
    /// `[route.mask]`: masking of response (and optionally request) bodies
    /// (docs/gateway-masking.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<keyward_mask::MaskConfig>,
}

/// How a request that needs a human's approval waits for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalWait {
    /// The connection stays open until a decision or `approval_timeout` (the client may still
    /// ask for `async` with `Prefer: respond-async`).
    #[default]
    Hold,
    /// 403 at once with the approval id; the caller retries once it is approved.
    Async,
}

/// A route file: `organization` (uuid or name) owns every route in it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteFile {
    pub organization: Option<String>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
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
    pub approval: ApprovalWait,
    pub approval_timeout: Duration,
    pub credential: CredentialSpec,
    /// Checked at load: a `keyward_mask::Masker` compiles from it.
    pub mask: Option<keyward_mask::MaskConfig>,
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
    let raw: RawRouteFile = toml::from_str(text).map_err(|e| ConfigError {
        location: e
            .span()
            .map(|span| crate::location_at(file_name, text, span.start)),
        field: None,
        message: format!("the route file is not valid: {}", e.message().trim_end()),
    })?;
    let spans = spans::FileSpans::parse(text);
    let at = |offset: Option<usize>| offset.map(|o| crate::location_at(file_name, text, o));
    if let Some(organization) = &raw.organization
        && organization.trim().is_empty()
    {
        return Err(ConfigError {
            location: at(spans.root_key("organization")),
            field: Some("organization".into()),
            message: "`organization` is empty; write the organization's name or uuid".into(),
        });
    }
    if raw.routes.is_empty() {
        return Err(ConfigError {
            location: Some(Location {
                file: file_name.to_owned(),
                line: 1,
                column: 1,
            }),
            field: None,
            message: "the route file has no route; add a `[[route]]` table with at least `name`, \
                      `path_prefix` or `host`, and `upstream`"
                .into(),
        });
    }
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (index, raw_route) in raw.routes.iter().enumerate() {
        let files = validate::Files::Readable { read };
        let route = validate::validate(raw_route, &files).map_err(|mut e| {
            if e.location.is_none() {
                e.location = at(spans.route_field(index, e.field.as_deref()));
            } else if let Some(location) = &mut e.location
                && let Some(inline) = spans.inline_policy(index)
                && location.file == validate::inline_source_name(raw_route)
            {
                // An inline policy's position, moved into the route file.
                let start = crate::location_at(file_name, text, inline);
                if location.line == 1 {
                    location.column += start.column - 1;
                }
                location.line += start.line - 1;
                location.file = file_name.to_owned();
            }
            e
        })?;
        validate::check_unique(&routes, &route).map_err(|mut e| {
            e.location = at(spans.route_field(index, e.field.as_deref()));
            e
        })?;
        routes.push(route);
    }
    Ok(RouteFile {
        organization: raw.organization.map(|o| o.trim().to_owned()),
        routes,
    })
}

/// Validates a route stored through the API (JSON; inline policy only, no files).
pub fn route_from_json(value: &serde_json::Value) -> Result<Route, ConfigError> {
    let raw: RawRoute = serde_json::from_value(value.clone()).map_err(|e| {
        let message = e.to_string();
        ConfigError {
            location: None,
            // The top-level key that fails, and inside it the field serde names
            // (`credential.token_env`).
            field: match (
                validate::field_failing_alone(value),
                validate::field_of_serde_message(&message),
            ) {
                (Some(top), Some(inner)) if top != inner => Some(format!("{top}.{inner}")),
                (top, inner) => top.or(inner),
            },
            message: format!("the route is not valid: {message}"),
        }
    })?;
    validate::validate(&raw, &validate::Files::Refused)
}

#[cfg(test)]
mod mask_tests;
#[cfg(test)]
mod tests;
