//! What the gateway enforces (SPEC §9), free of I/O so the gateway and the server's route API
//! validate and decide with the same code:
//! - `route`: a route as written in a TOML file or stored through the API, parsed into a
//!   validated [`Route`] (a bad file names file, line and column);
//! - `cedar`: the schema shipped in this crate, policy sets validated against it at load, and
//!   [`Policies::decide`] over a request's facts (forbid beats permit; no match follows the
//!   route's [`NoMatch`]);
//! - `facts`: the principal and request facts a decision is taken on — method, path, segments,
//!   query, lowercased headers, and JSON body fields read within the inspection limit, including
//!   MCP JSON-RPC `method`, tool name and arguments;
//! - `request`: an HTTP request read into those facts, as the gateway reads it.

mod cedar;
mod facts;
mod request;
mod route;

pub use cedar::{
    APPROVAL_ANNOTATION, APPROVAL_REQUIRED, ContextReads, Decision, Effect, ID_ANNOTATION,
    Policies, SCHEMA, schema,
};
pub use facts::{BodyFacts, McpFacts, Principal, PrincipalKind, RequestFacts, normalize_path};
pub use request::{AmbiguousPath, request_facts, request_path};
pub use route::{
    Accept, ApprovalWait, CredentialSpec, NoMatch, PolicySource, Quantity, RawRoute, RawRouteFile,
    Route, RouteFile, parse_duration, parse_route_file, parse_size, route_from_json,
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

/// The 1-based line and column (in characters) of byte `offset` in `text`, as a [`Location`]
/// in `file`. An offset past the end points just after the last character.
pub(crate) fn location_at(file: &str, text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    Location {
        file: file.to_owned(),
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(location_at("f", text, 0).to_string(), "f:1:1");
        assert_eq!(location_at("f", text, 3).to_string(), "f:2:1");
        // `é` is two bytes and one column.
        assert_eq!(location_at("f", text, 7).to_string(), "f:2:4");
        assert_eq!(location_at("f", text, 8).to_string(), "f:3:1");
        assert_eq!(location_at("f", text, 99).to_string(), "f:3:2");
    }
}
