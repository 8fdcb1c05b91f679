//! `/console/workload-identity`: the organization's workload identity configs — listed with the
//! audience Keyward mints for each, created and edited through one form whose fields are the
//! chosen cloud's (GCP provider; Azure tenant and client; AWS role and region), and deleted —
//! through the same domain rules as `/api/v1/workload-identity-configs`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::api::v1::{CreateWorkloadIdentityConfig, UpdateWorkloadIdentityConfig};
use keyward_store::WiConfigRow;
use serde::Deserialize;

use super::cloud::{Choice, Fields, allows, choices, given, list, text, ticked};
use super::guard::Ctx;
use super::render::{Flash, Layout, error_page, render, see_other};
use crate::domain::automation_names;
use crate::domain::wi_configs::{
    CloudFields, create_wi_config, delete_wi_config, find_wi_config, identity_of, list_wi_configs,
    subject_mode, update_wi_config,
};
use crate::error::ApiError;
use crate::needs::{WI_MANAGE, WI_WRITE};
use crate::state::AppState;

const PATH: &str = "/console/workload-identity";
const CLOUDS: [(&str, &str); 3] = [
    ("gcp", "Google Cloud"),
    ("azure", "Microsoft Azure"),
    ("aws", "Amazon Web Services"),
];
const SUBJECTS: [(&str, &str); 2] = [
    ("organization", "Organization (sub = organization:<org>)"),
    (
        "automation",
        "Automation (sub = organization:<org>:automation:<id>)",
    ),
];

