//! Every route, with the permission it needs, declared once in [`table`]. The router is built
//! from this table and each row's [`Need`] is enforced by [`crate::auth::authorize`]; the
//! route × role tests walk the same table.

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use keyward_core::Need;
use keyward_core::api::v1::ErrorBody;
use tower_http::trace::TraceLayer;

use crate::api::{
    approvals, audit, automations, env_vars, gateway_routes, gateway_sessions, llm_connections,
    members, orgs, permissions, provider_checks, roles, runtime, secret_providers, setup,
    static_values, tokens, wi_configs, workload_identity,
};
use crate::auth::{Guard, authorize};
use crate::error::ApiError;
use crate::needs::*;
use crate::people::{device, invitations, me, oidc, pages, saml};
use crate::state::AppState;
use crate::{issuer, ops, request_guards};

macro_rules! table {
    ($( $method:ident $path:literal => $need:expr, $handler:expr; )*) => {
        vec![$(
            (
                RouteDecl { method: Method::$method, path: $path, need: $need },
                on(MethodFilter::$method, $handler),
            ),
        )*]
    };
}

/// `GET /api/v1/openapi.json`: the document of this table's `/api/v1` routes.
async fn openapi_json() -> axum::response::Response {
    crate::openapi::serve(|| table().into_iter().map(|(decl, _)| decl).collect())
}

