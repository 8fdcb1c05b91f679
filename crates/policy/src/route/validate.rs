//! One route's validation, the same for a route file and a stored route: every error names the
//! field it is in and says what to write instead. Defaults are applied here.

use std::time::Duration;

use url::Url;

use super::{Accept, CredentialSpec, NoMatch, PolicySource, Quantity, RawRoute, Route};
use crate::ConfigError;
use crate::cedar::Policies;

pub(super) const DEFAULT_INSPECT_LIMIT: usize = 1 << 20;
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub(super) const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3600);
/// A larger body is not buffered for inspection: it would let one request hold that much memory.
const MAX_INSPECT_LIMIT: u64 = 64 << 20;
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const MAX_CACHE_SECONDS: u64 = 24 * 3600;

/// Whether the route may name files (a route file) or not (a stored route).
pub(super) enum Files<'a> {
    Readable {
        read: &'a dyn Fn(&str) -> Result<String, String>,
    },
    Refused,
}

fn error(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: None,
        field: Some(field.to_owned()),
        message: message.into(),
    }
}

/// The source name of a route's inline policy.
pub(super) fn inline_source_name(raw: &RawRoute) -> String {
    format!("{}/inline", raw.name.as_deref().unwrap_or("route"))
}

/// The field a serde error names (`unknown field `polices``, `missing field `env``), if any.
pub(super) fn field_of_serde_message(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_owned)
}

/// The first key of a JSON route that fails to deserialize on its own (serde's type errors do
/// not name the field): every field of [`RawRoute`] is optional, so only the bad one fails.
pub(super) fn field_failing_alone(value: &serde_json::Value) -> Option<String> {
    let object = value.as_object()?;
    object.iter().find_map(|(key, field)| {
        let alone = serde_json::Value::Object([(key.clone(), field.clone())].into_iter().collect());
        serde_json::from_value::<RawRoute>(alone)
            .is_err()
            .then(|| key.clone())
    })
}

fn name(raw: &RawRoute) -> Result<String, ConfigError> {
    let name = raw.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(error(
            "name",
            "the route has no `name`; give it one (letters, digits, `-`, `_`, `.`), it names the \
             route in policies, audit events and metrics",
        ));
    }
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(error(
            "name",
            format!(
                "the route name {name:?} is not valid; use at most 64 letters, digits, `-`, `_` \
                 or `.`"
            ),
        ));
    }
    Ok(name.to_owned())
}

fn host(raw: &RawRoute) -> Result<Option<String>, ConfigError> {
    let Some(host) = raw.host.as_deref() else {
        return Ok(None);
    };
    let host = host.trim().to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(error(
            "host",
            format!(
                "`host = {host:?}` is not a host name; write the name callers use, without scheme, \
                 port or path (`llm.internal`)"
            ),
        ));
    }
    Ok(Some(host))
}

fn path_prefix(raw: &RawRoute) -> Result<Option<String>, ConfigError> {
    let Some(prefix) = raw.path_prefix.as_deref() else {
        return Ok(None);
    };
    if !prefix.starts_with('/')
        || prefix.contains(['?', '#'])
        || prefix.chars().any(char::is_whitespace)
        || prefix.contains("//")
    {
        return Err(error(
            "path_prefix",
            format!(
                "`path_prefix = {prefix:?}` is not a path prefix; it starts with `/` and has no \
                 query, fragment, spaces or empty segments (`/openai`)"
            ),
        ));
    }
    // `/openai/` and `/openai` match the same paths (on a segment boundary).
    let trimmed = prefix.trim_end_matches('/');
    Ok(Some(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }))
}

