//! `/console/llm-connections`: LLM connections — listed, created, edited and deleted through the
//! domain rules of `/api/v1/llm-connections` (the `google/` model rule and the provider/cloud
//! match are the API's, and their refusals are shown as the API words them). Authentication is
//! an API key in the connection's environment, or `Workload Identity` through a config.
//!
//! Connection env values are never written into a page: the edit form lists the keys, and a key
//! left as `KEY=` keeps its stored value. The API has no Test Connection for LLM connections,
//! so neither does this page.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::v1::{CreateLlmConnection, UpdateLlmConnection};
use keyward_core::workload::LLM_PROVIDERS;
use keyward_store::LlmConnectionRow;
use serde::Deserialize;

use super::cloud::{Choice, Fields, allows, choices, given, list, text};
use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::caller::Resolved;
use crate::domain::llm_connections::{
    create_llm_connection, delete_llm_connection, env_of, list_llm_connections,
    update_llm_connection,
};
use crate::domain::wi_configs::list_wi_configs;
use crate::domain::{automation_names, config_names};
use crate::error::ApiError;
use crate::needs::{LLM_ONE_MANAGE, LLM_WRITE};
use crate::state::AppState;

const PATH: &str = "/console/llm-connections";
const AUTH: [(&str, &str); 2] = [
    ("api_key", "API key (environment variables)"),
    ("workload_identity", "Workload Identity"),
];

pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub auth: &'static str,
    pub config: String,
    pub service_account_email: String,
    pub model: String,
    /// Keys only: values stay on the server.
    pub env_keys: String,
    pub automations: String,
}

pub struct ConnectionForm {
    pub action: String,
    pub editing: bool,
    pub name: String,
    pub providers: Vec<Choice>,
    pub auth: Vec<Choice>,
    pub configs: Vec<Choice>,
    pub service_account_email: String,
    pub model: String,
    /// `KEY=` lines (edit) or what was typed, without values already stored.
    pub env: String,
    pub automations: String,
}

#[derive(Template)]
#[template(path = "console/llm_connections.html")]
pub struct ConnectionsPage {
    pub layout: Layout,
    pub connections: Vec<ConnectionView>,
    pub form: Option<ConnectionForm>,
    pub may_delete: bool,
    pub csrf: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `KEY=value` lines; a `KEY=` line keeps what `stored` has for the key.
fn parse_env(
    typed: &str,
    stored: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut env = BTreeMap::new();
    for line in typed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(ApiError::invalid(
                "env",
                format!("the environment line {line:?} has no '=': write one KEY=value per line"),
            ));
        };
        let key = key.trim().to_owned();
        let value = match (value.is_empty(), stored.get(&key)) {
            (true, Some(kept)) => kept.clone(),
            _ => value.to_owned(),
        };
        env.insert(key, value);
    }
    Ok(env)
}

/// The env as the form shows it: keys only.
fn env_keys_only(typed: &str) -> String {
    typed
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| format!("{}=", k.trim())))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Loaded {
    views: Vec<ConnectionView>,
    config_names: Vec<String>,
}

async fn load(app: &AppState, ctx: &Ctx) -> Result<Loaded, ApiError> {
    let org = ctx.caller.org()?.id;
    let configs = config_names(app, org).await?;
    let automations = automation_names(app, org).await?;
    let rows = list_llm_connections(app, &ctx.caller).await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        let env = env_of(row)?;
        let names: Vec<String> = row
            .automations
            .iter()
            .filter_map(|a| automations.get(a).cloned())
            .collect();
        views.push(ConnectionView {
            id: row.id.to_string(),
            name: row.name.clone(),
            provider: row.provider.clone(),
            auth: if row.wi_config_id.is_some() {
                "Workload Identity"
            } else {
                "API key"
            },
            config: row
                .wi_config_id
                .and_then(|c| configs.get(&c).cloned())
                .unwrap_or_default(),
            service_account_email: row.service_account_email.clone().unwrap_or_default(),
            model: row.model.clone().unwrap_or_default(),
            env_keys: env.keys().cloned().collect::<Vec<_>>().join(", "),
            automations: names.join(", "),
        });
    }
    let config_names = list_wi_configs(app, &ctx.caller)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Ok(Loaded {
        views,
        config_names,
    })
}

fn config_choices(names: &[String], current: &str) -> Vec<Choice> {
    let mut all = vec![("", "(none)")];
    all.extend(names.iter().map(|n| (n.as_str(), n.as_str())));
    choices(all, current)
}

fn provider_choices(current: &str) -> Vec<Choice> {
    choices(LLM_PROVIDERS.iter().map(|p| (*p, *p)), current)
}

fn typed_form(
    fields: &Fields,
    action: String,
    editing: bool,
    configs: &[String],
) -> ConnectionForm {
    ConnectionForm {
        action,
        editing,
        name: text(fields, "name"),
        providers: provider_choices(&text(fields, "provider")),
        auth: choices(AUTH, &text(fields, "auth")),
        configs: config_choices(configs, &text(fields, "workload_identity_config")),
        service_account_email: text(fields, "service_account_email"),
        model: text(fields, "model"),
        env: env_keys_only(&text(fields, "env")),
        automations: text(fields, "automations"),
    }
}

