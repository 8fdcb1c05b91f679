//! `/console/environment-variables`: the organization's environment variables — listed with
//! secret values masked, created and edited (a blank value keeps the stored one), sourced from a
//! secret provider (credential + secret name, with autocomplete), deleted — and their assignment
//! to automations (`/console/automations/{id}/environment-variables`), all through the domain
//! rules of `/api/v1/environment-variables`.

use std::collections::{BTreeMap, HashSet};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::v1::{
    AssignEnvironmentVariables, CreateEnvironmentVariable, UpdateEnvironmentVariable,
};
use keyward_store::{AutomationRow, EnvVarRow};
use serde::Deserialize;

use super::cloud::{Choice, Fields, allows, choices, given, text, ticked};
use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::caller::Resolved;
use crate::domain::automations::list_automations;
use crate::domain::credential_names;
use crate::domain::env_vars::{
    assign, assigned_env_vars, create_env_var, delete_env_var, list_env_vars, update_env_var,
};
use crate::error::ApiError;
use crate::needs::{ENV_MANAGE, SECRETS_READ};
use crate::state::AppState;

const PATH: &str = "/console/environment-variables";
const SOURCES: [(&str, &str); 3] = [
    ("direct", "A value"),
    ("credential", "A secret, through a credential"),
    (
        "provider_default",
        "A secret, through the provider's default credential",
    ),
];
const PROVIDERS: [(&str, &str); 4] = [
    ("", "(with a provider default)"),
    ("aws_secrets_manager", "AWS Secrets Manager"),
    ("gcp_secret_manager", "Google Secret Manager"),
    ("azure_key_vault", "Azure Key Vault"),
];

pub struct VarView {
    pub id: String,
    pub key: String,
    pub source: String,
    /// What the list shows for the value: the value of a plain variable, "•••• set" for a
    /// secret one, where a secret-backed one comes from.
    pub shown: String,
    pub secret: bool,
}

pub struct VarForm {
    pub action: String,
    pub editing: bool,
    pub key: String,
    pub sources: Vec<Choice>,
    pub secret: bool,
    pub has_value: bool,
    pub credentials: Vec<Choice>,
    pub providers: Vec<Choice>,
    pub secret_name: String,
}

