//! Who the request acts as: the person or automation behind the bearer token, the organization it
//! selected and the one `now` the request was authorized at. Only `auth::authorize`
//! builds a [`Caller`]; handlers extract it, so a handler mounted without a permission
//! declaration cannot run.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyward_core::permission::RoleGrants;
use keyward_core::{AutomationId, OrgId, UserId};

use crate::error::ApiError;

#[derive(Clone, Debug)]
pub enum Principal {
    Person {
        user: UserId,
        email: String,
    },
    Automation {
        automation: AutomationId,
        name: String,
    },
}

/// The organization a request acts in, with the caller's role there.
#[derive(Clone, Debug)]
pub struct OrgContext {
    pub id: OrgId,
    pub name: String,
    pub role: RoleGrants,
}

#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub org: Option<OrgContext>,
    pub ip: Option<IpAddr>,
    /// Unix seconds when the request was authorized: the one `now` the whole request uses.
    pub now: i64,
}

impl Caller {
    /// How this caller appears in audit events.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Person { user, .. } => format!("user:{user}"),
            Principal::Automation { automation, .. } => format!("automation:{automation}"),
        }
    }

    pub fn user(&self) -> Result<UserId, ApiError> {
        match &self.principal {
            Principal::Person { user, .. } => Ok(*user),
            Principal::Automation { .. } => Err(wrong_kind()),
        }
    }

    /// The selected organization; routes with a feature need always have one.
    pub fn org(&self) -> Result<&OrgContext, ApiError> {
        self.org
            .as_ref()
            .ok_or_else(|| ApiError::internal("route without an organization context"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("handler mounted without a permission declaration"))
    }
}

/// The entity an `{id}` route resolved for its permission check (see `rbac::check_entity`),
/// handed to the handler so the entity is looked up once and both see the same row.
#[derive(Clone, Debug)]
pub struct Resolved<T>(pub T);

impl<S: Send + Sync, T: Clone + Send + Sync + 'static> FromRequestParts<S> for Resolved<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Resolved<T>>()
            .cloned()
            .ok_or_else(|| {
                ApiError::internal("handler expects an entity its route does not resolve")
            })
    }
}

pub(crate) fn wrong_kind() -> ApiError {
    ApiError::Forbidden {
        code: "wrong_token_kind",
        message: "this endpoint is for people; automation tokens are accepted only on /api/v1/runtime and /api/v1/workload-identity endpoints".into(),
    }
}