async fn connections_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
    form: impl FnOnce(&Loaded) -> Option<ConnectionForm>,
) -> Response {
    let layout = ctx.layout("LLM connections", PATH).with_flash(flash);
    let loaded = match load(app, ctx).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(layout), e),
    };
    let form = form(&loaded);
    render(
        status,
        &ConnectionsPage {
            form,
            connections: loaded.views,
            may_delete: allows(ctx, LLM_ONE_MANAGE),
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/llm-connections`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("created") => Flash::ok("The LLM connection was created."),
        Some("saved") => Flash::ok("The LLM connection was saved."),
        Some("deleted") => Flash::ok("The LLM connection was deleted."),
        _ => None,
    };
    let may_create = allows(&ctx, LLM_WRITE);
    connections_page(&app, &ctx, flash, StatusCode::OK, |l| {
        may_create.then(|| ConnectionForm {
            action: PATH.to_owned(),
            editing: false,
            name: String::new(),
            providers: provider_choices("vertex"),
            auth: choices(AUTH, "workload_identity"),
            configs: config_choices(&l.config_names, ""),
            service_account_email: String::new(),
            model: String::new(),
            env: String::new(),
            automations: String::new(),
        })
    })
    .await
}

/// `GET /console/llm-connections/{id}`: the edit form.
pub async fn edit(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(row): Resolved<LlmConnectionRow>,
) -> Response {
    let id = row.id.to_string();
    connections_page(&app, &ctx, None, StatusCode::OK, |l| {
        let v = l.views.iter().find(|v| v.id == id)?;
        Some(ConnectionForm {
            action: format!("{PATH}/{id}"),
            editing: true,
            name: v.name.clone(),
            providers: provider_choices(&v.provider),
            auth: choices(
                AUTH,
                if v.config.is_empty() {
                    "api_key"
                } else {
                    "workload_identity"
                },
            ),
            configs: config_choices(&l.config_names, &v.config),
            service_account_email: v.service_account_email.clone(),
            model: v.model.clone(),
            env: v
                .env_keys
                .split(", ")
                .filter(|k| !k.is_empty())
                .map(|k| format!("{k}="))
                .collect::<Vec<_>>()
                .join("\n"),
            automations: v.automations.clone(),
        })
    })
    .await
}

/// The config a form names: none unless the authentication is workload identity.
fn chosen_config(fields: &Fields) -> String {
    if text(fields, "auth") == "workload_identity" {
        text(fields, "workload_identity_config")
    } else {
        String::new()
    }
}

async fn refused(
    app: &AppState,
    ctx: &Ctx,
    fields: &Fields,
    e: ApiError,
    action: String,
    editing: bool,
) -> Response {
    let (status, message) = e.status_and_message();
    connections_page(app, ctx, Flash::error(message), status, |l| {
        Some(typed_form(fields, action, editing, &l.config_names))
    })
    .await
}

/// `POST /console/llm-connections`
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let request =
        parse_env(&text(&fields, "env"), &BTreeMap::new()).map(|env| CreateLlmConnection {
            name: text(&fields, "name"),
            provider: text(&fields, "provider"),
            workload_identity_config: Some(chosen_config(&fields)).filter(|c| !c.is_empty()),
            service_account_email: given(&fields, "service_account_email"),
            model: given(&fields, "model"),
            env: Some(env),
            automations: Some(list(&fields, "automations")),
        });
    let outcome = match request {
        Ok(r) => create_llm_connection(&app, &ctx.caller, r)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => see_other(&format!("{PATH}?done=created")),
        Err(e) => refused(&app, &ctx, &fields, e, PATH.to_owned(), false).await,
    }
}

/// `POST /console/llm-connections/{id}`
pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(row): Resolved<LlmConnectionRow>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let action = format!("{PATH}/{}", row.id);
    let request = env_of(&row)
        .and_then(|stored| parse_env(&text(&fields, "env"), &stored))
        .map(|env| UpdateLlmConnection {
            name: given(&fields, "name"),
            provider: given(&fields, "provider"),
            workload_identity_config: Some(chosen_config(&fields)),
            service_account_email: Some(text(&fields, "service_account_email")),
            model: Some(text(&fields, "model")),
            env: Some(env),
            automations: Some(list(&fields, "automations")),
        });
    let outcome = match request {
        Ok(r) => update_llm_connection(&app, &ctx.caller, row, r)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => see_other(&format!("{PATH}?done=saved")),
        Err(e) => refused(&app, &ctx, &fields, e, action, true).await,
    }
}

/// `POST /console/llm-connections/{id}/delete`
pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(row): Resolved<LlmConnectionRow>,
) -> Response {
    match delete_llm_connection(&app, &ctx.caller, &row).await {
        Ok(()) => see_other(&format!("{PATH}?done=deleted")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            connections_page(&app, &ctx, Flash::error(message), status, |_| None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_env_value_keeps_the_stored_one_and_lines_need_an_equals_sign() {
        let stored: BTreeMap<String, String> =
            [("A".to_owned(), "kept".to_owned())].into_iter().collect();
        let env = parse_env("A=\nB=new\n\n", &stored).unwrap();
        assert_eq!(env["A"], "kept");
        assert_eq!(env["B"], "new");
        assert!(parse_env("NOPE", &stored).is_err());
        assert_eq!(env_keys_only("A=secret\nB=x"), "A=\nB=");
    }
}
