//! The phases of the data path as traits (request side: identity, policy, credentials), so the
//! pipeline's order is tested with stand-ins while `lib.rs` wires the real verifier, Cedar
//! policies and credential injector. The route table holds each route's policy as a
//! [`PolicyPhase`]; the pipeline calls all three.

use async_trait::async_trait;
use http::HeaderMap;
use keyward_core::OrgId;
use keyward_policy::{
    Accept, CredentialSpec, Decision, NoMatch, Policies, Principal, RequestFacts,
};

use crate::credentials::{CredentialError, Injector};
use crate::identity::{IdentityError, Verifier};

/// Who is calling (request side, first phase), for a route owned by `route_org` (a person acts
/// in that organization; a caller of another one is refused).
#[async_trait]
pub trait IdentityPhase: Send + Sync {
    async fn identify(
        &self,
        headers: &HeaderMap,
        accept: &[Accept],
        route_org: Option<OrgId>,
        now: i64,
    ) -> Result<Principal, IdentityError>;
}

#[async_trait]
impl IdentityPhase for Verifier {
    async fn identify(
        &self,
        headers: &HeaderMap,
        accept: &[Accept],
        route_org: Option<OrgId>,
        now: i64,
    ) -> Result<Principal, IdentityError> {
        self.verify_for(headers, accept, route_org, now).await
    }
}

/// What a route's policy says about a request.
pub trait PolicyPhase: Send + Sync {
    fn reads_body(&self) -> bool;
    /// Whether some policy reads the context attribute `name` (`headers`, `query`, …); what
    /// none reads is not collected from the request.
    fn reads_context(&self, _name: &str) -> bool {
        true
    }
    fn decide(&self, principal: &Principal, request: &RequestFacts, no_match: NoMatch) -> Decision;
}

impl PolicyPhase for Policies {
    fn reads_body(&self) -> bool {
        Policies::reads_body(self)
    }

    fn reads_context(&self, name: &str) -> bool {
        self.context_reads().reads(name)
    }

    fn decide(&self, principal: &Principal, request: &RequestFacts, no_match: NoMatch) -> Decision {
        Policies::decide(self, principal, request, no_match)
    }
}

/// The upstream credential (request side, after the decision).
#[async_trait]
pub trait CredentialPhase: Send + Sync {
    fn needs_body(&self, spec: &CredentialSpec) -> bool;
    /// Adds the credential of route `route` of organization `org`.
    async fn apply(
        &self,
        org: Option<OrgId>,
        route: &str,
        spec: &CredentialSpec,
        request: &mut http::request::Parts,
        body: Option<&[u8]>,
    ) -> Result<(), CredentialError>;
}

#[async_trait]
impl CredentialPhase for Injector {
    fn needs_body(&self, spec: &CredentialSpec) -> bool {
        Injector::needs_body(spec)
    }

    async fn apply(
        &self,
        org: Option<OrgId>,
        route: &str,
        spec: &CredentialSpec,
        request: &mut http::request::Parts,
        body: Option<&[u8]>,
    ) -> Result<(), CredentialError> {
        Injector::apply_for(self, org, route, spec, request, body).await
    }
}
