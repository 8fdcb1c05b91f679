//! Test Connection and secret-name autocomplete for a secret provider credential (SPEC §6).
//! Test Connection proves the federation handshake — not per-secret permissions, and says so.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use keyward_cloud::{CloudError, Deadline, Presented, azure};
use keyward_core::Audience;
use keyward_core::secrets::AuthKind;
use keyward_store::{SecretProviderRow, WiConfigRow};
use serde::Deserialize;
use serde_json::{Value, json};

use super::secret_providers::{find, setting};
use super::wi_configs::identity_of;
use super::workload_identity::{Subject, issue};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

// Short enough that a person waiting on the button gets an answer; transient failures retry within it.
const DEADLINE: Duration = Duration::from_secs(10);
const HANDSHAKE_ONLY: &str = "A passing test proves the federation handshake (issuer, subject and audience accepted, the identity reachable); it does not prove per-secret permissions, which are exercised when a variable resolves at kickoff.";

/// A federated session with the provider's cloud, as Test Connection and autocomplete need it.
enum Session {
    Gcp(keyward_cloud::gcp::AccessToken),
    Azure(keyward_cloud::azure::AccessToken),
    Aws(keyward_cloud::aws::SessionCredentials),
}

struct Handshake {
    steps: Vec<Value>,
    session: Option<Session>,
    presented: Option<Presented>,
}

fn step_ok(step: &str, detail: String) -> Value {
    json!({"step": step, "ok": true, "detail": detail})
}

fn step_failed(step: &str, e: &CloudError) -> Value {
    match e.refusal() {
        Some(r) => json!({"step": step, "ok": false, "status": r.status, "code": r.code,
                          "message": r.message, "cause": r.cause.summary(), "fix": r.cause.fix()}),
        None => json!({"step": step, "ok": false, "message": e.to_string(),
                       "cause": e.cause().map(|c| c.summary()), "fix": e.cause().map(|c| c.fix())}),
    }
}

async fn wi_config(app: &AppState, row: &SecretProviderRow) -> Result<WiConfigRow, ApiError> {
    let id = row.wi_config_id.ok_or_else(|| {
        ApiError::invalid(
            "workload_identity_config",
            "this credential has no workload identity config",
        )
    })?;
    Ok(app.store.get_wi_config(row.org_id, id).await?)
}

/// Mints a token for the credential's identity and exchanges it with the cloud.
async fn handshake(
    app: &AppState,
    caller: &Caller,
    row: &SecretProviderRow,
) -> Result<Handshake, ApiError> {
    if AuthKind::parse(&row.auth) != Ok(AuthKind::WorkloadIdentity) {
        return Err(ApiError::Invalid {
            code: "not_supported",
            message: "this Keyward tests workload identity credentials; static credentials are exercised when the automation is redeployed".into(),
            field: Some("auth"),
        });
    }
    let clouds = app.clouds()?;
    let config = wi_config(app, row).await?;
    let identity = identity_of(&config)?;
    let audience: Audience = identity.audience();
    let (token, _) = issue(
        app,
        caller,
        &audience,
        Subject {
            automation_id: String::new(),
            automation_name: format!("test-connection:{}", row.name),
            kickoff_id: None,
            config_id: Some(config.id),
        },
    )
    .await?;
    let presented = Presented::from_jwt(&token);
    let mut steps = vec![step_ok("token minted", format!("aud {audience}"))];
    let deadline = Deadline::after(DEADLINE);
    let session = match identity {
        keyward_core::workload::WorkloadIdentity::Gcp { .. } => {
            match clouds
                .gcp()
                .exchange(&audience.to_string(), &token, &deadline)
                .await
            {
                Ok(t) => {
                    steps.push(step_ok(
                        "GCP STS token exchange",
                        "federated access token issued".into(),
                    ));
                    Some(Session::Gcp(t))
                }
                Err(e) => {
                    steps.push(step_failed("GCP STS token exchange", &e));
                    None
                }
            }
        }
        keyward_core::workload::WorkloadIdentity::Azure {
            tenant_id,
            client_id,
        } => {
            match clouds
                .azure()
                .token(
                    &tenant_id,
                    &client_id,
                    &token,
                    azure::VAULT_SCOPE,
                    &deadline,
                )
                .await
            {
                Ok(t) => {
                    steps.push(step_ok(
                        "Microsoft Entra client-assertion token",
                        "vault-scoped access token issued".into(),
                    ));
                    Some(Session::Azure(t))
                }
                Err(e) => {
                    steps.push(step_failed("Microsoft Entra client-assertion token", &e));
                    None
                }
            }
        }
        keyward_core::workload::WorkloadIdentity::Aws { role_arn, region } => {
            let region = setting(row, "region").unwrap_or(region);
            let aws = clouds.aws(&region);
            let session = format!("keyward-test-{}", &row.id.to_string()[..8]);
            match aws
                .assume_role_with_web_identity(&role_arn, &session, &token, None, &deadline)
                .await
            {
                Ok(creds) => {
                    steps.push(step_ok(
                        "AWS STS AssumeRoleWithWebIdentity",
                        format!("assumed {}", creds.assumed_role_arn),
                    ));
                    match aws.get_caller_identity(&creds, &deadline).await {
                        Ok(me) => {
                            steps.push(step_ok(
                                "AWS STS GetCallerIdentity",
                                format!("account {}", me.account),
                            ));
                            Some(Session::Aws(creds))
                        }
                        Err(e) => {
                            steps.push(step_failed("AWS STS GetCallerIdentity", &e));
                            None
                        }
                    }
                }
                Err(e) => {
                    steps.push(step_failed("AWS STS AssumeRoleWithWebIdentity", &e));
                    None
                }
            }
        }
    };
    Ok(Handshake {
        steps,
        session,
        presented,
    })
}

