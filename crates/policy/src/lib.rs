//! What the gateway enforces (SPEC §9), free of I/O so the gateway and the server's route API
//! validate and decide with the same code:
//! - `route`: a route as written in a TOML file or stored through the API, parsed into a
//!   validated [`Route`] (a bad file names file, line and column);
//! - `cedar`: the schema shipped in this crate, policy sets validated against it at load, and
//!   [`Policies::decide`] over a request's facts (forbid beats permit; no match follows the
//!   route's [`NoMatch`]);
//! - `facts`: the principal and request facts a decision is taken on — method, path, segments,
//!   query, lowercased headers, and JSON body fields read within the inspection limit, including
//!   MCP JSON-RPC `method`, tool name and arguments.

mod cedar;
mod facts;
mod route;

pub use cedar::{APPROVAL_ANNOTATION, Decision, Effect, Policies, SCHEMA};
pub use facts::{BodyFacts, McpFacts, Principal, PrincipalKind, RequestFacts};
pub use route::{
    Accept, CredentialSpec, NoMatch, PolicySource, RawRoute, RawRouteFile, Route, RouteFile,
    parse_route_file, route_from_json,
};

/// Where in which source a problem is: `file:line:column`, 1-based, as editors jump to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A route file, a stored route or a policy that cannot be loaded. The message says what is
/// wrong and what to write instead; `location` points at it when the source has lines.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
pub struct ConfigError {
    pub location: Option<Location>,
    /// The route's field the problem is in (`upstream`, `policies[1]`, …), for API answers.
    pub field: Option<String>,
    pub message: String,
}
