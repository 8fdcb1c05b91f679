//! `keyward doctor`: walks each identity's chain the way a kickoff and the crew's SDKs would —
//! platform, token, issuer discovery and JWKS, exchange, impersonation or caller identity, the
//! model call — and reports each step, naming the cause and the fix of the first that fails.

use std::time::Duration;

use base64::Engine;
use keyward_cloud::{CloudError, Clouds, Deadline, aws, azure};
use keyward_core::api::v1::{KickoffIdentity, KickoffPlan};
use serde_json::Value;

pub use crate::doctor_report::{Check, Outcome, Report};
use crate::{Platform, RuntimeError};

const STEP_DEADLINE: Duration = Duration::from_secs(30);

struct Walk {
    checks: Vec<Check>,
    failed: bool,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            checks: Vec::new(),
            failed: false,
        }
    }

    /// Records a step; after a failure the remaining steps are skipped.
    fn step<T>(&mut self, step: &str, result: Result<(T, String), Outcome>) -> Option<T> {
        match result {
            Ok((value, detail)) => {
                self.checks.push(Check {
                    step: step.into(),
                    outcome: Outcome::Ok(detail),
                });
                Some(value)
            }
            Err(outcome) => {
                self.failed = true;
                self.checks.push(Check {
                    step: step.into(),
                    outcome,
                });
                None
            }
        }
    }

    fn skip_rest(&mut self, steps: &[&str]) {
        for step in steps {
            self.checks.push(Check {
                step: (*step).into(),
                outcome: Outcome::Skipped("an earlier step failed"),
            });
        }
    }
}

fn cloud_failure(e: CloudError) -> Outcome {
    match e.refusal() {
        Some(r) => Outcome::Failed {
            message: format!("HTTP {} {}: {}", r.status, r.code, r.message),
            cause: Some(r.cause.summary().to_owned()),
            fix: Some(r.cause.fix().to_owned()),
        },
        None => Outcome::Failed {
            // The cause and fix have their own lines in the report: once, not twice.
            message: e.headline(),
            cause: e.cause().map(|c| c.summary().to_owned()),
            fix: e.cause().map(|c| c.fix().to_owned()),
        },
    }
}

fn platform_failure(e: RuntimeError) -> Outcome {
    Outcome::Failed {
        message: e.to_string(),
        cause: None,
        fix: None,
    }
}

/// Runs every check for the automation behind `platform`'s token.
pub async fn diagnose(platform: &Platform, clouds: &Clouds, automation: Option<&str>) -> Report {
    let mut report = Report::default();
    let mut walk = Walk::new();
    let plan = walk.step(
        "platform reachable, kickoff plan",
        platform
            .kickoff()
            .await
            .map_err(platform_failure)
            .and_then(|plan| match automation {
                Some(expected) if expected != plan.automation.name => Err(Outcome::Failed {
                    message: format!(
                        "the automation token belongs to automation '{}', not '{expected}'",
                        plan.automation.name
                    ),
                    cause: None,
                    fix: Some("use that automation's token (KEYWARD_AUTOMATION_TOKEN)".into()),
                }),
                _ => Ok(plan),
            })
            .map(|plan| {
                let detail = format!(
                    "automation '{}', {} identit{}",
                    plan.automation.name,
                    plan.identities.len(),
                    if plan.identities.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                );
                (plan, detail)
            }),
    );
    report.sections.push(("Keyward".into(), walk.checks));
    let Some(plan) = plan else {
        return report;
    };
    report
        .sections
        .push(("environment".into(), crate::doctor_env::checks(&plan)));
    if plan.identities.is_empty() {
        report.sections.push((
            "identities".into(),
            vec![Check {
                step: "workload identity".into(),
                outcome: Outcome::Failed {
                    message: "the kickoff plan has no workload identity".into(),
                    cause: Some("no config is the default for its cloud, restricted to this automation, or used by one of its LLM connections".into()),
                    fix: Some("create a workload identity config (keyward wi create or POST /api/v1/workload-identity-configs) with default_for_cloud, or attach one to the automation's LLM connection".into()),
                },
            }],
        ));
        return report;
    }
    for identity in &plan.identities {
        let title = format!(
            "{} — workload identity config '{}'",
            identity.cloud, identity.config
        );
        let checks = walk_identity(platform, clouds, &plan, identity).await;
        report.sections.push((title, checks));
    }
    report
}

