//! The web console (`/console`): server-rendered pages over the same domain services as the
//! API, behind the same permission model.
//!
//! Adding a page: a module here with its handlers and an askama template under
//! `templates/console/`; its rows in [`table`] with the [`Need`] of the API route it mirrors
//! (the `needs::*` constants); a [`NAV`] entry if it belongs in the navigation. Handlers take
//! [`guard::Ctx`] (only the permission layer provides it), build the frame with
//! [`guard::Ctx::layout`] and answer through [`render::render`]. Every POST is checked for the
//! session's CSRF token before the handler runs; forms carry it as `csrf` from `layout.who`.

pub mod assets;
pub mod audit;
// Cloud settings pages (wave 2, pages-cloud).
pub mod cloud;
pub mod csrf;
pub mod dashboard;
pub mod environment_variables;
pub mod guard;
pub mod headers;
pub mod llm_connections;
pub mod members;
pub mod provider_checks;
pub mod render;
pub mod secret_providers;
pub mod tokens;
// Settings pages (roles, automations, signing keys).
pub mod automations;
pub mod keys;
pub mod roles;
// Gateway pages (wave 2, issue 18).
pub mod approvals;
pub mod gateway;
pub mod sessions;
pub mod workload_identity;

use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use keyward_core::Need;

use crate::needs::{
    AUDIT_READ, AUTOMATION_ENV_MANAGE, AUTOMATION_ENV_READ, AUTOMATION_SETTINGS, AUTOMATION_VIEW,
    AUTOMATIONS_MANAGE, AUTOMATIONS_READ, ENV_MANAGE, ENV_READ, ENV_VAR_MANAGE, ENV_VAR_READ,
    GATEWAY_READ, INVITATIONS_MANAGE, LLM_ONE_MANAGE, LLM_ONE_READ, LLM_ONE_WRITE, LLM_READ,
    LLM_WRITE, MEMBERS_MANAGE, MEMBERS_READ, ROLES_MANAGE, RouteDecl, SECRETS_MANAGE, SECRETS_READ,
    SECRETS_WRITE, WI_MANAGE, WI_READ, WI_WRITE,
};
use crate::state::AppState;

/// The navigation: `(path, label, need)`; a link shows when the role meets the need.
pub const NAV: &[(&str, &str, Need)] = &[
    ("/console", "Overview", Need::Person),
    ("/console/members", "Members", MEMBERS_READ),
    ("/console/tokens", "Access tokens", Need::Person),
    ("/console/audit", "Audit log", AUDIT_READ),
    // Settings pages.
    ("/console/roles", "Roles", ROLES_MANAGE),
    ("/console/automations", "Automations", AUTOMATIONS_READ),
    ("/console/keys", "Signing keys", Need::Person),
    // Gateway pages.
    ("/console/gateway", "Gateway routes", GATEWAY_READ),
    ("/console/approvals", "Approvals", Need::Person),
    ("/console/sessions", "Sessions", GATEWAY_READ),
    // Cloud settings pages (pages-cloud).
    ("/console/workload-identity", "Workload identity", WI_READ),
    ("/console/llm-connections", "LLM connections", LLM_READ),
    (
        "/console/secret-providers",
        "Secret providers",
        SECRETS_READ,
    ),
    (
        "/console/environment-variables",
        "Environment variables",
        ENV_READ,
    ),
];

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

