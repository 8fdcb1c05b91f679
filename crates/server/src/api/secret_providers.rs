//! `/api/v1/secret-providers`: credentials as the API shows them — the config by name, which
//! settings are set, and whether static credentials are configured (never their values).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::WorkloadIdentityConfigId;
use keyward_core::api::v1::{CreateSecretProvider, SecretProvider, UpdateSecretProvider};
use keyward_store::SecretProviderRow;

use crate::caller::Caller;
use crate::clock::to_datetime;
use crate::domain::config_names;
use crate::domain::secret_providers::{
    create_secret_provider, delete_secret_provider, find_secret_provider, list_secret_providers,
    setting, update_secret_provider,
};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn provider_wire(
    row: &SecretProviderRow,
    configs: &BTreeMap<WorkloadIdentityConfigId, String>,
) -> SecretProvider {
    SecretProvider {
        id: row.id,
        name: row.name.clone(),
        provider: row.provider.clone(),
        auth: row.auth.clone(),
        workload_identity_config: row.wi_config_id.and_then(|c| configs.get(&c).cloned()),
        region: setting(row, "region"),
        project: setting(row, "project"),
        vault_url: setting(row, "vault_url"),
        static_configured: row.sealed_static.is_some(),
        default_for_provider: row.default_for_provider,
        created_at: to_datetime(row.created_at),
        updated_at: to_datetime(row.updated_at),
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SecretProvider>>, ApiError> {
    let org = caller.org()?.id;
    let configs = config_names(&app, org).await?;
    let rows = list_secret_providers(&app, &caller).await?;
    Ok(Json(
        rows.iter().map(|r| provider_wire(r, &configs)).collect(),
    ))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SecretProvider>, ApiError> {
    let org = caller.org()?.id;
    let row = find_secret_provider(&app, org, &id).await?;
    Ok(Json(provider_wire(&row, &config_names(&app, org).await?)))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSecretProvider>,
) -> Result<(StatusCode, Json<SecretProvider>), ApiError> {
    let row = create_secret_provider(&app, &caller, body).await?;
    let configs = config_names(&app, row.org_id).await?;
    Ok((StatusCode::CREATED, Json(provider_wire(&row, &configs))))
}

pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateSecretProvider>,
) -> Result<Json<SecretProvider>, ApiError> {
    let row = update_secret_provider(&app, &caller, &id, body).await?;
    let configs = config_names(&app, row.org_id).await?;
    Ok(Json(provider_wire(&row, &configs)))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_secret_provider(&app, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
