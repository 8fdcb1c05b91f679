//! Sessions with a secret provider's cloud, federated (a minted workload token exchanged with the
//! cloud) or static (the sealed credentials signing in). Test Connection, secret-name
//! autocomplete and static resolution all start here; each step is recorded for the answer.

use std::time::Duration;

use keyward_cloud::aws::SessionCredentials;
use keyward_cloud::{CloudError, Clouds, Deadline, Presented, Secret, Step, azure, gcp};
use keyward_core::Audience;
use keyward_core::secrets::{AuthKind, ProviderKind};
use keyward_core::subject::{SubjectMode, organization_subject};
use keyward_core::workload::WorkloadIdentity;
use keyward_store::{AutomationRow, SecretProviderRow, WiConfigRow};
use serde_json::{Value, json};

use super::access::sees_automation_id;
use super::automations::find_automation;
use super::minting::{Subject, issue};
use super::secret_providers::{StaticFields, open_static, setting};
use super::wi_configs::{identity_of, subject_mode, usable_by};
use super::{automation_names, unknown_reference};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

// Short enough that a person waiting on the button gets an answer; transient failures retry within it.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

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
    pub(crate) presented: Option<Presented>,
    /// The `sub` the test token carried (federated only).
    pub(crate) subject: Option<String>,
    /// Which automation an `automation`-subject test spoke for, and why that one.
    pub(crate) tested_as: Option<String>,
}

fn step_ok(step: &str, detail: String) -> Value {
    json!({"step": step, "ok": true, "detail": detail})
}

pub(crate) fn step_failed(step: &str, e: &CloudError) -> Value {
    match e.refusal() {
        Some(r) => json!({"step": step, "ok": false, "status": r.status, "code": r.code,
                          "message": r.message, "cause": r.cause.summary(), "fix": r.cause.fix()}),
        // The error's text ends with its cause and fix; they go in their own fields, once.
        None => json!({"step": step, "ok": false,
                       "message": e.headline(),
                       "cause": e.cause().map(|c| c.summary()), "fix": e.cause().map(|c| c.fix())}),
    }
}

/// Records one step's outcome and passes on what it gave, if it succeeded.
fn record_step<T>(
    steps: &mut Vec<Value>,
    step: &str,
    outcome: Result<T, CloudError>,
    detail: impl FnOnce(&T) -> String,
) -> Option<T> {
    match outcome {
        Ok(value) => {
            steps.push(step_ok(step, detail(&value)));
            Some(value)
        }
        Err(e) => {
            steps.push(step_failed(step, &e));
            None
        }
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

/// The listed automations of `config` the caller sees, quoted, for messages.
async fn listed(app: &AppState, caller: &Caller, config: &WiConfigRow) -> Result<String, ApiError> {
    let names = automation_names(app, config.org_id).await?;
    let mut shown = Vec::new();
    for a in &config.automations {
        if let Some(n) = names.get(a)
            && sees_automation_id(app, caller, *a).await?
        {
            shown.push(format!("'{n}'"));
        }
    }
    Ok(shown.join(", "))
}

/// The automation an `automation`-subject test speaks for: the one asked for, else the config's
/// only listed automation, with a note saying which and why.
async fn test_automation(
    app: &AppState,
    caller: &Caller,
    config: &WiConfigRow,
    asked: Option<&str>,
) -> Result<(AutomationRow, String), ApiError> {
    let org = config.org_id;
    match (
        asked.filter(|a| !a.is_empty()),
        config.automations.as_slice(),
    ) {
        (Some(asked), _) => {
            let found = find_automation(app, org, asked)
                .await
                .map_err(unknown_reference("automation", "automation", asked))?;
            // A private automation the caller cannot see is as absent here as in its own routes.
            if !sees_automation_id(app, caller, found.id).await? {
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
                        listed(app, caller, config).await?
                    ),
                ));
            }
            let note = format!("tested as automation '{}', as asked", found.name);
            Ok((found, note))
        }
        (None, [only]) if sees_automation_id(app, caller, *only).await? => {
            let found = app.store.get_automation(org, *only).await?;
            let note = format!(
                "tested as automation '{}', the config's only listed automation",
                found.name
            );
            Ok((found, note))
        }
        (None, _) => Err(ApiError::invalid(
            "automation",
            format!(
                "workload identity config '{}' mints a subject per automation (organization:<org>:automation:<automation-id>); name the automation to test as (?automation=<name>, or keyward secret-provider test --automation <name>){}",
                config.name,
                if config.automations.is_empty() {
                    String::new()
                } else {
                    format!(" (it lists {})", listed(app, caller, config).await?)
                }
            ),
        )),
    }
}

