//! `POST /api/v1/workload-identity/token`: an automation asks for a short-lived OIDC token for
//! one cloud audience.

use axum::Json;
use axum::extract::State;
use keyward_core::api::v1::{MintRequest, MintResponse};
use keyward_core::{Audience, AudienceError, AutomationId, OrgId};
use keyward_jose::claims::NBF_BACKDATE_SECS;
use keyward_jose::{WorkloadClaims, mint as sign};
use keyward_store::WiConfigRow;
use serde_json::json;

use crate::audit::kind;
use crate::auth::{Caller, Principal};
use crate::clock::{self, to_datetime};
use crate::error::{ApiError, ApiJson};
use crate::issuer::issuer_or_503;
use crate::state::AppState;

use super::{llm_connections, wi_configs};

/// The audience asked for, directly or through a config or a connection (exactly one), and the
/// config it came from.
async fn audience_for(
    app: &AppState,
    org: OrgId,
    automation: AutomationId,
    body: MintRequest,
) -> Result<(Audience, Option<WiConfigRow>), ApiError> {
    let config = match (
        body.audience,
        body.workload_identity_config,
        body.llm_connection,
    ) {
        (Some(text), None, None) => {
            let audience = Audience::parse(&text)
                .map_err(|e: AudienceError| ApiError::invalid("audience", e.to_string()))?;
            return Ok((audience, None));
        }
        (None, Some(config), None) => wi_configs::find(app, org, &config).await?,
        (None, None, Some(connection)) => {
            let connection = llm_connections::find(app, org, &connection).await?;
            if !connection.automations.is_empty() && !connection.automations.contains(&automation) {
                return Err(ApiError::Forbidden {
                    code: "not_assigned",
                    message: format!(
                        "LLM connection '{}' is not used by this automation; add the automation to the connection",
                        connection.name
                    ),
                });
            }
            let id = connection.wi_config_id.ok_or_else(|| {
                ApiError::invalid(
                    "llm_connection",
                    format!(
                        "LLM connection '{}' has no workload identity config; attach one to federate",
                        connection.name
                    ),
                )
            })?;
            app.store.get_wi_config(org, id).await?
        }
        _ => {
            return Err(ApiError::invalid(
                "audience",
                "give exactly one of audience (the GCP provider audience, 'api://AzureADTokenExchange' or 'sts.amazonaws.com'), workload_identity_config or llm_connection",
            ));
        }
    };
    if !config.automations.is_empty() && !config.automations.contains(&automation) {
        return Err(ApiError::Forbidden {
            code: "not_assigned",
            message: format!(
                "workload identity config '{}' is restricted to other automations; add this automation to it",
                config.name
            ),
        });
    }
    let audience = wi_configs::identity_of(&config)?.audience();
    Ok((audience, Some(config)))
}

pub async fn mint(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MintRequest>,
) -> Result<Json<MintResponse>, ApiError> {
    let Principal::Automation { automation, name } = &caller.principal else {
        return Err(ApiError::internal("mint reached without an automation"));
    };
    let org = caller.org()?.id;
    let kickoff_id = match &body.kickoff_id {
        None => None,
        Some(k) => Some(
            uuid::Uuid::parse_str(k)
                .map_err(|_| {
                    ApiError::invalid(
                        "kickoff_id",
                        "kickoff_id must be the UUID from the kickoff plan (POST /api/v1/runtime/kickoff)",
                    )
                })?
                .to_string(),
        ),
    };
    let (audience, config) = audience_for(&app, org, *automation, body).await?;
    let (token, claims) = issue(
        &app,
        &caller,
        &audience,
        Subject {
            automation_id: automation.to_string(),
            automation_name: name.clone(),
            kickoff_id,
            config_id: config.as_ref().map(|c| c.id),
        },
    )
    .await?;
    Ok(Json(MintResponse {
        token,
        expires_at: to_datetime(claims.exp),
        audience: claims.aud,
    }))
}

/// Who a token is for, beyond the organization.
pub(crate) struct Subject {
    pub automation_id: String,
    pub automation_name: String,
    pub kickoff_id: Option<String>,
    pub config_id: Option<keyward_core::WorkloadIdentityConfigId>,
}

/// Signs a workload token for the caller's organization and audits it before handing it out.
pub(crate) async fn issue(
    app: &AppState,
    caller: &Caller,
    audience: &Audience,
    subject: Subject,
) -> Result<(String, WorkloadClaims), ApiError> {
    let org = caller.org()?.id;
    let issuer = issuer_or_503(app)?;
    let now = clock::now();
    let key = app
        .keyring
        .signer(now)
        .ok_or_else(|| ApiError::Unavailable {
            code: "no_signing_key",
            message: "no signing key is active yet; check the server log for key rotation errors"
                .into(),
        })?;
    let claims = WorkloadClaims {
        iss: issuer.to_owned(),
        sub: format!("organization:{org}"),
        aud: audience.to_string(),
        organization_id: org.to_string(),
        iat: now,
        nbf: now - NBF_BACKDATE_SECS,
        exp: now + app.config.token_ttl,
        jti: uuid::Uuid::new_v4().to_string(),
        automation_id: subject.automation_id,
        automation_name: subject.automation_name,
        kickoff_id: subject.kickoff_id,
    };
    let token = sign(&key, &claims).map_err(ApiError::internal)?;
    // Audited before it is handed out: a token that cannot be accounted for is never issued.
    app.audit
        .record(
            kind::TOKEN_MINTED,
            Some(org),
            &caller.actor(),
            json!({
                "jti": claims.jti,
                "kid": key.kid(),
                "sub": claims.sub,
                "aud": claims.aud,
                "automation_id": claims.automation_id,
                "automation": claims.automation_name,
                "workload_identity_config_id": subject.config_id,
                "kickoff_id": claims.kickoff_id,
                "client_ip": caller.ip.map(|ip| ip.to_string()),
                "exp": claims.exp,
            }),
        )
        .await?;
    metrics::counter!("keyward_workload_tokens_minted_total", "cloud" => audience.cloud())
        .increment(1);
    Ok((token, claims))
}
