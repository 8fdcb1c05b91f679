//! Who is calling, and may they? [`authorize`] runs in front of every route with the [`Need`]
//! that route declared in the route table; it resolves the bearer token into a [`Caller`] and
//! checks the need. Handlers get the `Caller` as an extractor, which only this layer provides —
//! so a handler mounted without a declaration cannot run.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyward_core::permission::RoleGrants;
use keyward_core::{Need, OrgId};
use keyward_store::{ResolvedToken, TokenKind, UserRow, secret};

use crate::caller::{Caller, OrgContext, Principal, wrong_kind};
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;

/// Organization selection headers (SPEC §10b); the CrewAI CLI sends the second.
pub const ORG_HEADERS: [&str; 2] = ["x-keyward-organization-id", "x-crewai-organization-id"];

/// The layer's state: the app and the route's declared need.
#[derive(Clone)]
pub struct Guard {
    pub app: AppState,
    pub need: Need,
}

pub async fn authorize(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    if guard.need == Need::Public {
        return next.run(req).await;
    }
    // The client behind a trusted proxy, for the audit events that record it.
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| {
        crate::proxies::resolve(c.0.ip(), req.headers(), &guard.app.config.trusted_proxies)
    });
    match resolve(&guard.app, guard.need, req.headers(), ip).await {
        Ok(caller) => {
            // Entity rules (private automations, grants, access lists) for `{id}` routes.
            if let Need::Entity(..) = guard.need {
                let (mut parts, body) = req.into_parts();
                if let Err(e) =
                    crate::rbac::check_entity(&guard.app, &caller, guard.need, &mut parts).await
                {
                    return e.into_response();
                }
                req = Request::from_parts(parts, body);
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            metrics::counter!("keyward_auth_failures_total").increment(1);
            e.into_response()
        }
    }
}

/// What a bearer token turned out to be.
enum Bearer {
    /// A personal access token or an automation token, from the store.
    Stored(Box<ResolvedToken>),
    /// An access token of Keyward's own identity provider (`local`), for this person.
    Access(UserRow),
}

#[tracing::instrument(skip_all)]
async fn resolve(
    app: &AppState,
    need: Need,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let now = app.clock.now();
    let token = bearer(headers)?;
    let found = if crate::people::bearer::looks_like_jwt(token) {
        // Keyward's own access tokens with `local`, the external provider's otherwise.
        Bearer::Access(match app.config.auth {
            crate::config::provider::AuthProvider::Local => {
                crate::people::bearer::local_person(app, token, now).await?
            }
            _ => crate::people::bearer::provider_person(app, token, now).await?,
        })
    } else {
        let resolved = lookup(app, token, now).await?;
        if let Some(user) = &resolved.user {
            crate::people::bearer::check_still_assigned(app, user.id).await?;
        }
        Bearer::Stored(Box::new(resolved))
    };
    let kind = match &found {
        Bearer::Stored(resolved) => resolved.token.kind,
        Bearer::Access(_) => TokenKind::Personal,
    };
    match (need, kind, &found) {
        (Need::Public, _, _) => Err(ApiError::internal("public routes are not authorized")),
        (Need::Automation, TokenKind::Automation, Bearer::Stored(resolved)) => {
            automation_caller(resolved, ip, now)
        }
        (Need::Automation, _, _) => Err(ApiError::Forbidden {
            code: "wrong_token_kind",
            message: "this runtime endpoint takes an automation token (create one with POST /api/v1/automations/{id}/tokens), not a person's token".into(),
        }),
        (_, TokenKind::Automation, _) => Err(wrong_kind()),
        (_, TokenKind::Personal, _) => person_caller(app, need, person(&found)?, headers, ip, now).await,
    }
}