/// The subject a test token carries: the config's own. For an `automation`-subject config it
/// names one automation, since the cloud trusts that automation's subject and no
/// organization-wide one.
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
    let (automation, note) = test_automation(app, caller, config, asked).await?;
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

/// Signs in with the credential: static credentials, or a minted token exchanged with the cloud.
pub(crate) async fn handshake(
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
    let session = federate(
        &clouds, row, identity, &audience, &token, &deadline, &mut steps,
    )
    .await;
    Ok(Handshake {
        steps,
        session,
        presented,
        subject: Some(sub),
        tested_as,
    })
}

/// Exchanges a minted workload token with the identity's cloud.
async fn federate(
    clouds: &Clouds,
    row: &SecretProviderRow,
    identity: WorkloadIdentity,
    audience: &Audience,
    token: &str,
    deadline: &Deadline,
    steps: &mut Vec<Value>,
) -> Option<Session> {
    match identity {
        WorkloadIdentity::Gcp { .. } => {
            let exchanged = clouds
                .gcp()
                .exchange(&audience.to_string(), token, deadline)
                .await;
            record_step(steps, "GCP STS token exchange", exchanged, |_| {
                "federated access token issued".into()
            })
            .map(Session::Gcp)
        }
        WorkloadIdentity::Azure {
            tenant_id,
            client_id,
        } => {
            let issued = clouds
                .azure()
                .token(&tenant_id, &client_id, token, azure::VAULT_SCOPE, deadline)
                .await;
            record_step(
                steps,
                "Microsoft Entra client-assertion token",
                issued,
                |_| "vault-scoped access token issued".into(),
            )
            .map(Session::Azure)
        }
        WorkloadIdentity::Aws { role_arn, region } => {
            let region = setting(row, "region").unwrap_or(region);
            let aws = clouds.aws(&region);
            let session = format!("keyward-test-{}", &row.id.to_string()[..8]);
            let assumed = aws
                .assume_role_with_web_identity(&role_arn, &session, token, None, deadline)
                .await;
            let creds = record_step(steps, "AWS STS AssumeRoleWithWebIdentity", assumed, |c| {
                format!("assumed {}", c.assumed_role_arn)
            })?;
            let me = aws.get_caller_identity(&creds, deadline).await;
            record_step(steps, "AWS STS GetCallerIdentity", me, |me| {
                format!("account {}", me.account)
            })
            .map(|_| Session::Aws(creds))
        }
    }
}

fn field<'a>(fields: &'a StaticFields, name: &str) -> &'a str {
    fields.0.get(name).map(String::as_str).unwrap_or_default()
}