async fn walk_identity(
    platform: &Platform,
    clouds: &Clouds,
    plan: &KickoffPlan,
    identity: &KickoffIdentity,
) -> Vec<Check> {
    let mut walk = Walk::new();
    let token = walk.step(
        "token minted",
        platform
            .mint(identity.config_id, &plan.kickoff_id)
            .await
            .map(|m| {
                // The sub is what the cloud trust must name (Entra subject, AWS sub condition,
                // GCP attribute condition): an `automation`-subject config's differs per automation.
                let sub = jwt_claims(&m.token)
                    .and_then(|c| c["sub"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let detail = format!("aud {}, sub {sub}", m.audience);
                (m.token, detail)
            })
            .map_err(platform_failure),
    );
    let later: &[&str] = match identity.cloud.as_str() {
        "gcp" => &[
            "issuer discovery and JWKS",
            "STS token exchange",
            "service account impersonation",
            "Vertex generateContent",
        ],
        "azure" => &["issuer discovery and JWKS", "Entra client-assertion token"],
        _ => &[
            "issuer discovery and JWKS",
            "AssumeRoleWithWebIdentity",
            "GetCallerIdentity",
        ],
    };
    let Some(token) = token else {
        walk.skip_rest(later);
        return walk.checks;
    };
    let issuer = walk.step(
        "issuer discovery and JWKS",
        issuer_check(platform, &token).await,
    );
    if issuer.is_none() {
        walk.skip_rest(&later[1..]);
        return walk.checks;
    }
    let deadline = || Deadline::after(STEP_DEADLINE);
    match identity.cloud.as_str() {
        "gcp" => {
            let g = clouds.gcp();
            let federated = walk.step(
                "STS token exchange",
                g.exchange(&identity.audience, &token, &deadline())
                    .await
                    .map(|t| (t, "federated access token issued".to_owned()))
                    .map_err(cloud_failure),
            );
            let Some(federated) = federated else {
                walk.skip_rest(&later[2..]);
                return walk.checks;
            };
            let Some(sa) = &identity.service_account_email else {
                walk.checks.push(Check {
                    step: "service account impersonation".into(),
                    outcome: Outcome::Skipped("no service account on the LLM connection"),
                });
                return walk.checks;
            };
            let impersonated = walk.step(
                "service account impersonation",
                g.generate_access_token(&federated, sa, Duration::from_secs(600), &deadline())
                    .await
                    .map(|t| (t, format!("access token for {sa}")))
                    .map_err(cloud_failure),
            );
            let Some(impersonated) = impersonated else {
                walk.skip_rest(&later[3..]);
                return walk.checks;
            };
            let location = plan
                .llm_connections
                .iter()
                .find_map(|c| c.env.get("GOOGLE_CLOUD_LOCATION").cloned());
            let Some(location) = location else {
                walk.step::<()>(
                    "Vertex generateContent",
                    Err(Outcome::Failed {
                        message: "GOOGLE_CLOUD_LOCATION is not set on the LLM connection".into(),
                        cause: Some("Vertex calls fail with region/location errors".into()),
                        fix: Some("add GOOGLE_CLOUD_LOCATION (global is the recommended default) to the connection's env".into()),
                    }),
                );
                return walk.checks;
            };
            let project = identity.project_number.clone().unwrap_or_default();
            let model = plan
                .llm_connections
                .iter()
                .find_map(|c| c.model.clone())
                .map(|m| m.trim_start_matches("google/").to_owned())
                .unwrap_or_else(|| "gemini-2.0-flash".into());
            walk.step(
                "Vertex generateContent",
                g.generate_content(
                    &impersonated,
                    &project,
                    &location,
                    &model,
                    "ping",
                    &deadline(),
                )
                .await
                .map(|_| ((), format!("{model} in {location} answered")))
                .map_err(cloud_failure),
            );
        }
        "azure" => {
            walk.step(
                "Entra client-assertion token",
                clouds
                    .azure()
                    .token(
                        identity.tenant_id.as_deref().unwrap_or_default(),
                        identity.client_id.as_deref().unwrap_or_default(),
                        &token,
                        azure::VAULT_SCOPE,
                        &deadline(),
                    )
                    .await
                    .map(|_| ((), "vault-scoped access token issued".to_owned()))
                    .map_err(cloud_failure),
            );
        }
        _ => {
            let aws = clouds.aws(aws::region_or_default(identity.region.as_deref()));
            let session = format!(
                "keyward-doctor-{}",
                &plan.kickoff_id[..8.min(plan.kickoff_id.len())]
            );
            let creds = walk.step(
                "AssumeRoleWithWebIdentity",
                aws.assume_role_with_web_identity(
                    identity.role_arn.as_deref().unwrap_or_default(),
                    &session,
                    &token,
                    None,
                    &deadline(),
                )
                .await
                .map(|c| {
                    let detail = format!("assumed {}", c.assumed_role_arn);
                    (c, detail)
                })
                .map_err(cloud_failure),
            );
            let Some(creds) = creds else {
                walk.skip_rest(&later[2..]);
                return walk.checks;
            };
            walk.step(
                "GetCallerIdentity",
                aws.get_caller_identity(&creds, &deadline())
                    .await
                    .map(|me| ((), format!("account {}", me.account)))
                    .map_err(cloud_failure),
            );
        }
    }
    walk.checks
}

/// The claims of a JWT, unverified (for display).
fn jwt_claims(token: &str) -> Option<Value> {
    let raw = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a cloud fetches: the token's issuer's discovery document, its JWKS, and the token's
/// key in it.
async fn issuer_check(platform: &Platform, token: &str) -> Result<((), String), Outcome> {
    let fail = |message: String, cause: &str, fix: &str| Outcome::Failed {
        message,
        cause: Some(cause.into()),
        fix: Some(fix.into()),
    };
    let part = |i: usize| -> Option<Value> {
        let raw = token.split('.').nth(i)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let (Some(header), Some(claims)) = (part(0), part(1)) else {
        return Err(fail(
            "the minted token is not a JWT".into(),
            "Keyward answered with something else",
            "check the server version",
        ));
    };
    let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
    let kid = header["kid"].as_str().unwrap_or_default().to_owned();
    let unreachable = "the cloud cannot fetch the issuer's OIDC discovery document or JWKS";
    let reach = "confirm the issuer URL (OIDC_ISSUER / KEYWARD_PUBLIC_URL) is Keyward's public https URL, reachable from the cloud, and that /.well-known/openid-configuration and /oauth2/jwks return 200";
    let discovery = platform
        .get_json(&format!("{iss}/.well-known/openid-configuration"))
        .await
        .map_err(|e| fail(e.to_string(), unreachable, reach))?;
    if discovery["issuer"].as_str() != Some(iss.as_str()) {
        return Err(fail(
            format!(
                "discovery names issuer {} but tokens carry {iss}",
                discovery["issuer"]
            ),
            "the issuer in discovery and in tokens differ; every cloud refuses such tokens",
            "set OIDC_ISSUER to the one public URL and restart Keyward",
        ));
    }
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let jwks = platform
        .get_json(&jwks_uri)
        .await
        .map_err(|e| fail(e.to_string(), unreachable, reach))?;
    let published = jwks["keys"]
        .as_array()
        .is_some_and(|keys| keys.iter().any(|k| k["kid"].as_str() == Some(kid.as_str())));
    if !published {
        return Err(fail(
            format!("the token's key {kid} is not in {jwks_uri}"),
            "the token is signed by a key the issuer does not publish",
            "check key rotation (keyward keys list): a key must be published before it signs",
        ));
    }
    Ok(((), format!("{iss} publishes key {kid}")))
}