fn upstream(raw: &RawRoute) -> Result<Url, ConfigError> {
    let Some(text) = raw.upstream.as_deref() else {
        return Err(error(
            "upstream",
            "the route has no `upstream`; write the URL requests are forwarded to \
             (`https://api.openai.com/v1`)",
        ));
    };
    let url = Url::parse(text.trim()).map_err(|e| {
        error(
            "upstream",
            format!(
                "`upstream = {text:?}` is not a URL ({e}); write `http(s)://host[:port][/path]`"
            ),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(error(
            "upstream",
            format!("`upstream = {text:?}` is not an http or https URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(
            "upstream",
            "`upstream` carries a user name or password; remove it and give the upstream's \
             credential in `[route.credential]`, which the gateway keeps out of files and logs",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(error(
            "upstream",
            format!(
                "`upstream = {text:?}` has a query or fragment; give only scheme, host, port and path"
            ),
        ));
    }
    Ok(url)
}

fn read_file(files: &Files<'_>, field: &str, path: &str) -> Result<String, ConfigError> {
    match files {
        Files::Readable { read } => read(path).map_err(|e| {
            error(
                field,
                format!("`{field}` names {path:?}, which cannot be read: {e}"),
            )
        }),
        Files::Refused => Err(error(
            field,
            format!(
                "`{}` names files, which a stored route cannot do; put the policy text in \
                 `policy` (inline), or use a route file",
                field.split('[').next().unwrap_or(field)
            ),
        )),
    }
}

fn upstream_ca(raw: &RawRoute, files: &Files<'_>) -> Result<Option<String>, ConfigError> {
    let Some(path) = raw.upstream_ca.as_deref() else {
        return Ok(None);
    };
    let pem = read_file(files, "upstream_ca", path)?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(error(
            "upstream_ca",
            format!(
                "`upstream_ca = {path:?}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
            ),
        ));
    }
    Ok(Some(pem))
}

fn policies(raw: &RawRoute, files: &Files<'_>) -> Result<Policies, ConfigError> {
    let mut sources = Vec::new();
    for (index, path) in raw.policies.iter().flatten().enumerate() {
        let field = format!("policies[{index}]");
        let text = read_file(files, &field, path)?;
        sources.push(PolicySource {
            name: path.clone(),
            text,
        });
    }
    if let Some(text) = &raw.policy {
        sources.push(PolicySource {
            name: inline_source_name(raw),
            text: text.clone(),
        });
    }
    let file_count = raw.policies.as_ref().map_or(0, Vec::len);
    Policies::load(&sources).map_err(|mut e| {
        if e.field.is_none() {
            let file = e.location.as_ref().map(|l| l.file.as_str());
            let index = sources.iter().position(|s| Some(s.name.as_str()) == file);
            e.field = Some(match index {
                Some(i) if i < file_count => format!("policies[{i}]"),
                _ => "policy".to_owned(),
            });
        }
        e
    })
}

fn size(value: Option<&Quantity>, field: &str, default: usize) -> Result<usize, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let bytes = value
        .size()
        .map_err(|e| error(field, format!("`{field}`: {e}")))?;
    if bytes == 0 || bytes > MAX_INSPECT_LIMIT {
        return Err(error(
            field,
            format!("`{field} = {value}` is out of range; write between 1 byte and 64MiB"),
        ));
    }
    usize::try_from(bytes).map_err(|_| error(field, format!("`{field} = {value}` is too large")))
}

fn duration(
    value: Option<&Quantity>,
    field: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let duration = value
        .duration()
        .map_err(|e| error(field, format!("`{field}`: {e}")))?;
    if duration.is_zero() || duration > MAX_TIMEOUT {
        return Err(error(
            field,
            format!("`{field} = {value}` is out of range; write between 1ms and 24h"),
        ));
    }
    Ok(duration)
}

fn non_empty(value: &str, field: &str, what: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(error(field, format!("`{field}` is empty; write {what}")));
    }
    Ok(())
}

fn env_name(value: &str, field: &str) -> Result<(), ConfigError> {
    let valid = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(error(
            field,
            format!(
                "`{field} = {value:?}` is not an environment variable name; use letters, digits \
                 and `_`, not starting with a digit (`LLM_PROXY_TOKEN`)"
            ),
        ));
    }
    Ok(())
}

/// Compiles the route's `[mask]` table once so a bad detector, pattern or JSON path is refused
/// at load, naming the field, rather than when the first response arrives.
fn mask(raw: &RawRoute, route: &str) -> Result<Option<keyward_mask::MaskConfig>, ConfigError> {
    use keyward_mask::MaskError;
    let Some(config) = &raw.mask else {
        return Ok(None);
    };
    if let Err(e) = keyward_mask::Masker::new(config) {
        let field = match &e {
            MaskError::UnknownDetector { .. } => "mask.detectors",
            MaskError::CustomPattern { .. }
            | MaskError::CustomPatternUnbounded { .. }
            | MaskError::CustomName { .. } => "mask.custom",
            MaskError::JsonPath { .. } => "mask.json_paths",
            MaskError::MaxMatch { .. } => "mask.max_match_bytes",
            MaskError::ExactValueTooLong { .. } | MaskError::Compile(_) => "mask",
        };
        return Err(error(field, format!("route {route:?}: {e}")));
    }
    if config.json_document_limit == 0 || config.json_document_limit as u64 > MAX_INSPECT_LIMIT {
        return Err(error(
            "mask.json_document_limit",
            format!(
                "route {route:?}: `json_document_limit = {}` is out of range; use 1..={MAX_INSPECT_LIMIT} \
                 bytes (the whole JSON body is held to apply JSON paths)",
                config.json_document_limit
            ),
        ));
    }
    Ok(Some(config.clone()))
}

fn credential(raw: &RawRoute) -> Result<CredentialSpec, ConfigError> {
    let Some(spec) = raw.credential.clone() else {
        return Ok(CredentialSpec::None);
    };
    let automation_and_token = |automation: &str, token_env: &str| {
        non_empty(
            automation,
            "credential.automation",
            "the automation's name or id",
        )?;
        env_name(token_env, "credential.token_env")
    };
    match spec {
        CredentialSpec::None => Ok(CredentialSpec::None),
        CredentialSpec::Secret {
            automation,
            token_env,
            env,
            header,
            format,
            cache_seconds,
        } => {
            automation_and_token(&automation, &token_env)?;
            non_empty(
                &env,
                "credential.env",
                "the automation's environment variable holding the secret",
            )?;
            let header = header.trim().to_ascii_lowercase();
            let token = !header.is_empty()
                && header
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
            if !token
                || matches!(
                    header.as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection"
                )
            {
                return Err(error(
                    "credential.header",
                    format!(
                        "`credential.header = {header:?}` is not a header the credential can go in; write a header name like `authorization` or `x-api-key`"
                    ),
                ));
            }
            if let Some(format) = &format
                && format.matches("{}").count() != 1
            {
                return Err(error(
                    "credential.format",
                    format!(
                        "`credential.format = {format:?}` must hold `{{}}` exactly once, where the secret goes (`Bearer {{}}`)"
                    ),
                ));
            }
            if let Some(seconds) = cache_seconds
                && (seconds == 0 || seconds > MAX_CACHE_SECONDS)
            {
                return Err(error(
                    "credential.cache_seconds",
                    format!(
                        "`credential.cache_seconds = {seconds}` is out of range; write between 1 and {MAX_CACHE_SECONDS}"
                    ),
                ));
            }
            Ok(CredentialSpec::Secret {
                automation,
                token_env,
                env,
                header,
                format,
                cache_seconds,
            })
        }
        CredentialSpec::Gcp {
            automation,
            token_env,
        } => {
            automation_and_token(&automation, &token_env)?;
            Ok(CredentialSpec::Gcp {
                automation,
                token_env,
            })
        }
        CredentialSpec::Azure {
            automation,
            token_env,
            scope,
        } => {
            automation_and_token(&automation, &token_env)?;
            non_empty(
                &scope,
                "credential.scope",
                "the Entra scope (`https://cognitiveservices.azure.com/.default`)",
            )?;
            Ok(CredentialSpec::Azure {
                automation,
                token_env,
                scope,
            })
        }
        CredentialSpec::Aws {
            automation,
            token_env,
            service,
            region,
        } => {
            automation_and_token(&automation, &token_env)?;
            non_empty(
                &service,
                "credential.service",
                "the SigV4 service name (`bedrock`)",
            )?;
            if let Some(region) = &region {
                non_empty(
                    region,
                    "credential.region",
                    "an AWS region (`us-east-1`) or drop the key",
                )?;
            }
            Ok(CredentialSpec::Aws {
                automation,
                token_env,
                service,
                region,
            })
        }
        CredentialSpec::Keyward {
            automation,
            token_env,
            audience,
        } => {
            automation_and_token(&automation, &token_env)?;
            non_empty(
                &audience,
                "credential.audience",
                "the audience the upstream expects",
            )?;
            Ok(CredentialSpec::Keyward {
                automation,
                token_env,
                audience,
            })
        }
    }
}

/// Validates one route and applies the defaults.
pub(super) fn validate(raw: &RawRoute, files: &Files<'_>) -> Result<Route, ConfigError> {
    let name = name(raw)?;
    let host = host(raw)?;
    let path_prefix = path_prefix(raw)?;
    if host.is_none() && path_prefix.is_none() {
        return Err(error(
            "path_prefix",
            format!(
                "route {name:?} matches nothing; give it a `path_prefix` (`/openai`), a `host` \
                 (`llm.internal`), or both"
            ),
        ));
    }
    let upstream = upstream(raw)?;
    let upstream_ca = upstream_ca(raw, files)?;
    let accept = match &raw.accept {
        None => vec![Accept::Workload, Accept::Idp, Accept::Pat],
        Some(list) if list.is_empty() => {
            return Err(error(
                "accept",
                "`accept = []` lets no caller in; list some of \"workload\", \"idp\", \"pat\", or \
                 drop the key to accept all three",
            ));
        }
        Some(list) => {
            let mut accept: Vec<Accept> = Vec::new();
            for kind in list {
                if !accept.contains(kind) {
                    accept.push(*kind);
                }
            }
            accept
        }
    };
    let policies = policies(raw, files)?;
    let mask = mask(raw, &name)?;
    Ok(Route {
        name,
        host,
        path_prefix,
        strip_prefix: raw.strip_prefix.unwrap_or(true),
        upstream,
        upstream_ca,
        accept,
        policies,
        no_match: raw.no_match.unwrap_or(NoMatch::Deny),
        inspect_limit: size(
            raw.inspect_limit.as_ref(),
            "inspect_limit",
            DEFAULT_INSPECT_LIMIT,
        )?,
        connect_timeout: duration(
            raw.connect_timeout.as_ref(),
            "connect_timeout",
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        timeout: duration(raw.timeout.as_ref(), "timeout", DEFAULT_TIMEOUT)?,
        approval: raw.approval.unwrap_or_default(),
        approval_timeout: approval_timeout(raw)?,
        credential: credential(raw)?,
        mask,
    })
}

/// A held request keeps a connection open: an hour at most (an approver who needs longer is
/// better served by `approval = "async"`).
fn approval_timeout(raw: &RawRoute) -> Result<Duration, ConfigError> {
    let timeout = duration(
        raw.approval_timeout.as_ref(),
        "approval_timeout",
        DEFAULT_APPROVAL_TIMEOUT,
    )?;
    if timeout > MAX_APPROVAL_TIMEOUT {
        return Err(error(
            "approval_timeout",
            format!(
                "`approval_timeout` is {}s; a held request waits at most {}s — use `approval = \"async\"` for longer decisions",
                timeout.as_secs(),
                MAX_APPROVAL_TIMEOUT.as_secs()
            ),
        ));
    }
    Ok(timeout)
}

/// Refuses a route whose name, or host and path prefix, an earlier route already has.
pub(super) fn check_unique(earlier: &[Route], route: &Route) -> Result<(), ConfigError> {
    for other in earlier {
        if other.name == route.name {
            return Err(error(
                "name",
                format!(
                    "a second route is named {:?}; route names must be unique",
                    route.name
                ),
            ));
        }
        if other.host == route.host && other.path_prefix == route.path_prefix {
            let field = if route.path_prefix.is_some() {
                "path_prefix"
            } else {
                "host"
            };
            return Err(error(
                field,
                format!(
                    "route {:?} matches the same host and path prefix as route {:?}; a request \
                     could go to either, change one's `host` or `path_prefix`",
                    route.name, other.name
                ),
            ));
        }
    }
    Ok(())
}