/// Signs in with the credential's static fields: one authenticated call per provider (two for
/// AWS with a role: AssumeRole, then GetCallerIdentity as the role).
pub(crate) async fn static_handshake(
    app: &AppState,
    clouds: &Clouds,
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
        ProviderKind::GcpSecretManager => gcp_key(clouds, &fields, deadline, &mut steps).await,
        ProviderKind::AzureKeyVault => azure_secret(clouds, &fields, deadline, &mut steps).await,
        ProviderKind::AwsSecretsManager => {
            aws_keys(clouds, row, &fields, deadline, &mut steps).await
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

/// A GCP service account key signs in for an access token.
async fn gcp_key(
    clouds: &Clouds,
    fields: &StaticFields,
    deadline: &Deadline,
    steps: &mut Vec<Value>,
) -> Option<Session> {
    let key = Secret::new(field(fields, "service_account_json"));
    let issued = clouds.gcp().service_account_token(&key, deadline).await;
    record_step(
        steps,
        &Step::GcpServiceAccountKey.to_string(),
        issued,
        |_| {
            let who = gcp::key_file_info(key.expose())
                .map(|i| i.client_email)
                .unwrap_or_default();
            format!("access token issued for {who}")
        },
    )
    .map(Session::Gcp)
}

/// An Entra client secret signs in for a vault-scoped token.
async fn azure_secret(
    clouds: &Clouds,
    fields: &StaticFields,
    deadline: &Deadline,
    steps: &mut Vec<Value>,
) -> Option<Session> {
    let secret = Secret::new(field(fields, "client_secret"));
    let issued = clouds
        .azure()
        .client_secret_token(
            field(fields, "tenant_id"),
            field(fields, "client_id"),
            &secret,
            azure::VAULT_SCOPE,
            deadline,
        )
        .await;
    record_step(steps, &Step::EntraClientSecret.to_string(), issued, |_| {
        "vault-scoped access token issued".into()
    })
    .map(Session::Azure)
}

/// AWS access keys, optionally assuming a role, proven with GetCallerIdentity.
async fn aws_keys(
    clouds: &Clouds,
    row: &SecretProviderRow,
    fields: &StaticFields,
    deadline: &Deadline,
    steps: &mut Vec<Value>,
) -> Option<Session> {
    let region =
        setting(row, "region").unwrap_or_else(|| keyward_cloud::aws::DEFAULT_REGION.into());
    let aws = clouds.aws(&region);
    let keys = SessionCredentials::static_keys(
        field(fields, "access_key_id"),
        Secret::new(field(fields, "secret_access_key")),
    );
    let role_arn = field(fields, "role_arn");
    let creds = if role_arn.is_empty() {
        keys
    } else {
        let external_id = Some(field(fields, "external_id")).filter(|x| !x.is_empty());
        let session = format!("keyward-{}", &row.id.to_string()[..8]);
        let assumed = aws
            .assume_role(&keys, role_arn, &session, external_id, deadline)
            .await;
        record_step(
            steps,
            &Step::AwsAssumeRoleStatic.to_string(),
            assumed,
            |c| format!("assumed {}", c.assumed_role_arn),
        )?
    };
    let me = aws.get_caller_identity(&creds, deadline).await;
    record_step(steps, &Step::AwsCallerIdentity.to_string(), me, |me| {
        format!("signed in as {}", me.arn)
    })
    .map(|_| Session::Aws(creds))
}

/// What autocomplete found: names, or why there are none.
pub(crate) enum Listing {
    Names(Vec<String>),
    /// The handshake or the listing failed at this step.
    Failed(Value),
    /// Nothing to list from, and why.
    Hint(&'static str),
}

/// Secret names starting with `prefix`, listed with a signed-in session.
pub(crate) async fn list_names(
    app: &AppState,
    row: &SecretProviderRow,
    session: Session,
    prefix: &str,
) -> Result<Listing, ApiError> {
    let deadline = Deadline::after(DEADLINE);
    let clouds = app.clouds()?;
    let listed = match session {
        Session::Gcp(token) => {
            let project = setting(row, "project").unwrap_or_default();
            clouds
                .gcp()
                .list_secrets(&token, &project, prefix, &deadline)
                .await
        }
        Session::Azure(token) => match setting(row, "vault_url") {
            Some(vault) => {
                clouds
                    .azure()
                    .list_secrets(&token, &vault, prefix, &deadline)
                    .await
            }
            None => {
                return Ok(Listing::Hint(
                    "azure_vault_url is required for Azure secret resolution: set vault_url on the credential",
                ));
            }
        },
        Session::Aws(creds) => {
            let region =
                setting(row, "region").unwrap_or_else(|| keyward_cloud::aws::DEFAULT_REGION.into());
            clouds
                .aws(&region)
                .list_secrets(&creds, prefix, &deadline)
                .await
        }
    };
    Ok(match listed {
        Ok(names) => Listing::Names(names),
        Err(e) => Listing::Failed(step_failed("list secrets", &e)),
    })
}
