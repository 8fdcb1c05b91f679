//! The phases of the data path as traits (request side: identity, policy, approval,
//! credentials), so the
//! pipeline's order is tested with stand-ins while `lib.rs` wires the real verifier, Cedar
//! policies and credential injector. The route table holds each route's policy as a
//! [`PolicyPhase`]; the pipeline calls all three.

use async_trait::async_trait;
use http::HeaderMap;
use keyward_core::OrgId;
use keyward_policy::{
    Accept, ApprovalWait, CredentialSpec, Decision, NoMatch, Policies, Principal, RequestFacts,
};

use crate::error::GatewayError;

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
    /// Whether the policy `id` asks for a human's approval (`@approval("required")`).
    fn asks_approval(&self, _id: &str) -> bool {
        false
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

    fn asks_approval(&self, id: &str) -> bool {
        Policies::asks_approval(self, id)
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

/// What the approval phase knows of a request a permitting policy marked
/// `@approval("required")` (after the decision, before any credential is fetched).
pub struct ApprovalAsk<'a> {
    pub org: OrgId,
    pub route: &'a str,
    pub wait: ApprovalWait,
    pub timeout: std::time::Duration,
    pub principal: &'a Principal,
    /// The approval-asking policy whose grant is looked for and asked for.
    pub policy_id: &'a str,
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub model: Option<&'a str>,
    pub tool: Option<&'a str>,
}

/// How an approved request passed (for its audit event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalPass {
    pub approval_id: String,
    /// `once` (spent by this request) or `timebox`.
    pub grant: &'static str,
}

/// Step 4: a request needing approval passes only with a human's grant; otherwise the refusal
/// says why (no reason → 428, waiting → held or 403 with the approval id, too many → 429).
#[async_trait]
pub trait ApprovalPhase: Send + Sync {
    async fn approve(&self, ask: ApprovalAsk<'_>) -> Result<ApprovalPass, GatewayError>;
}

/// No approvals can be had (no platform store, or a route without an organization): every
/// request needing one is refused.
pub struct NoApprovals;

#[async_trait]
impl ApprovalPhase for NoApprovals {
    async fn approve(&self, ask: ApprovalAsk<'_>) -> Result<ApprovalPass, GatewayError> {
        Err(GatewayError::ApprovalRequired {
            message: format!(
                "this request needs a human's approval (policy {}), and route {} cannot ask for one: it belongs to no organization",
                ask.policy_id, ask.route
            ),
            policy_ids: vec![ask.policy_id.to_owned()],
            approval_id: None,
            state: None,
        })
    }
}
