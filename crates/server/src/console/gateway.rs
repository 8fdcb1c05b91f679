//! `/console/gateway`: the organization's stored gateway routes and their policies, read only,
//! each checked again the way a gateway loads it (`GET /api/v1/gateway/routes` plus the
//! validation the domain runs before storing one).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::guard::Ctx;
use super::render::{Layout, error_page, render};
use crate::clock;
use crate::domain::gateway_routes::{check_stored, list_gateway_routes};
use crate::state::AppState;

pub struct PolicyView {
    pub id: String,
    pub approval: bool,
}

pub struct RouteView {
    pub id: String,
    pub name: String,
    pub host: String,
    pub path_prefix: String,
    pub upstream: String,
    pub no_match: String,
    pub approval: String,
    pub credential: String,
    pub masking: bool,
    pub updated: String,
    /// `None` when the route validates; else why a gateway would refuse it.
    pub invalid: Option<String>,
    pub policies: Vec<PolicyView>,
    /// The inline Cedar text, as stored (policies name no secret).
    pub policy_text: String,
}

#[derive(Template)]
#[template(path = "console/gateway.html")]
pub struct GatewayPage {
    pub layout: Layout,
    pub routes: Vec<RouteView>,
}

fn text(spec: &Value, key: &str) -> String {
    match spec.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

/// The upstream without user information (a URL may carry a password; it is never shown).
fn upstream(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// The credential's kind and the automation it is had through (references only: the spec
/// holds no secret value).
fn credential(spec: &keyward_policy::CredentialSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("none");
    match value.get("automation").and_then(Value::as_str) {
        Some(automation) => format!("{kind} (automation {automation})"),
        None => kind.to_owned(),
    }
}

fn view(row: keyward_store::GatewayRouteRow) -> RouteView {
    let checked = check_stored(&row);
    let policy_text = [text(&row.spec, "policy"), text(&row.spec, "policies")]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let mut v = RouteView {
        id: row.id.to_string(),
        name: row.name,
        host: text(&row.spec, "host"),
        path_prefix: text(&row.spec, "path_prefix"),
        upstream: String::new(),
        no_match: String::new(),
        approval: String::new(),
        credential: String::new(),
        masking: row.spec.get("mask").is_some_and(|m| !m.is_null()),
        updated: clock::rfc3339(row.updated_at),
        invalid: None,
        policies: Vec::new(),
        policy_text,
    };
    match checked {
        Ok(route) => {
            v.upstream = upstream(&route.upstream);
            v.no_match = format!("{:?}", route.no_match).to_lowercase();
            let wait = format!("{:?}", route.approval).to_lowercase();
            v.approval = format!(
                "{wait} (waits up to {} s)",
                route.approval_timeout.as_secs()
            );
            v.credential = credential(&route.credential);
            v.policies = route
                .policies
                .ids()
                .iter()
                .map(|id| PolicyView {
                    approval: route.policies.asks_approval(id),
                    id: id.clone(),
                })
                .collect();
        }
        Err(e) => v.invalid = Some(e),
    }
    v
}

/// `GET /console/gateway`
pub async fn page(State(app): State<AppState>, ctx: Ctx) -> Response {
    let layout = ctx.layout("Gateway routes", "/console/gateway");
    let rows = match list_gateway_routes(&app, &ctx.caller).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(layout), e),
    };
    render(
        StatusCode::OK,
        &GatewayPage {
            routes: rows.into_iter().map(view).collect(),
            layout,
        },
    )
}
