//! The console's permission layer. Each console route declares a [`Need`] in
//! [`super::table`], like the API's route table; this layer resolves the signed-in person from
//! the session cookie (instead of a bearer token), checks a POST's CSRF token, and then decides
//! the need through the API's own [`crate::auth::person_caller`] and
//! [`crate::rbac::check_entity`]. A page cannot run without it: its [`Ctx`] comes only from here.

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyward_core::Need;
use keyward_store::UserRow;
use std::net::SocketAddr;

use super::csrf;
use super::render::{Layout, NavItem, OrgChoice, Who, error_page, message, see_other};
use crate::auth::{Guard, ORG_HEADERS};
use crate::caller::{Caller, Principal};
use crate::error::ApiError;
use crate::people::cookies::cookie;
use crate::people::local;

/// The cookie holding the organization the switcher selected (an id, no secret).
pub const ORG_COOKIE: &str = "keyward_org";

/// The signed-in person of a console request, its CSRF token and organizations.
#[derive(Clone)]
pub struct Session {
    pub user: UserRow,
    pub csrf: String,
    /// `(id, name)` of each organization the person belongs to.
    pub orgs: Vec<(String, String)>,
}

/// What a console page handler gets: the caller (as the API sees it) and the session.
#[derive(Clone)]
pub struct Ctx {
    pub caller: Caller,
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Ctx>().cloned().ok_or_else(|| {
            error_page(
                None,
                ApiError::internal("console page mounted without its permission layer"),
            )
        })
    }
}

impl Ctx {
    /// The page frame for this person: header, organization switcher, and the links their
    /// role opens (convenience only; each page checks its own need).
    pub fn layout(&self, title: &str, current: &str) -> Layout {
        let org = self.caller.org.as_ref();
        let nav = super::NAV
            .iter()
            .filter(|(_, _, need)| match need {
                Need::Feature(feature, level) => {
                    org.is_some_and(|o| o.role.allows(*feature, *level))
                }
                Need::Person => true,
                _ => false,
            })
            .map(|(href, label, _)| NavItem {
                href,
                label,
                current: *href == current,
            })
            .collect();
        let selected = org.map(|o| o.id.to_string());
        Layout {
            who: Some(Who {
                email: self.session.user.email.clone(),
                csrf: self.session.csrf.clone(),
                org: org.map(|o| o.name.clone()),
                role: org.map(|o| o.role.name.clone()),
                orgs: self
                    .session
                    .orgs
                    .iter()
                    .map(|(id, name)| OrgChoice {
                        selected: selected.as_deref() == Some(id.as_str()),
                        id: id.clone(),
                        name: name.clone(),
                    })
                    .collect(),
                nav,
            }),
            narrow: false,
            ..Layout::bare(title)
        }
    }
}

fn percent_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The layer in front of each console route (state: the route's declared need).
pub async fn authorize(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if guard.need == Need::Public {
        return next.run(req).await;
    }
    let app = &guard.app;
    let now = app.clock.now();
    let (user, cookie_value) = match local::session_user(app, req.headers(), now).await {
        Ok(Some(found)) => found,
        // Not signed in, or idle too long: sign in, then come back here.
        Ok(None) => {
            let back = if req.method() == Method::GET {
                req.uri()
                    .path_and_query()
                    .map_or("/console", |p| p.as_str())
                    .to_owned()
            } else {
                "/console".to_owned()
            };
            return see_other(&format!("/login?next={}", percent_encode(&back)));
        }
        Err(e) => return error_page(None, e),
    };
    // A state-changing form must carry this session's token (read from the form body, which is
    // then handed on unchanged).
    let req = if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, app.config.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => {
                return message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form refused",
                    "The form is larger than this server accepts.",
                    true,
                );
            }
        };
        if let Err(text) = csrf::check(&cookie_value, &bytes) {
            tracing::warn!(path = %parts.uri.path(), "refused a console form without this session's CSRF token");
            return message(StatusCode::FORBIDDEN, "Form refused", text, true);
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let memberships = match app.store.memberships(user.id).await {
        Ok(m) => m,
        Err(e) => return error_page(None, e.into()),
    };
    let orgs: Vec<(String, String)> = memberships
        .iter()
        .map(|m| (m.org.id.to_string(), m.org.name.clone()))
        .collect();
    // The switcher's choice when it is still one of the person's organizations, else the first.
    let chosen = cookie(req.headers(), ORG_COOKIE)
        .filter(|c| orgs.iter().any(|(id, _)| id == c))
        .or_else(|| orgs.first().map(|(id, _)| id.clone()));
    let (mut parts, body) = req.into_parts();
    for name in ORG_HEADERS {
        parts.headers.remove(name);
    }
    if let Some(id) = chosen
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        parts.headers.insert(ORG_HEADERS[0], id);
    }
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| crate::proxies::resolve(c.0.ip(), &parts.headers, &app.config.trusted_proxies));
    let principal = Principal::Person {
        user: user.id,
        email: user.email.clone(),
    };
    let session = Session {
        csrf: local::csrf_token(&cookie_value),
        user,
        orgs,
    };
    let caller =
        match crate::auth::person_caller(app, guard.need, principal, &parts.headers, ip, now).await
        {
            Ok(c) => c,
            Err(e) => return refusal(&session, None, e),
        };
    if let Need::Entity(..) = guard.need
        && let Err(e) = crate::rbac::check_entity(app, &caller, guard.need, &mut parts).await
    {
        return refusal(&session, Some(&caller), e);
    }
    let ctx = Ctx { caller, session };
    parts.extensions.insert(ctx.caller.clone());
    parts.extensions.insert(ctx);
    next.run(Request::from_parts(parts, body)).await
}

/// A refused page inside the signed-in frame, so the person can go elsewhere from it.
fn refusal(session: &Session, caller: Option<&Caller>, e: ApiError) -> Response {
    let ctx = Ctx {
        caller: caller.cloned().unwrap_or_else(|| Caller {
            principal: Principal::Person {
                user: session.user.id,
                email: session.user.email.clone(),
            },
            org: None,
            ip: None,
            now: 0,
        }),
        session: session.clone(),
    };
    error_page(Some(ctx.layout("", "")), e).into_response()
}
