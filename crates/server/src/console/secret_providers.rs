//! `/console/secret-providers`: secret provider credentials — workload identity or static —
//! listed, created, edited and deleted through the domain rules of `/api/v1/secret-providers`.
//! Static credential fields are write-only: the page says "•••• set", never a value, and a blank
//! field on edit keeps what is stored. Test Connection and autocomplete are in
//! the `provider_checks` module.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::v1::{CreateSecretProvider, UpdateSecretProvider};
use keyward_core::secrets::ProviderKind;
use keyward_store::SecretProviderRow;
use serde::Deserialize;

use super::cloud::{Choice, Fields, allows, choices, given, text, ticked};
use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::domain::config_names;
use crate::domain::secret_providers::{
    create_secret_provider, delete_secret_provider, list_secret_providers, setting,
    update_secret_provider,
};
use crate::error::ApiError;
use crate::needs::{SECRETS_MANAGE, SECRETS_WRITE};
use crate::state::AppState;

/// One step of a Test Connection, as the page shows it (filled by `provider_checks`).
pub struct StepView {
    pub step: String,
    pub ok: bool,
    pub detail: String,
    pub code: String,
    pub cause: String,
    pub fix: String,
}

/// A Test Connection's result on the provider's page.
pub struct TestView {
    pub credential: String,
    pub ok: bool,
    pub steps: Vec<StepView>,
    pub note: &'static str,
    pub hint: Option<String>,
}

pub const PATH: &str = "/console/secret-providers";
const PROVIDERS: [(&str, &str); 3] = [
    ("aws_secrets_manager", "AWS Secrets Manager"),
    ("gcp_secret_manager", "Google Secret Manager"),
    ("azure_key_vault", "Azure Key Vault"),
];
const AUTH: [(&str, &str); 2] = [
    ("workload_identity", "Workload Identity"),
    ("static", "Static credentials"),
];
/// Every static field a form may carry (as `static_<field>`), by provider.
const STATIC_FIELDS: [(&str, &str, &str); 8] = [
    ("aws_secrets_manager", "access_key_id", "Access key ID"),
    (
        "aws_secrets_manager",
        "secret_access_key",
        "Secret access key",
    ),
    (
        "aws_secrets_manager",
        "role_arn",
        "Role ARN to assume (optional)",
    ),
    (
        "aws_secrets_manager",
        "external_id",
        "External ID (optional)",
    ),
    (
        "gcp_secret_manager",
        "service_account_json",
        "Service account key (JSON)",
    ),
    ("azure_key_vault", "tenant_id", "Tenant ID"),
    ("azure_key_vault", "client_id", "Client ID"),
    ("azure_key_vault", "client_secret", "Client secret"),
];

pub struct ProviderView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub auth: String,
    pub config: String,
    pub settings: Vec<(&'static str, String)>,
    pub static_configured: bool,
    pub default_for_provider: bool,
}

/// One write-only static field of the form.
pub struct StaticInput {
    pub provider: &'static str,
    pub field: &'static str,
    pub label: &'static str,
    pub multiline: bool,
}

pub struct ProviderForm {
    pub action: String,
    pub editing: bool,
    pub id: String,
    pub name: String,
    pub providers: Vec<Choice>,
    pub auth: Vec<Choice>,
    pub configs: Vec<Choice>,
    pub region: String,
    pub project: String,
    pub vault_url: String,
    pub default_for_provider: bool,
    pub static_configured: bool,
    pub statics: Vec<StaticInput>,
}