/// The whole API surface.
pub fn table() -> Vec<(RouteDecl, MethodRouter<AppState>)> {
    table! {
        GET "/.well-known/openid-configuration" => Need::Public, issuer::discovery;
        GET "/oauth2/jwks" => Need::Public, issuer::jwks;
        GET "/healthz" => Need::Public, ops::healthz;
        GET "/readyz" => Need::Public, ops::readyz;
        GET "/metrics" => Need::Public, ops::metrics;
        GET "/setup" => Need::Public, setup::page;
        POST "/api/v1/setup" => Need::Public, setup::complete;
        GET "/api/v1/openapi.json" => Need::Public, openapi_json;

        GET "/auth/parameters" => Need::Public, me::parameters;
        POST "/oauth2/device_authorization" => Need::Public, device::authorize;
        POST "/oauth2/token" => Need::Public, device::token;
        GET "/login" => Need::Public, pages::login_page;
        POST "/login" => Need::Public, pages::login;
        POST "/logout" => Need::Public, pages::logout;
        GET "/auth/{provider}/login" => Need::Public, oidc::login;
        GET "/auth/{provider}/callback" => Need::Public, oidc::callback;
        GET "/auth/session" => Need::Public, me::session;
        GET "/auth/saml/login" => Need::Public, saml::login;
        POST "/auth/saml/acs" => Need::Public, saml::acs;
        GET "/auth/saml/metadata" => Need::Public, saml::metadata;
        GET "/device" => Need::Public, pages::device_page;
        POST "/device" => Need::Public, pages::device_decide;
        POST "/api/v1/device/approve" => Need::Person, device::approve;
        POST "/api/v1/device/deny" => Need::Person, device::deny;
        PUT "/api/v1/me/password" => Need::Person, me::set_password;
        POST "/api/v1/me/totp" => Need::Person, me::enable_totp;
        DELETE "/api/v1/me/totp" => Need::Person, me::disable_totp;
        GET "/crewai_plus/api/v1/me/organizations" => Need::Person, me::organizations;
        GET "/api/v1/invitations" => MEMBERS_READ, invitations::list;
        POST "/api/v1/invitations" => INVITATIONS_MANAGE, invitations::create;
        DELETE "/api/v1/invitations/{id}" => INVITATIONS_MANAGE, invitations::revoke;
        GET "/invite" => Need::Public, invitations::page_get;
        POST "/invite" => Need::Public, invitations::accept;

        GET "/api/v1/orgs" => Need::Person, orgs::list;
        POST "/api/v1/orgs" => Need::Person, orgs::create;
        GET "/api/v1/orgs/{uuid}" => Need::Person, orgs::get;

        GET "/api/v1/tokens" => Need::Person, tokens::list;
        POST "/api/v1/tokens" => Need::Person, tokens::create;
        DELETE "/api/v1/tokens/{id}" => Need::Person, tokens::revoke;

        GET "/api/v1/automations" => AUTOMATIONS_READ, automations::list;
        POST "/api/v1/automations" => AUTOMATIONS_MANAGE, automations::create;
        GET "/api/v1/automations/{id}" => AUTOMATION_VIEW, automations::get;
        PATCH "/api/v1/automations/{id}" => AUTOMATION_SETTINGS, automations::update;
        DELETE "/api/v1/automations/{id}" => AUTOMATION_SETTINGS, automations::delete;
        GET "/api/v1/automations/{id}/tokens" => AUTOMATION_VIEW, automations::list_tokens;
        POST "/api/v1/automations/{id}/tokens" => AUTOMATION_SETTINGS, automations::create_token;
        DELETE "/api/v1/automations/{id}/tokens/{token_id}" => AUTOMATION_SETTINGS, automations::revoke_token;
        POST "/api/v1/automations/{id}/redeploy" => AUTOMATION_SETTINGS, static_values::redeploy;

        GET "/api/v1/workload-identity-configs" => WI_READ, wi_configs::list;
        POST "/api/v1/workload-identity-configs" => WI_WRITE, wi_configs::create;
        GET "/api/v1/workload-identity-configs/{id}" => WI_READ, wi_configs::get;
        PATCH "/api/v1/workload-identity-configs/{id}" => WI_WRITE, wi_configs::update;
        DELETE "/api/v1/workload-identity-configs/{id}" => WI_MANAGE, wi_configs::delete;

        GET "/api/v1/llm-connections" => LLM_READ, llm_connections::list;
        POST "/api/v1/llm-connections" => LLM_WRITE, llm_connections::create;
        GET "/api/v1/llm-connections/{id}" => LLM_ONE_READ, llm_connections::get;
        PATCH "/api/v1/llm-connections/{id}" => LLM_ONE_WRITE, llm_connections::update;
        DELETE "/api/v1/llm-connections/{id}" => LLM_ONE_MANAGE, llm_connections::delete;

        GET "/api/v1/environment-variables" => ENV_READ, env_vars::list;
        POST "/api/v1/environment-variables" => ENV_MANAGE, env_vars::create;
        GET "/api/v1/environment-variables/{id}" => ENV_VAR_READ, env_vars::get;
        PATCH "/api/v1/environment-variables/{id}" => ENV_VAR_MANAGE, env_vars::update;
        DELETE "/api/v1/environment-variables/{id}" => ENV_VAR_MANAGE, env_vars::delete;
        GET "/api/v1/automations/{id}/environment-variables" => AUTOMATION_ENV_READ, env_vars::list_assigned;
        PUT "/api/v1/automations/{id}/environment-variables" => AUTOMATION_ENV_MANAGE, env_vars::assign;

        GET "/api/v1/secret-providers" => SECRETS_READ, secret_providers::list;
        POST "/api/v1/secret-providers" => SECRETS_WRITE, secret_providers::create;
        GET "/api/v1/secret-providers/{id}" => SECRETS_READ, secret_providers::get;
        PATCH "/api/v1/secret-providers/{id}" => SECRETS_WRITE, secret_providers::update;
        DELETE "/api/v1/secret-providers/{id}" => SECRETS_MANAGE, secret_providers::delete;
        POST "/api/v1/secret-providers/{id}/test" => SECRETS_WRITE, provider_checks::test;
        GET "/api/v1/secret-providers/{id}/secrets" => SECRETS_READ, provider_checks::secrets;

        POST "/api/v1/workload-identity/token" => Need::Automation, workload_identity::mint;
        POST "/api/v1/runtime/kickoff" => Need::Automation, runtime::kickoff;

        GET "/api/v1/audit" => AUDIT_READ, audit::list;
        GET "/api/v1/audit/verify" => AUDIT_READ, audit::verify;

        // Gateway routes (SPEC §9), for gateways that run without a route file.
        GET "/api/v1/gateway/routes" => GATEWAY_READ, gateway_routes::list;
        POST "/api/v1/gateway/routes" => GATEWAY_MANAGE, gateway_routes::create;
        GET "/api/v1/gateway/routes/{id}" => GATEWAY_READ, gateway_routes::get;
        PUT "/api/v1/gateway/routes/{id}" => GATEWAY_MANAGE, gateway_routes::replace;
        DELETE "/api/v1/gateway/routes/{id}" => GATEWAY_MANAGE, gateway_routes::delete;
        // Gateway session recordings (SPEC §9): reading them is reading the gateway's traffic.
        GET "/api/v1/sessions" => GATEWAY_READ, gateway_sessions::list;
        GET "/api/v1/sessions/{id}" => GATEWAY_READ, gateway_sessions::get;
        GET "/api/v1/sessions/{id}/records" => GATEWAY_READ, gateway_sessions::records;
        GET "/api/v1/sessions/{id}/verify" => GATEWAY_READ, gateway_sessions::verify;
        // Just-in-time approvals (SPEC §9). Any person may call them; who sees a request and who
        // decides it depends on the request (its automation's human_in_the_loop grants), so the
        // domain layer decides (`domain::approvals`): a request hidden from the caller is 404.
        GET "/api/v1/approvals" => Need::Person, approvals::list;
        GET "/api/v1/approvals/{id}" => Need::Person, approvals::get;
        POST "/api/v1/approvals/{id}/approve" => Need::Person, approvals::approve;
        POST "/api/v1/approvals/{id}/deny" => Need::Person, approvals::deny;
        POST "/api/v1/approvals/{id}/revoke" => Need::Person, approvals::revoke;
        // RBAC (SPEC §8): roles, members, entity permissions.
        GET "/api/v1/roles" => MEMBERS_READ, roles::list;
        POST "/api/v1/roles" => ROLES_MANAGE, roles::create;
        GET "/api/v1/roles/{id}" => MEMBERS_READ, roles::get;
        PATCH "/api/v1/roles/{id}" => ROLES_MANAGE, roles::update;
        DELETE "/api/v1/roles/{id}" => ROLES_MANAGE, roles::delete;
        GET "/api/v1/members" => MEMBERS_READ, members::list;
        POST "/api/v1/members" => MEMBERS_MANAGE, members::add;
        PATCH "/api/v1/members/{user_id}" => ROLES_MANAGE, members::set_role;
        DELETE "/api/v1/members/{user_id}" => MEMBERS_MANAGE, members::remove;
        GET "/api/v1/automations/{id}/permissions" => AUTOMATION_VIEW, permissions::get_automation;
        PUT "/api/v1/automations/{id}/permissions" => AUTOMATION_SETTINGS, permissions::set_automation;
        GET "/api/v1/environment-variables/{id}/permissions" => ENV_VAR_READ, permissions::get_env_var;
        PUT "/api/v1/environment-variables/{id}/permissions" => ENV_VAR_MANAGE, permissions::set_env_var;
        GET "/api/v1/llm-connections/{id}/permissions" => LLM_ONE_READ, permissions::get_llm_connection;
        PUT "/api/v1/llm-connections/{id}/permissions" => LLM_ONE_MANAGE, permissions::set_llm_connection;
    }
}

