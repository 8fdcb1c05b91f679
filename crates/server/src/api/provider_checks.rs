//! Test Connection and secret-name autocomplete for a secret provider credential (SPEC §6).
//! Test Connection proves the federation handshake — not per-secret permissions, and says so.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use keyward_cloud::aws::SessionCredentials;
use keyward_cloud::{CloudError, Deadline, Presented, Secret, Step, azure, gcp};
use keyward_core::Audience;
use keyward_core::secrets::{AuthKind, ProviderKind};
use keyward_core::subject::{SubjectMode, organization_subject};
use keyward_store::{SecretProviderRow, WiConfigRow};
use serde::Deserialize;
use serde_json::{Value, json};

use super::automations;
use super::secret_providers::{StaticFields, find, open_static, setting};
use super::wi_configs::{automation_names, identity_of, subject_mode, usable_by};
use super::workload_identity::{Subject, issue};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

// Short enough that a person waiting on the button gets an answer; transient failures retry within it.
const DEADLINE: Duration = Duration::from_secs(10);
const HANDSHAKE_ONLY: &str = "A passing test proves the federation handshake (issuer, subject and audience accepted, the identity reachable); it does not prove per-secret permissions, which are exercised when a variable resolves at kickoff.";

const STATIC_ONLY: &str = "A passing test proves the static credentials authenticate (one authenticated call); it does not prove per-secret permissions, which are exercised when the automation is registered or redeployed.";

/// A session with the provider's cloud, federated or static, as Test Connection, autocomplete
/// and static resolution need it.
pub(crate) enum Session {
    Gcp(keyward_cloud::gcp::AccessToken),
    Azure(keyward_cloud::azure::AccessToken),
    Aws(keyward_cloud::aws::SessionCredentials),
}

pub(crate) struct Handshake {
    pub(crate) steps: Vec<Value>,
    pub(crate) session: Option<Session>,
    presented: Option<Presented>,
    /// The `sub` the test token carried (federated only).
    subject: Option<String>,
    /// Which automation an `automation`-subject test spoke for, and why that one.
    tested_as: Option<String>,
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

/// The subject a test token carries: the config's own. For an `automation`-subject config it
/// names one automation — the one asked for, else the config's only listed automation — since
/// the cloud trusts that automation's subject and no organization-wide one.
async fn test_subject(
    app: &AppState,
    caller: &Caller,
    row: &SecretProviderRow,
    config: &WiConfigRow,
    asked: Option<&str>,
) -> Result<(Subject, Option<String>), ApiError> {
    let org = row.org_id;
    let mode = subject_mode(config)?;
    if mode == SubjectMode::Organization {
        return Ok((
            Subject {
                sub: organization_subject(org),
                automation_id: String::new(),
                automation_name: format!("test-connection:{}", row.name),
                kickoff_id: None,
                config_id: Some(config.id),
            },
            None,
        ));
    }
    // Only the listed automations the caller sees are named.
    let listed = || async {
        let names = automation_names(app, org).await?;
        let mut shown = Vec::new();
        for a in &config.automations {
            if let Some(n) = names.get(a)
                && crate::rbac::sees_automation_id(app, caller, *a).await?
            {
                shown.push(format!("'{n}'"));
            }
        }
        Ok::<_, ApiError>(shown.join(", "))
    };
    let (automation, note) = match (
        asked.filter(|a| !a.is_empty()),
        config.automations.as_slice(),
    ) {
        (Some(asked), _) => {
            let found = automations::find(app, org, asked)
                .await
                .map_err(super::unknown_reference("automation", "automation", asked))?;
            // A private automation the caller cannot see is as absent here as in its own routes.
            if !crate::rbac::sees_automation_id(app, caller, found.id).await? {
                return Err(ApiError::invalid(
                    "automation",
                    format!("no automation '{asked}' in this organization"),
                ));
            }
            if !usable_by(config, found.id) {
                return Err(ApiError::invalid(
                    "automation",
                    format!(
                        "workload identity config '{}' is restricted to {}; test as one of them",
                        config.name,
                        listed().await?
                    ),
                ));
            }
            let note = format!("tested as automation '{}', as asked", found.name);
            (found, note)
        }
        (None, [only]) if crate::rbac::sees_automation_id(app, caller, *only).await? => {
            let found = app.store.get_automation(org, *only).await?;
            let note = format!(
                "tested as automation '{}', the config's only listed automation",
                found.name
            );
            (found, note)
        }
        (None, _) => {
            return Err(ApiError::invalid(
                "automation",
                format!(
                    "workload identity config '{}' mints a subject per automation (organization:<org>:automation:<automation-id>); name the automation to test as (?automation=<name>, or keyward secret-provider test --automation <name>){}",
                    config.name,
                    if config.automations.is_empty() {
                        String::new()
                    } else {
                        format!(" (it lists {})", listed().await?)
                    }
                ),
            ));
        }
    };
    Ok((
        Subject {
            sub: mode.subject(org, automation.id),
            automation_id: automation.id.to_string(),
            automation_name: automation.name,
            kickoff_id: None,
            config_id: Some(config.id),
        },
        Some(note),
    ))
}

/// Mints a token for the credential's identity and exchanges it with the cloud.
async fn handshake(
    app: &AppState,
    caller: &Caller,
    row: &SecretProviderRow,
    automation: Option<&str>,
) -> Result<Handshake, ApiError> {
    let clouds = app.clouds()?;
    if AuthKind::parse(&row.auth) == Ok(AuthKind::Static) {
        return static_handshake(app, &clouds, row, &Deadline::after(DEADLINE)).await;
    }
    let config = wi_config(app, row).await?;
    let identity = identity_of(&config)?;
    let audience: Audience = identity.audience();
    let (subject, tested_as) = test_subject(app, caller, row, &config, automation).await?;
    let sub = subject.sub.clone();
    let (token, _) = issue(app, caller, &audience, subject).await?;
    let presented = Presented::from_jwt(&token);
    let mut steps = vec![step_ok(
        "token minted",
        format!("aud {audience}, sub {sub}"),
    )];
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
        subject: Some(sub),
        tested_as,
    })
}

