//! Cedar: the schema this crate ships, policy sets validated against it at load, and decisions.
//!
//! Loading parses each source, names every policy (`@id("…")`, else `<source>#<index>`) and
//! validates the whole set against [`SCHEMA`] in strict mode, so a typo is a load error with its
//! line and column, never a policy that silently matches nothing. Deciding is in `decide.rs`.

mod decide;
mod reads;

pub use reads::ContextReads;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};

use crate::{ConfigError, location_at};

/// The Cedar schema every policy is validated against (`schema.cedarschema`).
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// `@approval("required")` on a `permit`: the request may pass only with a human's approval
/// (the approval phase of the next issue reads [`Decision::approval_required`]).
pub const APPROVAL_ANNOTATION: &str = "approval";

/// The only value [`APPROVAL_ANNOTATION`] takes.
pub const APPROVAL_REQUIRED: &str = "required";

/// `@id("…")` names a policy in decisions, errors and audit events.
pub const ID_ANNOTATION: &str = "id";

/// A route's policies, parsed and validated against [`SCHEMA`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Policies {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    set: PolicySet,
    /// Permits carrying `@approval("required")`.
    approval: HashSet<PolicyId>,
    /// Policy ids in load order (sources in order, policies in text order).
    ids: Vec<String>,
    reads: ContextReads,
}

/// What happens when no policy matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoMatch {
    #[default]
    Deny,
    Allow,
}

/// A policy's text and the name errors and decisions use for it (file name, or
/// `<route>/inline`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One decision and the ids of the policies that decided it (empty when no policy matched and
/// the route's [`NoMatch`](crate::NoMatch) decided).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub policy_ids: Vec<String>,
    /// A permitting policy carries `@approval("required")`.
    pub approval_required: bool,
    /// No policy matched; the route's `no_match` decided.
    pub no_match: bool,
}

/// The parsed schema's validator, built once. The schema is a constant of this crate, so an
/// error here is a bug in the crate (a unit test parses it), reported rather than panicking.
fn validator() -> Result<&'static Validator, ConfigError> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA)
                .map(|(schema, _warnings)| Validator::new(schema))
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ConfigError {
            location: None,
            field: None,
            message: format!(
                "the gateway's built-in Cedar schema does not parse ({e}); this is a bug in \
                 keyward-policy, please report it"
            ),
        })
}

/// The schema, parsed (for tools that want to validate entities or print it).
pub fn schema() -> Result<Schema, ConfigError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _)| schema)
        .map_err(|e| ConfigError {
            location: None,
            field: None,
            message: format!("the gateway's built-in Cedar schema does not parse: {e}"),
        })
}

/// A [`ConfigError`] at the first label of a Cedar diagnostic, in `source`.
fn diagnostic_error(
    source: &PolicySource,
    what: &str,
    d: &(impl Diagnostic + Display),
) -> ConfigError {
    let offset = d
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset());
    let mut message = format!("{what}: {d}");
    if let Some(help) = d.help() {
        message.push_str(&format!(" ({help})"));
    }
    ConfigError {
        location: offset.map(|o| location_at(&source.name, &source.text, o)),
        field: None,
        message,
    }
}

fn error_at(source: &PolicySource, offset: Option<usize>, message: String) -> ConfigError {
    ConfigError {
        location: offset.map(|o| location_at(&source.name, &source.text, o)),
        field: None,
        message,
    }
}

/// The byte offset of `@name` in `policy_text` within `text` (Cedar hands a parsed policy's
/// text back verbatim, so it is found in its source).
fn annotation_offset(text: &str, policy_text: &str, name: &str) -> Option<usize> {
    let start = text.find(policy_text)?;
    let needle = format!("@{name}");
    policy_text.find(&needle).map(|i| start + i)
}

