//! Workload identity configs (SPEC §4): the cloud side of one federated identity, validated so a
//! setup no cloud would accept is refused with the reason.

use keyward_core::api::v1::{CreateWorkloadIdentityConfig, UpdateWorkloadIdentityConfig};
use keyward_core::subject::SubjectMode;
use keyward_core::workload::{CloudKind, WorkloadError, WorkloadIdentity};
use keyward_core::{AutomationId, OrgId, WorkloadIdentityConfigId, names};
use keyward_store::{StoreError, WiConfigRow};
use serde_json::{Value, json};

use super::automations::automation_ids;
use super::{Taken, by_id_or_name, taken, unknown_reference};
use crate::audit::kind;
use crate::caller::Caller;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

fn invalid(e: WorkloadError) -> ApiError {
    ApiError::invalid(e.field(), e.to_string())
}

/// The cloud fields of a request, before they are known to fit together.
#[derive(Default)]
pub(crate) struct CloudFields {
    pub provider: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub role_arn: Option<String>,
    pub region: Option<String>,
}

impl CloudFields {
    pub(crate) fn of(identity: &WorkloadIdentity) -> CloudFields {
        match identity {
            WorkloadIdentity::Gcp { provider } => CloudFields {
                provider: Some(provider.resource_name()),
                ..CloudFields::default()
            },
            WorkloadIdentity::Azure {
                tenant_id,
                client_id,
            } => CloudFields {
                tenant_id: Some(tenant_id.clone()),
                client_id: Some(client_id.clone()),
                ..CloudFields::default()
            },
            WorkloadIdentity::Aws { role_arn, region } => CloudFields {
                role_arn: Some(role_arn.clone()),
                region: Some(region.clone()),
                ..CloudFields::default()
            },
        }
    }

    /// Fields given over `base`: an update changes only what it names.
    fn over(self, base: CloudFields) -> CloudFields {
        CloudFields {
            provider: self.provider.or(base.provider),
            tenant_id: self.tenant_id.or(base.tenant_id),
            client_id: self.client_id.or(base.client_id),
            role_arn: self.role_arn.or(base.role_arn),
            region: self.region.or(base.region),
        }
    }

    fn identity(self, cloud: CloudKind) -> Result<WorkloadIdentity, ApiError> {
        let fields: [(&'static str, &Option<String>, CloudKind); 5] = [
            ("provider", &self.provider, CloudKind::Gcp),
            ("tenant_id", &self.tenant_id, CloudKind::Azure),
            ("client_id", &self.client_id, CloudKind::Azure),
            ("role_arn", &self.role_arn, CloudKind::Aws),
            ("region", &self.region, CloudKind::Aws),
        ];
        for (field, value, owner) in fields {
            match (value, owner == cloud) {
                (Some(_), false) => {
                    return Err(ApiError::invalid(
                        field,
                        format!(
                            "{field} does not apply to a {cloud} config (it is a {owner} field)"
                        ),
                    ));
                }
                (None, true) => {
                    return Err(ApiError::invalid(
                        field,
                        format!("{field} is required for a {cloud} config"),
                    ));
                }
                _ => {}
            }
        }
        let get = |v: &Option<String>| v.clone().unwrap_or_default();
        match cloud {
            CloudKind::Gcp => WorkloadIdentity::gcp(&get(&self.provider)),
            CloudKind::Azure => {
                WorkloadIdentity::azure(&get(&self.tenant_id), &get(&self.client_id))
            }
            CloudKind::Aws => WorkloadIdentity::aws(&get(&self.role_arn), &get(&self.region)),
        }
        .map_err(invalid)
    }
}

fn settings(identity: &WorkloadIdentity) -> String {
    let f = CloudFields::of(identity);
    let mut v = serde_json::Map::new();
    for (k, val) in [
        ("provider", f.provider),
        ("tenant_id", f.tenant_id),
        ("client_id", f.client_id),
        ("role_arn", f.role_arn),
        ("region", f.region),
    ] {
        if let Some(val) = val {
            v.insert(k.into(), Value::String(val));
        }
    }
    Value::Object(v).to_string()
}

/// The validated identity a stored config describes.
pub(crate) fn identity_of(row: &WiConfigRow) -> Result<WorkloadIdentity, ApiError> {
    let corrupt = |detail: String| {
        ApiError::internal(format!(
            "workload identity config {} is damaged in the database: {detail}",
            row.id
        ))
    };
    let cloud = CloudKind::parse(&row.cloud).map_err(|e| corrupt(e.to_string()))?;
    let v: Value = serde_json::from_str(&row.settings).map_err(|e| corrupt(e.to_string()))?;
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    CloudFields {
        provider: text("provider"),
        tenant_id: text("tenant_id"),
        client_id: text("client_id"),
        role_arn: text("role_arn"),
        region: text("region"),
    }
    .identity(cloud)
    .map_err(|e| corrupt(format!("{e:?}")))
}

/// The subject mode a stored config mints with.
pub(crate) fn subject_mode(row: &WiConfigRow) -> Result<SubjectMode, ApiError> {
    SubjectMode::parse(&row.subject).map_err(|e| {
        ApiError::internal(format!(
            "workload identity config {} is damaged in the database: {e}",
            row.id
        ))
    })
}

/// Whether `automation` may mint through `row`: listed, or the config lists none.
pub(crate) fn usable_by(row: &WiConfigRow, automation: AutomationId) -> bool {
    row.automations.is_empty() || row.automations.contains(&automation)
}

/// The config a request body names in `workload_identity_config` (blank or absent: none).
pub(crate) async fn referenced(
    app: &AppState,
    org: OrgId,
    given: Option<&str>,
) -> Result<Option<WiConfigRow>, ApiError> {
    match given.filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(id) => find_wi_config(app, org, id)
            .await
            .map(Some)
            .map_err(unknown_reference(
                "workload_identity_config",
                "workload identity config",
                id,
            )),
    }
}

