//! `POST /api/v1/runtime/kickoff`: the kickoff plan for the calling automation (SPEC §5 step 1).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use keyward_core::api::v1::{
    KickoffAutomation, KickoffIdentity, KickoffLlmConnection, KickoffPlan,
};
use keyward_core::workload::WorkloadIdentity;
use keyward_store::{LlmConnectionRow, WiConfigRow};
use serde_json::json;

use super::wi_configs::identity_of;
use crate::audit::kind;
use crate::auth::{Caller, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// Why an identity is in the plan; a lower rank wins its cloud.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Connection,
    Restricted,
    Default,
}

pub async fn kickoff(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<KickoffPlan>, ApiError> {
    let Principal::Automation { automation, name } = &caller.principal else {
        return Err(ApiError::internal("kickoff reached without an automation"));
    };
    let org = caller.org()?.id;
    let configs = app.store.list_wi_configs(org).await?;
    let connections: Vec<LlmConnectionRow> = app
        .store
        .list_llm_connections(org)
        .await?
        .into_iter()
        .filter(|c| c.automations.contains(automation))
        .collect();

    // Per cloud, the best-ranked config this automation may use, and the service account of
    // the Vertex connection that chose it.
    let mut chosen: BTreeMap<String, (Rank, &WiConfigRow, Option<String>)> = BTreeMap::new();
    let allowed = |c: &WiConfigRow| c.automations.is_empty() || c.automations.contains(automation);
    let mut candidates: Vec<(Rank, &WiConfigRow, Option<String>)> = Vec::new();
    for connection in &connections {
        if let Some(config) = connection
            .wi_config_id
            .and_then(|id| configs.iter().find(|c| c.id == id))
            .filter(|c| allowed(c))
        {
            candidates.push((
                Rank::Connection,
                config,
                connection.service_account_email.clone(),
            ));
        }
    }
    for config in &configs {
        if config.automations.contains(automation) {
            candidates.push((Rank::Restricted, config, None));
        } else if config.default_for_cloud && config.automations.is_empty() {
            candidates.push((Rank::Default, config, None));
        }
    }
    for (rank, config, sa) in candidates {
        let better = chosen
            .get(&config.cloud)
            .is_none_or(|(held, _, _)| rank < *held);
        if better {
            chosen.insert(config.cloud.clone(), (rank, config, sa));
        }
    }

    let mut identities = Vec::with_capacity(chosen.len());
    for (_, config, sa) in chosen.into_values() {
        identities.push(identity(config, sa)?);
    }
    let names: BTreeMap<_, _> = configs.iter().map(|c| (c.id, c.name.clone())).collect();
    let llm_connections = connections
        .iter()
        .map(|c| {
            Ok(KickoffLlmConnection {
                name: c.name.clone(),
                provider: c.provider.clone(),
                model: c.model.clone(),
                workload_identity_config: c.wi_config_id.and_then(|id| names.get(&id).cloned()),
                env: serde_json::from_str(&c.env)
                    .map_err(|e| ApiError::internal(format!("LLM connection {} env: {e}", c.id)))?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let kickoff_id = uuid::Uuid::new_v4().to_string();
    app.audit
        .record(
            kind::KICKOFF_PLANNED,
            Some(org),
            &caller.actor(),
            json!({
                "kickoff_id": kickoff_id,
                "automation_id": automation,
                "automation": name,
                "identities": identities.iter().map(|i| json!({"config": i.config, "cloud": i.cloud})).collect::<Vec<_>>(),
                "llm_connections": llm_connections.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "client_ip": caller.ip.map(|ip| ip.to_string()),
            }),
        )
        .await?;
    Ok(Json(KickoffPlan {
        kickoff_id,
        automation: KickoffAutomation {
            id: *automation,
            name: name.clone(),
        },
        identities,
        llm_connections,
        token_ttl: app.config.token_ttl,
    }))
}

fn identity(config: &WiConfigRow, sa: Option<String>) -> Result<KickoffIdentity, ApiError> {
    let parsed = identity_of(config)?;
    let mut out = KickoffIdentity {
        config_id: config.id,
        config: config.name.clone(),
        cloud: config.cloud.clone(),
        audience: parsed.audience().to_string(),
        provider: None,
        project_number: None,
        service_account_email: None,
        tenant_id: None,
        client_id: None,
        role_arn: None,
        region: None,
    };
    match parsed {
        WorkloadIdentity::Gcp { provider } => {
            out.provider = Some(provider.resource_name());
            out.project_number = Some(provider.project_number);
            out.service_account_email = sa;
        }
        WorkloadIdentity::Azure {
            tenant_id,
            client_id,
        } => {
            out.tenant_id = Some(tenant_id);
            out.client_id = Some(client_id);
        }
        WorkloadIdentity::Aws { role_arn, region } => {
            out.role_arn = Some(role_arn);
            out.region = Some(region);
        }
    }
    Ok(out)
}