#[derive(Template)]
#[template(path = "console/environment_variables.html")]
pub struct VarsPage {
    pub layout: Layout,
    pub vars: Vec<VarView>,
    pub automations: Vec<(String, String)>,
    pub form: Option<VarForm>,
    pub may_manage: bool,
    pub may_autocomplete: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/env_assignment.html")]
pub struct AssignPage {
    pub layout: Layout,
    pub automation: String,
    pub action: String,
    /// `(id, key, assigned)`.
    pub vars: Vec<(String, String, bool)>,
    pub csrf: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn view(
    row: &EnvVarRow,
    credentials: &BTreeMap<keyward_core::SecretProviderId, String>,
) -> VarView {
    let secret_name = row.secret_name.clone().unwrap_or_default();
    let shown = match row.source.as_str() {
        "credential" => format!(
            "secret {secret_name} via {}",
            row.credential_id
                .and_then(|c| credentials.get(&c).cloned())
                .unwrap_or_default()
        ),
        "provider_default" => format!(
            "secret {secret_name} via the default {} credential",
            row.provider.clone().unwrap_or_default()
        ),
        _ => match (&row.value, &row.sealed_value) {
            (Some(v), _) => v.clone(),
            (None, Some(_)) => "•••• set".to_owned(),
            (None, None) => String::new(),
        },
    };
    VarView {
        id: row.id.to_string(),
        key: row.key.clone(),
        source: row.source.clone(),
        shown,
        secret: row.secret,
    }
}

struct Loaded {
    rows: Vec<EnvVarRow>,
    vars: Vec<VarView>,
    credentials: Vec<(String, String)>,
    automations: Vec<(String, String)>,
}

async fn load(app: &AppState, ctx: &Ctx) -> Result<Loaded, ApiError> {
    let org = ctx.caller.org()?.id;
    let names = credential_names(app, org).await?;
    let rows = list_env_vars(app, &ctx.caller).await?;
    let automations = list_automations(app, &ctx.caller)
        .await?
        .into_iter()
        .map(|a| (a.id.to_string(), a.name))
        .collect();
    Ok(Loaded {
        vars: rows.iter().map(|r| view(r, &names)).collect(),
        rows,
        credentials: names
            .into_iter()
            .map(|(id, n)| (id.to_string(), n))
            .collect(),
        automations,
    })
}

fn credential_choices(all: &[(String, String)], current: &str) -> Vec<Choice> {
    let mut items = vec![("", "(none)")];
    items.extend(all.iter().map(|(id, n)| (id.as_str(), n.as_str())));
    choices(items, current)
}

fn typed_form(fields: &Fields, action: String, editing: bool, l: &Loaded) -> VarForm {
    VarForm {
        action,
        editing,
        key: text(fields, "key"),
        sources: choices(SOURCES, &text(fields, "source")),
        secret: ticked(fields, "secret"),
        has_value: editing,
        credentials: credential_choices(&l.credentials, &text(fields, "credential")),
        providers: choices(PROVIDERS, &text(fields, "provider")),
        secret_name: text(fields, "secret_name"),
    }
}

fn edit_form(row: &EnvVarRow, l: &Loaded) -> VarForm {
    VarForm {
        action: format!("{PATH}/{}", row.id),
        editing: true,
        key: row.key.clone(),
        sources: choices(SOURCES, &row.source),
        secret: row.secret,
        has_value: row.value.is_some() || row.sealed_value.is_some(),
        credentials: credential_choices(
            &l.credentials,
            &row.credential_id.map(|c| c.to_string()).unwrap_or_default(),
        ),
        providers: choices(PROVIDERS, row.provider.as_deref().unwrap_or("")),
        secret_name: row.secret_name.clone().unwrap_or_default(),
    }
}

async fn vars_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
    form: impl FnOnce(&Loaded) -> Option<VarForm>,
) -> Response {
    let layout = ctx.layout("Environment variables", PATH).with_flash(flash);
    let loaded = match load(app, ctx).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(layout), e),
    };
    let form = form(&loaded);
    render(
        status,
        &VarsPage {
            form,
            vars: loaded.vars,
            automations: loaded.automations,
            may_manage: allows(ctx, ENV_MANAGE),
            may_autocomplete: allows(ctx, SECRETS_READ),
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/environment-variables`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("created") => Flash::ok("The variable was created."),
        Some("saved") => Flash::ok("The variable was saved."),
        Some("deleted") => Flash::ok("The variable was deleted."),
        Some("assigned") => Flash::ok("The automation's variables were saved."),
        _ => None,
    };
    let may = allows(&ctx, ENV_MANAGE);
    vars_page(&app, &ctx, flash, StatusCode::OK, |l| {
        may.then(|| typed_form(&Fields::new(), PATH.to_owned(), false, l))
    })
    .await
}

/// `GET /console/environment-variables/{id}`
pub async fn edit(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(row): Resolved<EnvVarRow>,
) -> Response {
    vars_page(&app, &ctx, None, StatusCode::OK, |l| {
        Some(edit_form(&row, l))
    })
    .await
}

/// `(provider, credential, secret_name)` as the chosen source takes them.
fn source_fields(
    fields: &Fields,
    source: &str,
) -> (Option<String>, Option<String>, Option<String>) {
    match source {
        "credential" => (
            None,
            given(fields, "credential"),
            Some(text(fields, "secret_name")),
        ),
        "provider_default" => (
            given(fields, "provider"),
            None,
            Some(text(fields, "secret_name")),
        ),
        _ => (None, None, None),
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
    vars_page(app, ctx, Flash::error(message), status, |l| {
        Some(typed_form(fields, action, editing, l))
    })
    .await
}

/// `POST /console/environment-variables`
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let source = text(&fields, "source");
    let direct = source == "direct";
    let (provider, credential, secret_name) = source_fields(&fields, &source);
    let request = CreateEnvironmentVariable {
        key: text(&fields, "key"),
        value: direct
            .then(|| fields.get("value").cloned())
            .flatten()
            .filter(|v| !v.is_empty()),
        source: Some(source),
        provider,
        credential,
        secret_name,
        secret: direct.then(|| ticked(&fields, "secret")),
    };
    match create_env_var(&app, &ctx.caller, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=created")),
        Err(e) => refused(&app, &ctx, &fields, e, PATH.to_owned(), false).await,
    }
}

/// `POST /console/environment-variables/{id}`: a blank value keeps the stored one.
pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(row): Resolved<EnvVarRow>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let action = format!("{PATH}/{}", row.id);
    let source = text(&fields, "source");
    let direct = source == "direct";
    let (provider, credential, secret_name) = source_fields(&fields, &source);
    let request = UpdateEnvironmentVariable {
        key: given(&fields, "key"),
        value: direct.then(|| fields.get("value").cloned().unwrap_or_default()),
        source: Some(source),
        provider,
        credential,
        secret_name,
        secret: direct.then(|| ticked(&fields, "secret")),
    };
    match update_env_var(&app, &ctx.caller, row, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=saved")),
        Err(e) => refused(&app, &ctx, &fields, e, action, true).await,
    }
}

/// `POST /console/environment-variables/{id}/delete`
pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(row): Resolved<EnvVarRow>,
) -> Response {
    match delete_env_var(&app, &ctx.caller, &row).await {
        Ok(()) => see_other(&format!("{PATH}?done=deleted")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            vars_page(&app, &ctx, Flash::error(message), status, |_| None).await
        }
    }
}

async fn assign_page(
    app: &AppState,
    ctx: &Ctx,
    automation: &AutomationRow,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let layout = ctx
        .layout("Assign environment variables", PATH)
        .with_flash(flash);
    let shown = async {
        let assigned: HashSet<_> = assigned_env_vars(app, &ctx.caller, automation)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let all = load(app, ctx).await?;
        Ok::<_, ApiError>(
            all.rows
                .iter()
                .map(|r| (r.id.to_string(), r.key.clone(), assigned.contains(&r.id)))
                .collect::<Vec<_>>(),
        )
    };
    match shown.await {
        Ok(vars) => render(
            status,
            &AssignPage {
                automation: automation.name.clone(),
                action: format!(
                    "/console/automations/{}/environment-variables",
                    automation.id
                ),
                vars,
                csrf: ctx.session.csrf.clone(),
                layout,
            },
        ),
        Err(e) => error_page(Some(layout), e),
    }
}

/// `GET /console/automations/{id}/environment-variables`
pub async fn assignment(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
) -> Response {
    assign_page(&app, &ctx, &automation, None, StatusCode::OK).await
}

/// `POST /console/automations/{id}/environment-variables`: the ticked `var_<id>` boxes replace
/// the assignment.
pub async fn set_assignment(
    State(app): State<AppState>,
    ctx: Ctx,
    Resolved(automation): Resolved<AutomationRow>,
    body: Bytes,
) -> Response {
    let chosen = super::form_fields(&body)
        .into_keys()
        .filter_map(|k| k.strip_prefix("var_").map(str::to_owned))
        .collect();
    let request = AssignEnvironmentVariables {
        environment_variables: chosen,
    };
    match assign(&app, &ctx.caller, &automation, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=assigned")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            assign_page(&app, &ctx, &automation, Flash::error(message), status).await
        }
    }
}
