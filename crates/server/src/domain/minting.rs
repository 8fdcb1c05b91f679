//! Minting workload tokens (SPEC §4): which audience and subject a request resolves to, under
//! the configs' automation restrictions, and the one place that signs and audits a token.

use keyward_core::api::v1::MintRequest;
use keyward_core::subject::SubjectMode;
use keyward_core::{Audience, AudienceError, AutomationId, OrgId};
use keyward_jose::claims::NBF_BACKDATE_SECS;
use keyward_jose::{WorkloadClaims, mint as sign};
use keyward_store::WiConfigRow;
use serde_json::json;

use super::llm_connections::find_llm_connection;
use super::wi_configs::{find_wi_config, identity_of, subject_mode, usable_by};
use crate::audit::kind;
use crate::caller::{Caller, Principal};
use crate::error::{ApiError, DATABASE_UNAVAILABLE};
use crate::issuer::issuer_or_503;
use crate::keyring::KeyringError;
use crate::state::AppState;

/// What a mint request resolves to: the audience, the config it came from (if any) and the
/// subject mode of that config.
struct MintTarget {
    audience: Audience,
    config: Option<WiConfigRow>,
    mode: SubjectMode,
}

/// The audience asked for, directly or through a config or a connection (exactly one), and the
/// config it came from. Every path honours the configs' automation restriction.
async fn audience_for(
    app: &AppState,
    org: OrgId,
    automation: AutomationId,
    body: MintRequest,
) -> Result<MintTarget, ApiError> {
    let config = match (
        body.audience,
        body.workload_identity_config,
        body.llm_connection,
    ) {
        (Some(text), None, None) => {
            let audience = Audience::parse(&text)
                .map_err(|e: AudienceError| ApiError::invalid("audience", e.to_string()))?;
            return raw_audience(app, org, automation, audience).await;
        }
        (None, Some(config), None) => find_wi_config(app, org, &config).await?,
        (None, None, Some(connection)) => {
            let connection = find_llm_connection(app, org, &connection).await?;
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
    if !usable_by(&config, automation) {
        return Err(ApiError::Forbidden {
            code: "not_assigned",
            message: format!(
                "workload identity config '{}' is restricted to other automations; add this automation to it",
                config.name
            ),
        });
    }
    Ok(MintTarget {
        audience: identity_of(&config)?.audience(),
        mode: subject_mode(&config)?,
        config: Some(config),
    })
}

/// A raw `audience` (security review H3): it would otherwise bypass every config's restriction.
/// No config covers it: allowed with the organization subject (the quickstart's plain mint).
/// Configs cover it: allowed only as one of those this automation may use, and the token is
/// exactly what naming that config gives — the organization subject if any usable one mints
/// it, else this automation's own finer subject, which no other automation's trust accepts.
async fn raw_audience(
    app: &AppState,
    org: OrgId,
    automation: AutomationId,
    audience: Audience,
) -> Result<MintTarget, ApiError> {
    let mut covering = Vec::new();
    for config in app.store.list_wi_configs(org).await? {
        if identity_of(&config)?.audience() == audience {
            covering.push(config);
        }
    }
    if covering.is_empty() {
        return Ok(MintTarget {
            audience,
            config: None,
            mode: SubjectMode::Organization,
        });
    }
    let names = covering
        .iter()
        .map(|c| format!("'{}'", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut usable = Vec::new();
    for config in covering {
        if usable_by(&config, automation) {
            let mode = subject_mode(&config)?;
            usable.push((mode, config));
        }
    }
    // Organization first: the subject a token without a named config has always carried.
    usable.sort_by_key(|(mode, _)| *mode != SubjectMode::Organization);
    let Some((mode, config)) = usable.into_iter().next() else {
        return Err(ApiError::Forbidden {
            code: "not_assigned",
            message: format!(
                "audience {audience} belongs to workload identity config {names}, restricted to other automations; add this automation to the config, or mint through a config it may use"
            ),
        });
    };
    Ok(MintTarget {
        audience,
        config: Some(config),
        mode,
    })
}

/// `POST /api/v1/workload-identity/token` for the calling automation: the signed token and its
/// claims.
pub(crate) async fn mint(
    app: &AppState,
    caller: &Caller,
    body: MintRequest,
) -> Result<(String, WorkloadClaims), ApiError> {
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
    let MintTarget {
        audience,
        config,
        mode,
    } = audience_for(app, org, *automation, body).await?;
    issue(
        app,
        caller,
        &audience,
        Subject {
            sub: mode.subject(org, *automation),
            automation_id: automation.to_string(),
            automation_name: name.clone(),
            kickoff_id,
            config_id: config.as_ref().map(|c| c.id),
        },
    )
    .await
}

/// The `audience` label of `keyward_tokens_minted_total`. A metric keeps every label value it
/// ever saw, and an automation may ask for any GCP provider or `keyward-gateway-<name>` on its
/// own: only audiences an administrator configured (and the two fixed cloud audiences) are
/// named; the rest are counted under their cloud.
fn audience_label(audience: &Audience, from_config: bool) -> String {
    match audience {
        Audience::Azure | Audience::Aws => audience.to_string(),
        Audience::Keyward(name) if name == "keyward-gateway" => name.clone(),
        _ if from_config => audience.to_string(),
        Audience::Gcp(_) => "gcp:unconfigured".to_owned(),
        Audience::Keyward(_) => "keyward-gateway:named".to_owned(),
    }
}

/// Who a token is for, beyond the organization.
pub(crate) struct Subject {
    /// The `sub` claim, from the config's [`SubjectMode`].
    pub sub: String,
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
    // Not `caller.now`: authenticating may have waited seconds for a restarting database, and a
    // token's lifetime (and the key that signs it) starts when it is signed.
    let now = app.clock.now();
    let key = app
        .keyring
        .current_signer(now)
        .await
        .map_err(|e| match e {
            KeyringError::Store(e) => ApiError::from(e),
            other => ApiError::internal(other),
        })?
        .ok_or_else(|| ApiError::Unavailable {
            code: "no_signing_key",
            message: "no signing key is active yet; check the server log for key rotation errors"
                .into(),
        })?;
    let claims = WorkloadClaims {
        iss: issuer.to_owned(),
        sub: subject.sub,
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
    let subject_config = subject.config_id.is_some();
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
    // The audit write can outlast a short lifetime while the database restarts; an expired
    // token is never handed out, the client retries for a fresh one.
    if app.clock.now() >= claims.exp {
        return Err(ApiError::Unavailable {
            code: DATABASE_UNAVAILABLE,
            message: format!(
                "the database took longer to record this token than its {} s lifetime; retry",
                app.config.token_ttl
            ),
        });
    }
    metrics::counter!("keyward_workload_tokens_minted_total", "cloud" => audience.cloud())
        .increment(1);
    metrics::counter!("keyward_tokens_minted_total", "audience" => audience_label(audience, subject_config))
        .increment(1);
    Ok((token, claims))
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn only_configured_audiences_name_their_own_metric_label() {
        let gcp = Audience::parse(
            "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/pool-one/providers/prov-one",
        )
        .unwrap();
        assert_eq!(audience_label(&gcp, true), gcp.to_string());
        assert_eq!(audience_label(&gcp, false), "gcp:unconfigured");
        let named = Audience::parse("keyward-gateway-attacker-chosen-1").unwrap();
        assert_eq!(audience_label(&named, false), "keyward-gateway:named");
        let gateway = Audience::parse("keyward-gateway").unwrap();
        assert_eq!(audience_label(&gateway, false), "keyward-gateway");
        assert_eq!(audience_label(&Audience::Aws, false), "sts.amazonaws.com");
    }
}