#[derive(Template)]
#[template(path = "console/secret_providers.html")]
pub struct ProvidersPage {
    pub layout: Layout,
    pub providers: Vec<ProviderView>,
    pub form: Option<ProviderForm>,
    pub test: Option<TestView>,
    pub may_write: bool,
    pub may_delete: bool,
    pub csrf: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn view(
    row: &SecretProviderRow,
    configs: &BTreeMap<keyward_core::WorkloadIdentityConfigId, String>,
) -> ProviderView {
    ProviderView {
        id: row.id.to_string(),
        name: row.name.clone(),
        provider: row.provider.clone(),
        auth: row.auth.clone(),
        config: row
            .wi_config_id
            .and_then(|c| configs.get(&c).cloned())
            .unwrap_or_default(),
        settings: [
            ("Region", "region"),
            ("Project", "project"),
            ("Vault URL", "vault_url"),
        ]
        .into_iter()
        .filter_map(|(label, key)| setting(row, key).map(|v| (label, v)))
        .collect(),
        static_configured: row.sealed_static.is_some(),
        default_for_provider: row.default_for_provider,
    }
}

fn statics(only: Option<&str>) -> Vec<StaticInput> {
    STATIC_FIELDS
        .iter()
        .filter(|(p, _, _)| only.is_none_or(|o| o == *p))
        .map(|(provider, field, label)| StaticInput {
            provider,
            field,
            label,
            multiline: *field == "service_account_json",
        })
        .collect()
}

fn config_choices(names: &[String], current: &str) -> Vec<Choice> {
    let mut all = vec![("", "(none)")];
    all.extend(names.iter().map(|n| (n.as_str(), n.as_str())));
    choices(all, current)
}

/// The form as posted (static values are never shown again).
fn typed_form(
    fields: &Fields,
    action: String,
    editing: Option<&ProviderView>,
    configs: &[String],
) -> ProviderForm {
    let provider = editing.map_or_else(|| text(fields, "provider"), |v| v.provider.clone());
    ProviderForm {
        action,
        editing: editing.is_some(),
        id: editing.map(|v| v.id.clone()).unwrap_or_default(),
        name: text(fields, "name"),
        providers: choices(PROVIDERS, &provider),
        auth: choices(AUTH, &text(fields, "auth")),
        configs: config_choices(configs, &text(fields, "workload_identity_config")),
        region: text(fields, "region"),
        project: text(fields, "project"),
        vault_url: text(fields, "vault_url"),
        default_for_provider: ticked(fields, "default_for_provider"),
        static_configured: editing.is_some_and(|v| v.static_configured),
        statics: statics(editing.map(|v| v.provider.as_str())),
    }
}

pub(crate) fn edit_form(v: &ProviderView, configs: &[String]) -> ProviderForm {
    let setting = |label: &str| {
        v.settings
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    ProviderForm {
        action: format!("{PATH}/{}", v.id),
        editing: true,
        id: v.id.clone(),
        name: v.name.clone(),
        providers: choices(PROVIDERS, &v.provider),
        auth: choices(AUTH, &v.auth),
        configs: config_choices(configs, &v.config),
        region: setting("Region"),
        project: setting("Project"),
        vault_url: setting("Vault URL"),
        default_for_provider: v.default_for_provider,
        static_configured: v.static_configured,
        statics: statics(Some(v.provider.as_str())),
    }
}

pub(crate) struct Loaded {
    pub views: Vec<ProviderView>,
    pub config_names: Vec<String>,
}

pub(crate) async fn load(app: &AppState, ctx: &Ctx) -> Result<Loaded, ApiError> {
    let configs = config_names(app, ctx.caller.org()?.id).await?;
    let rows = list_secret_providers(app, &ctx.caller).await?;
    Ok(Loaded {
        views: rows.iter().map(|r| view(r, &configs)).collect(),
        config_names: configs.into_values().collect(),
    })
}

/// The page: the list, and the form `form` builds from what was loaded.
pub(crate) async fn providers_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
    test: Option<TestView>,
    form: impl FnOnce(&Loaded) -> Option<ProviderForm>,
) -> Response {
    let layout = ctx.layout("Secret providers", PATH).with_flash(flash);
    let loaded = match load(app, ctx).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(layout), e),
    };
    let form = form(&loaded);
    render(
        status,
        &ProvidersPage {
            form,
            test,
            providers: loaded.views,
            may_write: allows(ctx, SECRETS_WRITE),
            may_delete: allows(ctx, SECRETS_MANAGE),
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/secret-providers`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("created") => Flash::ok("The credential was created."),
        Some("saved") => Flash::ok("The credential was saved."),
        Some("deleted") => Flash::ok("The credential was deleted."),
        _ => None,
    };
    let may_write = allows(&ctx, SECRETS_WRITE);
    providers_page(&app, &ctx, flash, StatusCode::OK, None, |l| {
        may_write.then(|| ProviderForm {
            action: PATH.to_owned(),
            editing: false,
            id: String::new(),
            name: String::new(),
            providers: choices(PROVIDERS, "aws_secrets_manager"),
            auth: choices(AUTH, "workload_identity"),
            configs: config_choices(&l.config_names, ""),
            region: String::new(),
            project: String::new(),
            vault_url: String::new(),
            default_for_provider: false,
            static_configured: false,
            statics: statics(None),
        })
    })
    .await
}

/// The edit form of credential `id` (UUID or name) from what was loaded.
pub(crate) fn form_for(l: &Loaded, id: &str) -> Option<ProviderForm> {
    l.views
        .iter()
        .find(|v| v.id == id || v.name == id)
        .map(|v| edit_form(v, &l.config_names))
}

/// `GET /console/secret-providers/{id}`: the edit form and the Test Connection button.
pub async fn edit(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let mut missing = false;
    let response = providers_page(&app, &ctx, None, StatusCode::OK, None, |l| {
        let form = form_for(l, &id);
        missing = form.is_none();
        form
    })
    .await;
    if missing {
        return error_page(
            Some(ctx.layout("Secret providers", PATH)),
            ApiError::not_found("secret provider credential"),
        );
    }
    response
}

/// The static fields posted for `provider`; blank ones are left out on create and sent blank
/// (keep the stored value) on edit.
fn static_given(
    fields: &Fields,
    provider: &str,
    keep_blank: bool,
) -> Option<BTreeMap<String, String>> {
    let known = ProviderKind::parse(provider).ok()?.static_fields();
    let map: BTreeMap<String, String> = known
        .iter()
        .map(|(field, _)| (field.to_string(), text(fields, &format!("static_{field}"))))
        .filter(|(_, v)| keep_blank || !v.is_empty())
        .collect();
    (!map.is_empty()).then_some(map)
}

async fn refused(
    app: &AppState,
    ctx: &Ctx,
    fields: &Fields,
    e: ApiError,
    editing: Option<&str>,
) -> Response {
    let (status, message) = e.status_and_message();
    providers_page(app, ctx, Flash::error(message), status, None, |l| {
        let current = editing.and_then(|id| l.views.iter().find(|v| v.id == id || v.name == id));
        let action = current.map_or_else(|| PATH.to_owned(), |v| format!("{PATH}/{}", v.id));
        Some(typed_form(fields, action, current, &l.config_names))
    })
    .await
}

/// `POST /console/secret-providers`
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let provider = text(&fields, "provider");
    let auth = text(&fields, "auth");
    let request = CreateSecretProvider {
        name: text(&fields, "name"),
        workload_identity_config: (auth == "workload_identity")
            .then(|| given(&fields, "workload_identity_config"))
            .flatten(),
        static_credentials: (auth == "static")
            .then(|| static_given(&fields, &provider, false))
            .flatten(),
        provider,
        auth,
        region: given(&fields, "region"),
        project: given(&fields, "project"),
        vault_url: given(&fields, "vault_url"),
        default_for_provider: Some(ticked(&fields, "default_for_provider")),
    };
    match create_secret_provider(&app, &ctx.caller, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=created")),
        Err(e) => refused(&app, &ctx, &fields, e, None).await,
    }
}

/// `POST /console/secret-providers/{id}`
pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let auth = text(&fields, "auth");
    let provider = match load(&app, &ctx).await.map(|l| {
        l.views
            .into_iter()
            .find(|v| v.id == id || v.name == id)
            .map(|v| v.provider)
    }) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return error_page(
                Some(ctx.layout("Secret providers", PATH)),
                ApiError::not_found("secret provider credential"),
            );
        }
        Err(e) => return error_page(Some(ctx.layout("Secret providers", PATH)), e),
    };
    let request = UpdateSecretProvider {
        name: given(&fields, "name"),
        provider: None,
        workload_identity_config: (auth == "workload_identity")
            .then(|| text(&fields, "workload_identity_config")),
        static_credentials: (auth == "static")
            .then(|| static_given(&fields, &provider, true))
            .flatten(),
        auth: Some(auth),
        region: Some(text(&fields, "region")),
        project: Some(text(&fields, "project")),
        vault_url: Some(text(&fields, "vault_url")),
        default_for_provider: Some(ticked(&fields, "default_for_provider")),
    };
    match update_secret_provider(&app, &ctx.caller, &id, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=saved")),
        Err(e) => refused(&app, &ctx, &fields, e, Some(&id)).await,
    }
}

/// `POST /console/secret-providers/{id}/delete`
pub async fn delete(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match delete_secret_provider(&app, &ctx.caller, &id).await {
        Ok(()) => see_other(&format!("{PATH}?done=deleted")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            providers_page(&app, &ctx, Flash::error(message), status, None, |_| None).await
        }
    }
}