/// Every console route with the need it declares; `routes::app` mounts them behind
/// [`guard::authorize`].
pub fn table() -> Vec<(RouteDecl, MethodRouter<AppState>)> {
    table! {
        GET "/" => Need::Public, dashboard::root;
        GET "/console/assets/{file}" => Need::Public, assets::serve;
        GET "/console" => Need::Person, dashboard::page;
        POST "/console/org" => Need::Person, dashboard::switch_org;

        GET "/console/members" => MEMBERS_READ, members::page;
        POST "/console/members/invite" => INVITATIONS_MANAGE, members::invite;
        POST "/console/members/{user_id}/role" => ROLES_MANAGE, members::set_role;
        POST "/console/members/{user_id}/remove" => MEMBERS_MANAGE, members::remove;
        POST "/console/members/invitations/{id}/revoke" => INVITATIONS_MANAGE, members::revoke;

        GET "/console/tokens" => Need::Person, tokens::page;
        POST "/console/tokens" => Need::Person, tokens::create;
        POST "/console/tokens/{id}/revoke" => Need::Person, tokens::revoke;

        GET "/console/audit" => AUDIT_READ, audit::page;
        POST "/console/audit/verify" => AUDIT_READ, audit::verify;

        // Settings pages. Roles are edited under organization settings (the Member has none):
        // the page and every form take the roles API's `ROLES_MANAGE`.
        GET "/console/roles" => ROLES_MANAGE, roles::page;
        POST "/console/roles" => ROLES_MANAGE, roles::create;
        GET "/console/roles/{id}" => ROLES_MANAGE, roles::detail;
        POST "/console/roles/{id}" => ROLES_MANAGE, roles::save;
        POST "/console/roles/{id}/delete" => ROLES_MANAGE, roles::delete;
        POST "/console/roles/access/llm-connections/{id}" => LLM_ONE_MANAGE, roles::set_connection;
        POST "/console/roles/access/environment-variables/{id}" => ENV_VAR_MANAGE, roles::set_variable;
        GET "/console/automations" => AUTOMATIONS_READ, automations::page;
        POST "/console/automations" => AUTOMATIONS_MANAGE, automations::create;
        GET "/console/automations/{id}" => AUTOMATION_VIEW, automations::detail;
        POST "/console/automations/{id}/delete" => AUTOMATION_SETTINGS, automations::delete;
        POST "/console/automations/{id}/tokens" => AUTOMATION_SETTINGS, automations::create_token;
        POST "/console/automations/{id}/tokens/{token_id}/revoke" => AUTOMATION_SETTINGS, automations::revoke_token;
        POST "/console/automations/{id}/permissions" => AUTOMATION_SETTINGS, automations::set_permissions;
        // Signing keys are the server's, not an organization's, and show only what
        // /oauth2/jwks publishes (kids) with their dates: any signed-in person.
        GET "/console/keys" => Need::Person, keys::page;
        // Gateway pages: the needs of /api/v1/gateway/routes, /api/v1/approvals (any person;
        // the domain decides who sees and decides) and /api/v1/sessions.
        GET "/console/gateway" => GATEWAY_READ, gateway::page;
        GET "/console/approvals" => Need::Person, approvals::page;
        GET "/console/approvals/{id}" => Need::Person, approvals::show;
        POST "/console/approvals/{id}/approve" => Need::Person, approvals::approve;
        POST "/console/approvals/{id}/deny" => Need::Person, approvals::deny;
        POST "/console/approvals/{id}/revoke" => Need::Person, approvals::revoke;
        GET "/console/sessions" => GATEWAY_READ, sessions::page;
        GET "/console/sessions/{id}" => GATEWAY_READ, sessions::show;
        // Cloud settings pages (pages-cloud).
        GET "/console/workload-identity" => WI_READ, workload_identity::page;
        POST "/console/workload-identity" => WI_WRITE, workload_identity::create;
        GET "/console/workload-identity/{id}" => WI_READ, workload_identity::edit;
        POST "/console/workload-identity/{id}" => WI_WRITE, workload_identity::update;
        POST "/console/workload-identity/{id}/delete" => WI_MANAGE, workload_identity::delete;
        GET "/console/llm-connections" => LLM_READ, llm_connections::page;
        POST "/console/llm-connections" => LLM_WRITE, llm_connections::create;
        GET "/console/llm-connections/{id}" => LLM_ONE_READ, llm_connections::edit;
        POST "/console/llm-connections/{id}" => LLM_ONE_WRITE, llm_connections::update;
        POST "/console/llm-connections/{id}/delete" => LLM_ONE_MANAGE, llm_connections::delete;
        GET "/console/secret-providers" => SECRETS_READ, secret_providers::page;
        POST "/console/secret-providers" => SECRETS_WRITE, secret_providers::create;
        GET "/console/secret-providers/{id}" => SECRETS_READ, secret_providers::edit;
        POST "/console/secret-providers/{id}" => SECRETS_WRITE, secret_providers::update;
        POST "/console/secret-providers/{id}/delete" => SECRETS_MANAGE, secret_providers::delete;
        POST "/console/secret-providers/{id}/test" => SECRETS_WRITE, provider_checks::test;
        GET "/console/secret-providers/{id}/secrets" => SECRETS_READ, provider_checks::secrets;
        GET "/console/environment-variables" => ENV_READ, environment_variables::page;
        POST "/console/environment-variables" => ENV_MANAGE, environment_variables::create;
        GET "/console/environment-variables/{id}" => ENV_VAR_READ, environment_variables::edit;
        POST "/console/environment-variables/{id}" => ENV_VAR_MANAGE, environment_variables::update;
        POST "/console/environment-variables/{id}/delete" => ENV_VAR_MANAGE, environment_variables::delete;
        GET "/console/automations/{id}/environment-variables" => AUTOMATION_ENV_READ, environment_variables::assignment;
        POST "/console/automations/{id}/environment-variables" => AUTOMATION_ENV_MANAGE, environment_variables::set_assignment;
    }
}

/// The fields of an urlencoded form body.
pub fn form_fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}