/// `POST /secret-providers/{id}/test`.
pub async fn test(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    let done = handshake(&app, &caller, &row).await?;
    let ok = done.session.is_some();
    Ok(Json(json!({
        "ok": ok,
        "credential": row.name,
        "provider": row.provider,
        "auth": row.auth,
        "steps": done.steps,
        "presented": done.presented.map(|p| json!({"iss": p.iss, "sub": p.sub, "aud": p.aud})),
        "note": HANDSHAKE_ONLY,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /secret-providers/{id}/secrets?prefix=`: names from the provider; a permission refusal
/// answers with the role or scope that is missing.
pub async fn secrets(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<SecretsQuery>,
) -> Result<Json<Value>, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    let done = handshake(&app, &caller, &row).await?;
    let Some(session) = done.session else {
        let failed = done.steps.last().cloned().unwrap_or(Value::Null);
        return Ok(Json(
            json!({"names": [], "hint": hint_of(&failed), "failed_step": failed}),
        ));
    };
    let deadline = Deadline::after(DEADLINE);
    let clouds = app.clouds()?;
    let listed = match session {
        Session::Gcp(token) => {
            let project = setting(&row, "project").unwrap_or_default();
            clouds
                .gcp()
                .list_secrets(&token, &project, &query.prefix, &deadline)
                .await
        }
        Session::Azure(token) => match setting(&row, "vault_url") {
            Some(vault) => {
                clouds
                    .azure()
                    .list_secrets(&token, &vault, &query.prefix, &deadline)
                    .await
            }
            None => {
                return Ok(Json(json!({"names": [],
                    "hint": "azure_vault_url is required for Azure secret resolution: set vault_url on the credential"})));
            }
        },
        Session::Aws(creds) => {
            let region = setting(&row, "region").unwrap_or_else(|| "us-east-1".into());
            clouds
                .aws(&region)
                .list_secrets(&creds, &query.prefix, &deadline)
                .await
        }
    };
    match listed {
        Ok(names) => Ok(Json(json!({"names": names}))),
        Err(e) => {
            let failed = step_failed("list secrets", &e);
            Ok(Json(
                json!({"names": [], "hint": hint_of(&failed), "failed_step": failed}),
            ))
        }
    }
}

fn hint_of(step: &Value) -> String {
    match (
        step["code"].as_str(),
        step["cause"].as_str(),
        step["fix"].as_str(),
    ) {
        (Some(code), Some(cause), Some(fix)) => format!("{code}: {cause}. Fix: {fix}"),
        _ => step["message"]
            .as_str()
            .unwrap_or("the provider refused")
            .to_owned(),
    }
}
