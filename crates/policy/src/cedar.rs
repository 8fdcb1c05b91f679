//! Cedar: the schema this crate ships, policy sets validated against it at load, and decisions.
//!
//! SKELETON — the policy helper owns this file and replaces every `todo!()`.

use crate::ConfigError;
use crate::facts::{Principal, RequestFacts};
use crate::route::{NoMatch, PolicySource};

/// The Cedar schema every policy is validated against (`schema.cedarschema`).
pub const SCHEMA: &str = "";

/// `@approval("required")` on a `permit`: the request may pass only with a human's approval
/// (the approval phase of the next issue reads [`Decision::approval_required`]).
pub const APPROVAL_ANNOTATION: &str = "approval";

/// A route's policies, parsed and validated against [`SCHEMA`].
#[derive(Clone, Debug)]
pub struct Policies {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One decision and the ids of the policies that decided it (empty when no policy matched and
/// the route's [`NoMatch`] decided).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub policy_ids: Vec<String>,
    /// A permitting policy carries `@approval("required")`.
    pub approval_required: bool,
    /// No policy matched; the route's `no_match` decided.
    pub no_match: bool,
}

impl Policies {
    /// Parses and validates `sources` (each a file name or stored policy name, and its text).
    /// A syntax or schema error is a [`ConfigError`] naming source, line and column.
    pub fn load(sources: &[PolicySource]) -> Result<Policies, ConfigError> {
        let _ = sources;
        todo!()
    }

    /// Whether any policy reads the request body (`context.body…`); the gateway buffers the body
    /// (within the inspection limit) only then.
    pub fn reads_body(&self) -> bool {
        todo!()
    }

    /// Decides one request: forbid beats permit; no matching policy follows `no_match`.
    pub fn decide(
        &self,
        principal: &Principal,
        request: &RequestFacts,
        no_match: NoMatch,
    ) -> Decision {
        let _ = (principal, request, no_match);
        todo!()
    }
}