/// The largest request body `route` accepts, given the configured API limit.
pub fn body_limit(route: &RouteDecl, configured: usize) -> usize {
    // A signed SAML response with many group claims outgrows the API's body limit; the SAML
    // crate bounds it itself.
    if route.path == "/auth/saml/acs" {
        saml::ACS_BODY_LIMIT
    } else {
        configured
    }
}

/// The application: every row of [`table`] behind its permission check.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    // The console's pages decide their declared needs the same way, from the session cookie.
    let api = table().into_iter().map(|(d, h)| (d, h, false));
    let console = crate::console::table()
        .into_iter()
        .map(|(d, h)| (d, h, true));
    for (decl, handler, is_console) in api.chain(console) {
        let guard = Guard {
            app: state.clone(),
            need: decl.need,
        };
        let limit = body_limit(&decl, state.config.max_body_bytes);
        let handler: MethodRouter<AppState> = if is_console {
            handler.layer(from_fn_with_state(guard, crate::console::guard::authorize))
        } else {
            handler.layer(from_fn_with_state(guard, authorize))
        };
        let handler: MethodRouter<AppState> = handler.layer(DefaultBodyLimit::max(limit));
        let handler: MethodRouter<AppState> =
            handler.layer(from_fn_with_state(limit, request_guards::read_body));
        router = router.route(decl.path, handler);
    }
    let headers = crate::headers::HeaderPolicy::for_config(&state.config);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(from_fn_with_state(
            state.clone(),
            crate::people::csrf::guard,
        ))
        .layer(axum::middleware::map_response_with_state(
            headers,
            crate::headers::apply,
        ))
        .layer(axum::middleware::from_fn(
            request_guards::reject_undecodable_path,
        ))
        // The span names the path, not the URI: query strings carry authorization codes, states
        // and user codes (/auth/<provider>/callback?code=…, /device?user_code=…).
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<_>| tracing::debug_span!("http", path = %req.uri().path()),
        ))
        // Outermost: the request id, access log line and HTTP metrics cover every answer.
        .layer(axum::middleware::from_fn(crate::request_id::observe))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> impl IntoResponse {
    let body = ErrorBody {
        error: "method_not_allowed".into(),
        message: "this path does not accept that HTTP method".into(),
        field: None,
        request_id: None,
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body))
}