fn field<'a>(fields: &'a StaticFields, name: &str) -> &'a str {
    fields.0.get(name).map(String::as_str).unwrap_or_default()
}

/// Signs in with the credential's static fields: one authenticated call per provider (two for
/// AWS with a role: AssumeRole, then GetCallerIdentity as the role).
pub(crate) async fn static_handshake(
    app: &AppState,
    clouds: &keyward_cloud::Clouds,
    row: &SecretProviderRow,
    deadline: &Deadline,
) -> Result<Handshake, ApiError> {
    let fields = open_static(app, row)?.ok_or_else(|| {
        ApiError::invalid(
            "static",
            format!(
                "no credential found: '{}' has no static credentials; set them with PATCH",
                row.name
            ),
        )
    })?;
    let provider = ProviderKind::parse(&row.provider)
        .map_err(|e| ApiError::invalid("provider", e.to_string()))?;
    let mut steps = Vec::new();
    let session = match provider {
        ProviderKind::GcpSecretManager => {
            let key = Secret::new(field(&fields, "service_account_json"));
            let step = Step::GcpServiceAccountKey.to_string();
            match clouds.gcp().service_account_token(&key, deadline).await {
                Ok(t) => {
                    let who = gcp::key_file_info(key.expose())
                        .map(|i| i.client_email)
                        .unwrap_or_default();
                    steps.push(step_ok(&step, format!("access token issued for {who}")));
                    Some(Session::Gcp(t))
                }
                Err(e) => {
                    steps.push(step_failed(&step, &e));
                    None
                }
            }
        }
        ProviderKind::AzureKeyVault => {
            let step = Step::EntraClientSecret.to_string();
            let secret = Secret::new(field(&fields, "client_secret"));
            match clouds
                .azure()
                .client_secret_token(
                    field(&fields, "tenant_id"),
                    field(&fields, "client_id"),
                    &secret,
                    azure::VAULT_SCOPE,
                    deadline,
                )
                .await
            {
                Ok(t) => {
                    steps.push(step_ok(&step, "vault-scoped access token issued".into()));
                    Some(Session::Azure(t))
                }
                Err(e) => {
                    steps.push(step_failed(&step, &e));
                    None
                }
            }
        }
        ProviderKind::AwsSecretsManager => {
            let region = setting(row, "region").unwrap_or_else(|| "us-east-1".into());
            let aws = clouds.aws(&region);
            let keys = SessionCredentials::static_keys(
                field(&fields, "access_key_id"),
                Secret::new(field(&fields, "secret_access_key")),
            );
            let role_arn = field(&fields, "role_arn");
            let creds = if role_arn.is_empty() {
                Some(keys)
            } else {
                let step = Step::AwsAssumeRoleStatic.to_string();
                let external_id = Some(field(&fields, "external_id")).filter(|x| !x.is_empty());
                let session = format!("keyward-{}", &row.id.to_string()[..8]);
                match aws
                    .assume_role(&keys, role_arn, &session, external_id, deadline)
                    .await
                {
                    Ok(c) => {
                        steps.push(step_ok(&step, format!("assumed {}", c.assumed_role_arn)));
                        Some(c)
                    }
                    Err(e) => {
                        steps.push(step_failed(&step, &e));
                        None
                    }
                }
            };
            match creds {
                None => None,
                Some(creds) => match aws.get_caller_identity(&creds, deadline).await {
                    Ok(me) => {
                        steps.push(step_ok(
                            &Step::AwsCallerIdentity.to_string(),
                            format!("signed in as {}", me.arn),
                        ));
                        Some(Session::Aws(creds))
                    }
                    Err(e) => {
                        steps.push(step_failed(&Step::AwsCallerIdentity.to_string(), &e));
                        None
                    }
                },
            }
        }
    };
    Ok(Handshake {
        steps,
        session,
        presented: None,
        subject: None,
        tested_as: None,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    /// For a config with `subject = automation`: the automation (id or name) to test as.
    #[serde(default)]
    automation: Option<String>,
}

/// `POST /secret-providers/{id}/test[?automation=]`.
pub async fn test(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<TestQuery>,
) -> Result<Json<Value>, ApiError> {
    let org = caller.org()?.id;
    let row = find(&app, org, &id).await?;
    let done = handshake(&app, &caller, &row, query.automation.as_deref()).await?;
    let ok = done.session.is_some();
    Ok(Json(json!({
        "ok": ok,
        "credential": row.name,
        "provider": row.provider,
        "auth": row.auth,
        "steps": done.steps,
        "presented": done.presented.map(|p| json!({"iss": p.iss, "sub": p.sub, "aud": p.aud})),
        "subject": done.subject,
        "tested_as": done.tested_as,
        "note": if AuthKind::parse(&row.auth) == Ok(AuthKind::Static) { STATIC_ONLY } else { HANDSHAKE_ONLY },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    automation: Option<String>,
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
    let done = handshake(&app, &caller, &row, query.automation.as_deref()).await?;
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