impl Policies {
    /// Parses and validates `sources` (each a file name or stored policy name, and its text).
    /// A syntax or schema error is a [`ConfigError`] naming source, line and column.
    pub fn load(sources: &[PolicySource]) -> Result<Policies, ConfigError> {
        let validator = validator()?;
        let mut set = PolicySet::new();
        let mut approval = HashSet::new();
        let mut ids = Vec::new();
        // Policy id → (index of its source, its text), to place validation errors.
        let mut origin: HashMap<PolicyId, usize> = HashMap::new();
        for (source_index, source) in sources.iter().enumerate() {
            let parsed = PolicySet::from_str(&source.text)
                .map_err(|e| diagnostic_error(source, "the policy does not parse", &e))?;
            if let Some(template) = parsed.templates().next() {
                let template_text = template.to_string();
                let start = source.text.find(&template_text).unwrap_or(0);
                let offset = ["?principal", "?resource"]
                    .iter()
                    .filter_map(|slot| template_text.find(slot))
                    .min()
                    .map(|i| start + i);
                return Err(error_at(
                    source,
                    offset,
                    "a policy template (`?principal` or `?resource`) cannot be used in a gateway \
                     policy; name the principal or resource, or test an attribute in `when`"
                        .into(),
                ));
            }
            // Cedar names the policies `policy0`, `policy1`, … in text order.
            let mut policies: Vec<&cedar_policy::Policy> = parsed.policies().collect();
            policies.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .strip_prefix("policy")
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(usize::MAX)
            });
            for (index, policy) in policies.into_iter().enumerate() {
                let policy_text = policy.to_string();
                let id = match policy.annotation(ID_ANNOTATION) {
                    Some(id) if id.trim().is_empty() => {
                        return Err(error_at(
                            source,
                            annotation_offset(&source.text, &policy_text, ID_ANNOTATION),
                            "`@id(\"\")` is empty; give the policy a name, or drop the annotation \
                             to have it named after its file and position"
                                .into(),
                        ));
                    }
                    Some(id) => id.to_owned(),
                    None => format!("{}#{index}", source.name),
                };
                let id = PolicyId::new(&id);
                if let Some(first) = origin.get(&id) {
                    let first_name = sources.get(*first).map(|s| s.name.as_str()).unwrap_or("?");
                    return Err(error_at(
                        source,
                        annotation_offset(&source.text, &policy_text, ID_ANNOTATION),
                        format!(
                            "the policy id `{id}` is used twice (first in {first_name}); policy ids \
                             must be unique across a route's policies, rename one `@id`"
                        ),
                    ));
                }
                match policy.annotation(APPROVAL_ANNOTATION) {
                    None => {}
                    Some(value) if value != APPROVAL_REQUIRED => {
                        return Err(error_at(
                            source,
                            annotation_offset(&source.text, &policy_text, APPROVAL_ANNOTATION),
                            format!(
                                "`@{APPROVAL_ANNOTATION}(\"{value}\")` is not understood; the only \
                                 value is `@{APPROVAL_ANNOTATION}(\"{APPROVAL_REQUIRED}\")`"
                            ),
                        ));
                    }
                    Some(_) if policy.effect() == cedar_policy::Effect::Forbid => {
                        return Err(error_at(
                            source,
                            annotation_offset(&source.text, &policy_text, APPROVAL_ANNOTATION),
                            format!(
                                "`@{APPROVAL_ANNOTATION}(\"{APPROVAL_REQUIRED}\")` is on a `forbid`; \
                                 it belongs on the `permit` that may pass with a human's approval"
                            ),
                        ));
                    }
                    Some(_) => {
                        approval.insert(id.clone());
                    }
                }
                set.add(policy.new_id(id.clone())).map_err(|e| {
                    error_at(source, None, format!("the policy cannot be added: {e}"))
                })?;
                origin.insert(id.clone(), source_index);
                ids.push(id.to_string());
            }
        }
        let result = validator.validate(&set, ValidationMode::Strict);
        // The first error in reading order (sources in order, then position), whatever order
        // the validator found them in, so the same file always gives the same message.
        let first = result.validation_errors().min_by_key(|error| {
            let offset = error
                .labels()
                .and_then(|mut labels| labels.next())
                .map_or(usize::MAX, |l| l.offset());
            (
                origin.get(error.policy_id()).copied().unwrap_or(usize::MAX),
                offset,
            )
        });
        if let Some(error) = first {
            let source = origin
                .get(error.policy_id())
                .and_then(|i| sources.get(*i))
                .ok_or_else(|| ConfigError {
                    location: None,
                    field: None,
                    message: format!("the policies do not match the gateway's schema: {error}"),
                })?;
            return Err(diagnostic_error(
                source,
                "the policy does not match the gateway's schema",
                error,
            ));
        }
        let reads = ContextReads::of(&set);
        Ok(Policies {
            inner: Arc::new(Inner {
                set,
                approval,
                ids,
                reads,
            }),
        })
    }

    /// Whether any policy reads the request body (`context.body…` or `context.mcp…`); the
    /// gateway buffers the body (within the inspection limit) only then.
    pub fn reads_body(&self) -> bool {
        self.inner.reads.reads_body()
    }

    /// Which context attributes the policies read: the others need not be built.
    pub fn context_reads(&self) -> &ContextReads {
        &self.inner.reads
    }

    /// Whether the policy `id` (as decisions name it) is a permit carrying
    /// `@approval("required")`: the grant of an approval is kept per such policy.
    pub fn asks_approval(&self, id: &str) -> bool {
        self.inner.approval.iter().any(|p| p.to_string() == id)
    }

    /// The policies' ids, in load order.
    pub fn ids(&self) -> &[String] {
        &self.inner.ids
    }

    /// No policy at all: every request is decided by the route's `no_match`.
    pub fn is_empty(&self) -> bool {
        self.inner.ids.is_empty()
    }
}

#[cfg(test)]
mod doc_tests;
#[cfg(test)]
mod tests;