/// A person's [`Caller`] for a route needing `need`: the organization the headers select, and
/// the role check. The API (bearer tokens) and the console (session cookies) both decide here.
pub async fn person_caller(
    app: &AppState,
    need: Need,
    principal: Principal,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Caller, ApiError> {
    match need {
        Need::Public | Need::Automation => Err(ApiError::internal(
            "public and runtime routes have no person caller",
        )),
        Need::Person => {
            let org = select_org(app, &principal, headers, false).await?;
            Ok(Caller {
                principal,
                org,
                ip,
                now,
            })
        }
        Need::Feature(feature, level) | Need::Entity(_, feature, level) => {
            let org = select_org(app, &principal, headers, true).await?;
            let ctx = org
                .as_ref()
                .ok_or_else(|| ApiError::internal("organization required"))?;
            if !ctx.role.allows(feature, level) && !crate::rbac::feature_check_deferred(need) {
                return Err(ApiError::Forbidden {
                    code: "forbidden",
                    message: format!(
                        "your role '{}' in organization {} does not grant {level} on {feature}",
                        ctx.role.name, ctx.id
                    ),
                });
            }
            Ok(Caller {
                principal,
                org,
                ip,
                now,
            })
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| ApiError::Unauthenticated {
        code: "missing_token",
        message: "send 'Authorization: Bearer <token>' (a personal access token or a `keyward login` access token, or an automation token for runtime endpoints)".into(),
    })?;
    let text = value.to_str().unwrap_or("");
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    token.ok_or_else(|| ApiError::Unauthenticated {
        code: "invalid_authorization",
        message: "the Authorization header must be 'Bearer <token>'".into(),
    })
}

async fn lookup(app: &AppState, token: &str, now: i64) -> Result<ResolvedToken, ApiError> {
    // The lookup is by SHA-256 of the token, so no comparison ever touches the secret itself.
    let resolved = app
        .store
        .resolve_token(&secret::hash_token(token))
        .await?
        .ok_or_else(crate::people::bearer::unknown_token)?;
    let record = &resolved.token;
    if record.revoked_at.is_some() {
        return Err(ApiError::Unauthenticated {
            code: "token_revoked",
            message: format!(
                "token '{}' ({}…) was revoked; create a new one",
                record.name, record.prefix
            ),
        });
    }
    if let Some(expires_at) = record.expires_at
        && now >= expires_at
    {
        return Err(ApiError::Unauthenticated {
            code: "token_expired",
            message: format!(
                "token '{}' ({}…) expired at {}; create a new one",
                record.name,
                record.prefix,
                clock::rfc3339(expires_at)
            ),
        });
    }
    Ok(resolved)
}

fn automation_caller(
    resolved: &ResolvedToken,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Caller, ApiError> {
    // Tokens go with their automation (ON DELETE CASCADE); a missing one means a damaged row.
    let (Some(org_id), Some(automation)) = (resolved.token.org_id, resolved.automation.clone())
    else {
        return Err(ApiError::internal(
            "automation token without organization or automation",
        ));
    };
    Ok(Caller {
        principal: Principal::Automation {
            automation: automation.id,
            name: automation.name,
        },
        org: Some(OrgContext {
            id: org_id,
            name: String::new(),
            role: RoleGrants {
                name: "automation".into(),
                levels: Some(Vec::new()),
            },
        }),
        ip,
        now,
    })
}

fn person(found: &Bearer) -> Result<Principal, ApiError> {
    let user = match found {
        Bearer::Stored(resolved) => resolved
            .user
            .clone()
            .ok_or_else(|| ApiError::internal("personal token without a user"))?,
        Bearer::Access(user) => user.clone(),
    };
    Ok(Principal::Person {
        user: user.id,
        email: user.email,
    })
}

/// The organization named by the selection header, or the caller's only one. Another
/// organization's id is "not found", exactly like one that does not exist.
async fn select_org(
    app: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    required: bool,
) -> Result<Option<OrgContext>, ApiError> {
    let Principal::Person { user, .. } = principal else {
        return Ok(None);
    };
    let header = ORG_HEADERS.iter().find_map(|h| headers.get(*h));
    let membership = match header {
        Some(value) => {
            let id: OrgId = value
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| ApiError::Invalid {
                    code: "invalid_organization_id",
                    message: "X-Keyward-Organization-Id must be an organization UUID (not the numeric id)".into(),
                    field: Some("X-Keyward-Organization-Id"),
                })?;
            Some(
                app.store
                    .membership(id, *user)
                    .await?
                    .ok_or(ApiError::not_found("organization"))?,
            )
        }
        None => {
            let mut all = app.store.memberships(*user).await?;
            match all.len() {
                1 => all.pop(),
                0 if required => return Err(ApiError::not_found("organization")),
                n if required && n > 1 => {
                    let listed: Vec<String> = all
                        .iter()
                        .map(|m| format!("{:?} ({})", m.org.name, m.org.id))
                        .collect();
                    return Err(ApiError::Invalid {
                        code: "organization_required",
                        message: format!(
                            "you belong to {n} organizations: {}; choose one with the X-Keyward-Organization-Id header (CLI: --org <uuid>, KEYWARD_ORG, or `keyward org switch <uuid>` for a default)",
                            listed.join(", ")
                        ),
                        field: Some("X-Keyward-Organization-Id"),
                    });
                }
                _ => None,
            }
        }
    };
    let Some(m) = membership else {
        return Ok(None);
    };
    Ok(Some(OrgContext {
        role: crate::rbac::grants_for(app, m.org.id, &m.role).await?,
        id: m.org.id,
        name: m.org.name,
    }))
}