pub struct ConfigView {
    pub id: String,
    pub name: String,
    pub cloud: String,
    /// The cloud's fields, `(label, value)`.
    pub details: Vec<(&'static str, String)>,
    pub audience: String,
    pub default_for_cloud: bool,
    pub subject: String,
    pub automations: String,
}

/// The create or edit form, with what was typed (none of it is secret).
pub struct ConfigForm {
    pub action: String,
    pub editing: bool,
    pub name: String,
    pub clouds: Vec<Choice>,
    pub provider: String,
    pub tenant_id: String,
    pub client_id: String,
    pub role_arn: String,
    pub region: String,
    pub default_for_cloud: bool,
    pub subjects: Vec<Choice>,
    pub automations: String,
}

#[derive(Template)]
#[template(path = "console/workload_identity.html")]
pub struct ConfigsPage {
    pub layout: Layout,
    pub configs: Vec<ConfigView>,
    pub form: Option<ConfigForm>,
    pub may_delete: bool,
    pub csrf: String,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn view(
    row: &WiConfigRow,
    names: &std::collections::BTreeMap<keyward_core::AutomationId, String>,
) -> Result<ConfigView, ApiError> {
    let identity = identity_of(row)?;
    let f = CloudFields::of(&identity);
    let details = [
        ("Provider", f.provider),
        ("Tenant ID", f.tenant_id),
        ("Client ID", f.client_id),
        ("Role ARN", f.role_arn),
        ("Region", f.region),
    ]
    .into_iter()
    .filter_map(|(label, v)| v.map(|v| (label, v)))
    .collect();
    let automations: Vec<String> = row
        .automations
        .iter()
        .filter_map(|a| names.get(a).cloned())
        .collect();
    Ok(ConfigView {
        id: row.id.to_string(),
        name: row.name.clone(),
        cloud: row.cloud.clone(),
        details,
        audience: identity.audience().to_string(),
        default_for_cloud: row.default_for_cloud,
        subject: subject_mode(row)?.to_string(),
        automations: automations.join(", "),
    })
}

fn blank_form() -> ConfigForm {
    ConfigForm {
        action: PATH.to_owned(),
        editing: false,
        name: String::new(),
        clouds: choices(CLOUDS, "gcp"),
        provider: String::new(),
        tenant_id: String::new(),
        client_id: String::new(),
        role_arn: String::new(),
        region: String::new(),
        default_for_cloud: false,
        subjects: choices(SUBJECTS, "organization"),
        automations: String::new(),
    }
}

/// The form as posted, to show again with the refusal.
fn typed_form(fields: &Fields, action: String, editing: bool) -> ConfigForm {
    ConfigForm {
        action,
        editing,
        name: text(fields, "name"),
        clouds: choices(CLOUDS, &text(fields, "cloud")),
        provider: text(fields, "provider"),
        tenant_id: text(fields, "tenant_id"),
        client_id: text(fields, "client_id"),
        role_arn: text(fields, "role_arn"),
        region: text(fields, "region"),
        default_for_cloud: ticked(fields, "default_for_cloud"),
        subjects: choices(SUBJECTS, &text(fields, "subject")),
        automations: text(fields, "automations"),
    }
}

fn edit_form(v: &ConfigView) -> ConfigForm {
    let detail = |label: &str| {
        v.details
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    ConfigForm {
        action: format!("{PATH}/{}", v.id),
        editing: true,
        name: v.name.clone(),
        clouds: choices(CLOUDS, &v.cloud),
        provider: detail("Provider"),
        tenant_id: detail("Tenant ID"),
        client_id: detail("Client ID"),
        role_arn: detail("Role ARN"),
        region: detail("Region"),
        default_for_cloud: v.default_for_cloud,
        subjects: choices(SUBJECTS, &v.subject),
        automations: v.automations.clone(),
    }
}

/// Only the chosen cloud's fields go to the domain: the others stay hidden in the form.
fn cloud_fields(fields: &Fields, cloud: &str) -> CloudFields {
    let pick = |name: &str, owner: &str| (cloud == owner).then(|| given(fields, name)).flatten();
    CloudFields {
        provider: pick("provider", "gcp"),
        tenant_id: pick("tenant_id", "azure"),
        client_id: pick("client_id", "azure"),
        role_arn: pick("role_arn", "aws"),
        region: pick("region", "aws"),
    }
}

async fn configs_page(
    app: &AppState,
    ctx: &Ctx,
    flash: Option<Flash>,
    status: StatusCode,
    form: Option<ConfigForm>,
    editing: Option<&str>,
) -> Response {
    let title = if editing.is_some() {
        "Edit workload identity config"
    } else {
        "Workload identity"
    };
    let layout = ctx.layout(title, PATH).with_flash(flash);
    let shown = async {
        let org = ctx.caller.org()?.id;
        let names = automation_names(app, org).await?;
        let rows = list_wi_configs(app, &ctx.caller).await?;
        rows.iter()
            .map(|r| view(r, &names))
            .collect::<Result<Vec<_>, _>>()
    };
    let configs = match shown.await {
        Ok(c) => c,
        Err(e) => return error_page(Some(layout), e),
    };
    let form = match (form, editing) {
        (Some(f), _) => Some(f),
        (None, Some(id)) => match configs.iter().find(|c| c.id == id || c.name == id) {
            Some(c) => Some(edit_form(c)),
            None => {
                return error_page(
                    Some(layout),
                    ApiError::not_found("workload identity config"),
                );
            }
        },
        (None, None) => allows(ctx, WI_WRITE).then(blank_form),
    };
    render(
        status,
        &ConfigsPage {
            configs,
            form,
            may_delete: allows(ctx, WI_MANAGE),
            csrf: ctx.session.csrf.clone(),
            layout,
        },
    )
}

/// `GET /console/workload-identity`
pub async fn page(State(app): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Response {
    let flash = match q.done.as_deref() {
        Some("created") => Flash::ok("The workload identity config was created."),
        Some("saved") => Flash::ok("The workload identity config was saved."),
        Some("deleted") => Flash::ok("The workload identity config was deleted."),
        _ => None,
    };
    configs_page(&app, &ctx, flash, StatusCode::OK, None, None).await
}

/// `GET /console/workload-identity/{id}`: the edit form.
pub async fn edit(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    configs_page(&app, &ctx, None, StatusCode::OK, None, Some(&id)).await
}

async fn cloud_of(app: &AppState, ctx: &Ctx, id: &str) -> Result<String, ApiError> {
    let org = ctx.caller.org()?.id;
    Ok(find_wi_config(app, org, id).await?.cloud)
}

/// `POST /console/workload-identity`
pub async fn create(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let fields = super::form_fields(&body);
    let cloud = text(&fields, "cloud");
    let f = cloud_fields(&fields, &cloud);
    let request = CreateWorkloadIdentityConfig {
        name: text(&fields, "name"),
        cloud,
        provider: f.provider,
        tenant_id: f.tenant_id,
        client_id: f.client_id,
        role_arn: f.role_arn,
        region: f.region,
        default_for_cloud: Some(ticked(&fields, "default_for_cloud")),
        automations: Some(list(&fields, "automations")),
        subject: given(&fields, "subject"),
    };
    match create_wi_config(&app, &ctx.caller, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=created")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            let form = typed_form(&fields, PATH.to_owned(), false);
            configs_page(&app, &ctx, Flash::error(message), status, Some(form), None).await
        }
    }
}

/// `POST /console/workload-identity/{id}`
pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let cloud = match cloud_of(&app, &ctx, &id).await {
        Ok(cloud) => cloud,
        Err(e) => return error_page(Some(ctx.layout("Workload identity", PATH)), e),
    };
    let f = cloud_fields(&fields, &cloud);
    let request = UpdateWorkloadIdentityConfig {
        name: given(&fields, "name"),
        cloud: None,
        provider: f.provider,
        tenant_id: f.tenant_id,
        client_id: f.client_id,
        role_arn: f.role_arn,
        region: f.region,
        default_for_cloud: Some(ticked(&fields, "default_for_cloud")),
        automations: Some(list(&fields, "automations")),
        subject: given(&fields, "subject"),
    };
    match update_wi_config(&app, &ctx.caller, &id, request).await {
        Ok(_) => see_other(&format!("{PATH}?done=saved")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            let mut form = typed_form(&fields, format!("{PATH}/{id}"), true);
            form.clouds = choices(CLOUDS, &cloud);
            configs_page(
                &app,
                &ctx,
                Flash::error(message),
                status,
                Some(form),
                Some(&id),
            )
            .await
        }
    }
}

/// `POST /console/workload-identity/{id}/delete`
pub async fn delete(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match delete_wi_config(&app, &ctx.caller, &id).await {
        Ok(()) => see_other(&format!("{PATH}?done=deleted")),
        Err(e) => {
            let (status, message) = e.status_and_message();
            configs_page(&app, &ctx, Flash::error(message), status, None, None).await
        }
    }
}