/// The organization's configs (API list and console page).
pub(crate) async fn list_wi_configs(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<WiConfigRow>, ApiError> {
    Ok(app.store.list_wi_configs(caller.org()?.id).await?)
}

/// `{id}` is the config's UUID or its name.
pub(crate) async fn find_wi_config(
    app: &AppState,
    org: OrgId,
    id_or_name: &str,
) -> Result<WiConfigRow, ApiError> {
    by_id_or_name(
        id_or_name,
        "workload identity config",
        |id: WorkloadIdentityConfigId| app.store.get_wi_config(org, id),
        |name| async move { app.store.find_wi_config_by_name(org, &name).await },
    )
    .await
}

fn config_taken(e: StoreError, row: &WiConfigRow) -> ApiError {
    taken(
        e,
        Taken {
            field: "name",
            message: format!(
                "a workload identity config named '{}' already exists in this organization",
                row.name
            ),
            default: Some((
                "default_for_cloud",
                format!(
                    "this organization already has a default {} config; unset default_for_cloud on it first",
                    row.cloud
                ),
            )),
        },
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    names::validate_slug("name", name).map_err(|e| ApiError::invalid(e.field(), e.to_string()))
}

pub(crate) async fn create_wi_config(
    app: &AppState,
    caller: &Caller,
    body: CreateWorkloadIdentityConfig,
) -> Result<WiConfigRow, ApiError> {
    let org = caller.org()?.id;
    check_name(&body.name)?;
    let cloud = CloudKind::parse(&body.cloud).map_err(invalid)?;
    let identity = CloudFields {
        provider: body.provider,
        tenant_id: body.tenant_id,
        client_id: body.client_id,
        role_arn: body.role_arn,
        region: body.region,
    }
    .identity(cloud)?;
    let subject = match body.subject.as_deref() {
        None => SubjectMode::default(),
        Some(text) => SubjectMode::parse(text).map_err(invalid)?,
    };
    let now = caller.now;
    let row = WiConfigRow {
        id: WorkloadIdentityConfigId::new_random(),
        org_id: org,
        name: body.name,
        cloud: cloud.as_str().into(),
        settings: settings(&identity),
        default_for_cloud: body.default_for_cloud.unwrap_or(false),
        automations: automation_ids(app, org, &body.automations.unwrap_or_default()).await?,
        subject: subject.as_str().into(),
        created_at: now,
        updated_at: now,
    };
    app.store
        .create_wi_config(&row)
        .await
        .map_err(|e| config_taken(e, &row))?;
    record_wi_config(app, caller, kind::WI_CONFIG_CREATED, &row, &identity).await?;
    Ok(row)
}

pub(crate) async fn update_wi_config(
    app: &AppState,
    caller: &Caller,
    id: &str,
    body: UpdateWorkloadIdentityConfig,
) -> Result<WiConfigRow, ApiError> {
    let org = caller.org()?.id;
    let mut row = find_wi_config(app, org, id).await?;
    let cloud = CloudKind::parse(&row.cloud).map_err(invalid)?;
    if let Some(asked) = &body.cloud
        && asked != cloud.as_str()
    {
        return Err(ApiError::invalid(
            "cloud",
            format!(
                "a config's cloud cannot change (this one is {cloud}); create a new config for {asked}"
            ),
        ));
    }
    if let Some(name) = body.name {
        check_name(&name)?;
        row.name = name;
    }
    let identity = CloudFields {
        provider: body.provider,
        tenant_id: body.tenant_id,
        client_id: body.client_id,
        role_arn: body.role_arn,
        region: body.region,
    }
    .over(CloudFields::of(&identity_of(&row)?))
    .identity(cloud)?;
    row.settings = settings(&identity);
    if let Some(default) = body.default_for_cloud {
        row.default_for_cloud = default;
    }
    if let Some(list) = body.automations {
        row.automations = automation_ids(app, org, &list).await?;
    }
    if let Some(text) = body.subject.as_deref() {
        row.subject = SubjectMode::parse(text).map_err(invalid)?.as_str().into();
    }
    row.updated_at = caller.now;
    app.store
        .update_wi_config(&row)
        .await
        .map_err(|e| config_taken(e, &row))?;
    record_wi_config(app, caller, kind::WI_CONFIG_UPDATED, &row, &identity).await?;
    Ok(row)
}

pub(crate) async fn delete_wi_config(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let org = caller.org()?.id;
    let row = find_wi_config(app, org, id).await?;
    let identity = identity_of(&row)?;
    app.store
        .delete_wi_config(org, row.id)
        .await
        .map_err(|e| match e {
            StoreError::InUse => ApiError::Conflict {
                field: "id",
                message: format!(
                    "workload identity config '{}' is used by an LLM connection; detach it there first",
                    row.name
                ),
            },
            other => or_not_found("workload identity config")(other),
        })?;
    record_wi_config(app, caller, kind::WI_CONFIG_DELETED, &row, &identity).await?;
    Ok(())
}

async fn record_wi_config(
    app: &AppState,
    caller: &Caller,
    event: &str,
    row: &WiConfigRow,
    identity: &WorkloadIdentity,
) -> Result<(), ApiError> {
    app.audit
        .record(
            event,
            Some(row.org_id),
            &caller.actor(),
            json!({
                "config_id": row.id,
                "name": row.name,
                "cloud": row.cloud,
                "audience": identity.audience().to_string(),
                "default_for_cloud": row.default_for_cloud,
                "automations": row.automations,
                "subject": row.subject,
            }),
        )
        .await?;
    Ok(())
}
