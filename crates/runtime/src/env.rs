//! What each cloud's standard SDK reads (SPEC §5 step 3): the GCP `external_account` ADC file and
//! the environment for the Google, Azure and AWS SDKs, with every URL pointed at the endpoints
//! file when one is given. Pure functions: the caller writes the files and spawns the child.

use std::collections::BTreeMap;
use std::path::Path;

use keyward_core::api::v1::{KickoffIdentity, KickoffPlan};
use keyward_core::endpoints::EndpointsFile;
use serde_json::{Value, json};

/// Variables that would make an SDK's default chain pick a static credential over the
/// federated one, or that the child must never hold.
const REMOVED: &[&str] = &[
    "GOOGLE_API_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
];

/// The `KEYWARD_*` settings the child may inherit: addresses and switches, no secrets. Every
/// other `KEYWARD_*` (the automation token, a person's `KEYWARD_TOKEN`, the bootstrap token,
/// the master key, the database URL…) stays with `keyward run` (trial B2).
const PASSED_KEYWARD: &[&str] = &[
    "KEYWARD_URL",
    "KEYWARD_CA_FILE",
    "KEYWARD_LOG",
    "KEYWARD_ORG",
    "KEYWARD_CLOUD_ENDPOINTS",
];

/// The prefixes of the secrets Keyward issues: tokens, setup links, sessions, invitations and
/// device codes.
const SECRET_PREFIXES: &[&str] = &["kwp_", "kwa_", "kws_", "kwsess_", "kwi_", "kwdc_"];

/// Whether `value` holds something shaped like a Keyward secret: one of its prefixes at the
/// start, or inside the value (`Bearer kwp_…`, a URL) followed by at least 16 token characters.
pub fn looks_like_keyward_secret(value: &str) -> bool {
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    SECRET_PREFIXES.iter().any(|prefix| {
        value.starts_with(prefix)
            || value.match_indices(prefix).any(|(at, _)| {
                let boundary = value[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !token_char(c));
                let body = value[at + prefix.len()..]
                    .chars()
                    .take_while(|c| token_char(*c))
                    .count();
                boundary && body >= 16
            })
    })
}

/// What the child does not inherit from `keyward run`'s own environment.
fn withheld(key: &str, value: &str) -> bool {
    REMOVED.contains(&key)
        || (key.starts_with("KEYWARD_") && !PASSED_KEYWARD.contains(&key))
        || looks_like_keyward_secret(value)
}

/// A key from the kickoff plan that is reserved (H4): the API refuses them, so only a row stored
/// before that can hold one. Skipped, with a warning naming it.
fn reserved_from_plan(key: &str, source: &str) -> bool {
    let Some(why) = keyward_core::env_keys::reserved(key) else {
        return false;
    };
    tracing::warn!("skipped {key} from {source}: the key is reserved ({why})");
    true
}

/// The file name of an identity's token inside the token directory.
pub fn token_file_name(identity: &KickoffIdentity) -> String {
    format!("{}-token.jwt", identity.cloud)
}

/// The `external_account` credentials google-auth reads from `GOOGLE_APPLICATION_CREDENTIALS`.
pub fn adc_json(identity: &KickoffIdentity, token_file: &Path, endpoints: &EndpointsFile) -> Value {
    let mut adc = json!({
        "type": "external_account",
        "audience": identity.audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", endpoints.gcp_sts()),
        "credential_source": {"file": token_file.display().to_string(), "format": {"type": "text"}},
    });
    if let Some(sa) = &identity.service_account_email {
        adc["service_account_impersonation_url"] = json!(format!(
            "{}/v1/projects/-/serviceAccounts/{sa}:generateAccessToken",
            endpoints.gcp_iam_credentials()
        ));
    }
    adc
}

/// Paths the environment refers to.
pub struct Paths<'a> {
    /// Token file per cloud (`gcp`, `azure`, `aws`).
    pub tokens: &'a BTreeMap<String, std::path::PathBuf>,
    pub adc: Option<&'a Path>,
    /// System roots plus the endpoints file's CA, when one is given.
    pub ca_bundle: Option<&'a Path>,
}

/// The child's environment: the parent's, minus static credentials and Keyward's secrets; then
/// the LLM connections' env and the assigned variables (`assigned`), minus reserved keys; then,
/// last so nothing overrides them, each identity's variables and the CA bundle.
pub fn child_env(
    parent: impl IntoIterator<Item = (String, String)>,
    plan: &KickoffPlan,
    assigned: impl IntoIterator<Item = (String, String)>,
    paths: &Paths<'_>,
    endpoints: Option<&EndpointsFile>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = parent
        .into_iter()
        .filter(|(k, v)| !withheld(k, v))
        .collect();
    for connection in &plan.llm_connections {
        let source = format!("LLM connection '{}'", connection.name);
        for (k, v) in &connection.env {
            if !reserved_from_plan(k, &source) {
                env.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in assigned {
        if !reserved_from_plan(&k, "the automation's environment variables") {
            env.insert(k, v);
        }
    }
    let session = format!(
        "keyward-{}-{}",
        plan.automation.name,
        plan.kickoff_id.get(..8).unwrap_or(&plan.kickoff_id)
    );
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_owned(), v.to_owned());
    };
    for identity in &plan.identities {
        let token = paths
            .tokens
            .get(&identity.cloud)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match identity.cloud.as_str() {
            "gcp" => {
                if let Some(adc) = paths.adc {
                    set("GOOGLE_APPLICATION_CREDENTIALS", &adc.display().to_string());
                }
                if let Some(number) = &identity.project_number {
                    set("GOOGLE_CLOUD_PROJECT", number);
                }
            }
            "azure" => {
                set("AZURE_FEDERATED_TOKEN_FILE", &token);
                set(
                    "AZURE_TENANT_ID",
                    identity.tenant_id.as_deref().unwrap_or_default(),
                );
                set(
                    "AZURE_CLIENT_ID",
                    identity.client_id.as_deref().unwrap_or_default(),
                );
                if let Some(host) = endpoints.and_then(|e| e.azure.as_ref()?.authority_host.clone())
                {
                    set("AZURE_AUTHORITY_HOST", &host);
                }
            }
            "aws" => {
                set("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
                set(
                    "AWS_ROLE_ARN",
                    identity.role_arn.as_deref().unwrap_or_default(),
                );
                set("AWS_ROLE_SESSION_NAME", &session_name(&session));
                if let Some(region) = &identity.region {
                    set("AWS_REGION", region);
                    set("AWS_DEFAULT_REGION", region);
                }
                if let Some(e) = endpoints {
                    set("AWS_ENDPOINT_URL_STS", &e.aws_sts());
                    let region = keyward_cloud::aws::region_or_default(identity.region.as_deref());
                    set(
                        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                        &e.aws_secrets_manager(region),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(bundle) = paths.ca_bundle {
        let bundle = bundle.display().to_string();
        for k in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "AWS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
        ] {
            set(k, &bundle);
        }
    }
    env
}

/// AWS allows `[\w+=,.@-]{2,64}` in a role session name.
fn session_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.len() < 2 {
        "keyward".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use keyward_core::api::v1::{KickoffAutomation, KickoffLlmConnection};

    use super::*;

    fn plan() -> KickoffPlan {
        let base = KickoffIdentity {
            config_id: keyward_core::WorkloadIdentityConfigId::new_random(),
            config: String::new(),
            cloud: String::new(),
            audience: String::new(),
            provider: None,
            project_number: None,
            service_account_email: None,
            tenant_id: None,
            client_id: None,
            role_arn: None,
            region: None,
        };
        KickoffPlan {
            kickoff_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            automation: KickoffAutomation {
                id: keyward_core::AutomationId::new_random(),
                name: "research crew".into(),
            },
            identities: vec![
                KickoffIdentity {
                    cloud: "gcp".into(),
                    config: "gcp-prod".into(),
                    audience: "//iam.googleapis.com/projects/1234/locations/global/workloadIdentityPools/p/providers/x".into(),
                    project_number: Some("1234".into()),
                    service_account_email: Some("sa@p.iam.gserviceaccount.com".into()),
                    ..base.clone()
                },
                KickoffIdentity {
                    cloud: "azure".into(),
                    tenant_id: Some("t".into()),
                    client_id: Some("c".into()),
                    ..base.clone()
                },
                KickoffIdentity {
                    cloud: "aws".into(),
                    role_arn: Some("arn:aws:iam::123456789012:role/r".into()),
                    region: Some("eu-west-1".into()),
                    ..base
                },
            ],
            llm_connections: vec![KickoffLlmConnection {
                name: "vertex".into(),
                provider: "vertex".into(),
                model: None,
                workload_identity_config: None,
                env: [
                    ("GOOGLE_CLOUD_LOCATION".to_owned(), "global".to_owned()),
                    ("GOOGLE_API_KEY".to_owned(), "never".to_owned()),
                ]
                .into(),
            }],
            token_ttl: 3600,
            env: Vec::new(),
            withheld: Vec::new(),
        }
    }

    #[test]
    fn the_environment_points_each_sdk_at_its_federated_identity_and_drops_static_keys() {
        let tokens: BTreeMap<String, PathBuf> = ["gcp", "azure", "aws"]
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    PathBuf::from(format!("/run/k/{c}-token.jwt")),
                )
            })
            .collect();
        let adc = PathBuf::from("/run/k/adc.json");
        let parent = [
            ("PATH", "/usr/bin"),
            ("AWS_ACCESS_KEY_ID", "AKIASTATIC"),
            ("GOOGLE_API_KEY", "AIza"),
            ("KEYWARD_AUTOMATION_TOKEN", "kwa_secret"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let env = child_env(
            parent,
            &plan(),
            Vec::new(),
            &Paths {
                tokens: &tokens,
                adc: Some(&adc),
                ca_bundle: None,
            },
            None,
        );
        assert_eq!(env["PATH"], "/usr/bin");
        for gone in [
            "AWS_ACCESS_KEY_ID",
            "GOOGLE_API_KEY",
            "KEYWARD_AUTOMATION_TOKEN",
            "AZURE_CLIENT_SECRET",
        ] {
            assert!(!env.contains_key(gone), "{gone} must not reach the child");
        }
        assert_eq!(env["GOOGLE_APPLICATION_CREDENTIALS"], "/run/k/adc.json");
        assert_eq!(env["GOOGLE_CLOUD_PROJECT"], "1234");
        assert_eq!(env["GOOGLE_CLOUD_LOCATION"], "global");
        assert_eq!(env["AZURE_FEDERATED_TOKEN_FILE"], "/run/k/azure-token.jwt");
        assert_eq!(
            (
                env["AZURE_TENANT_ID"].as_str(),
                env["AZURE_CLIENT_ID"].as_str()
            ),
            ("t", "c")
        );
        assert_eq!(env["AWS_WEB_IDENTITY_TOKEN_FILE"], "/run/k/aws-token.jwt");
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(
            env["AWS_ROLE_SESSION_NAME"],
            "keyward-research-crew-0f8fad5b"
        );
        for absent in [
            "AZURE_AUTHORITY_HOST",
            "AWS_ENDPOINT_URL_STS",
            "SSL_CERT_FILE",
        ] {
            assert!(
                !env.contains_key(absent),
                "{absent} is only set for an endpoints file"
            );
        }
    }

    #[test]
    fn an_endpoints_file_redirects_every_url_and_the_ca_bundle() {
        let endpoints = EndpointsFile::from_json(
            r#"{"gcp": {"sts_url": "https://127.0.0.1:9", "iam_credentials_url": "https://127.0.0.1:9"},
                "azure": {"authority_host": "https://127.0.0.1:9"},
                "aws": {"sts_url": "https://127.0.0.1:9", "secrets_manager_url": "https://127.0.0.1:9"}}"#,
        )
        .unwrap();
        let plan = plan();
        let adc = adc_json(
            &plan.identities[0],
            Path::new("/run/k/gcp-token.jwt"),
            &endpoints,
        );
        assert_eq!(adc["token_url"], "https://127.0.0.1:9/v1/token");
        assert_eq!(
            adc["service_account_impersonation_url"],
            "https://127.0.0.1:9/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
        );
        assert_eq!(
            adc["credential_source"],
            json!({"file": "/run/k/gcp-token.jwt", "format": {"type": "text"}})
        );
        let real = adc_json(
            &plan.identities[0],
            Path::new("/t"),
            &EndpointsFile::default(),
        );
        assert_eq!(real["token_url"], "https://sts.googleapis.com/v1/token");

        let tokens = BTreeMap::new();
        let bundle = PathBuf::from("/run/k/ca-bundle.pem");
        let env = child_env(
            Vec::new(),
            &plan,
            Vec::new(),
            &Paths {
                tokens: &tokens,
                adc: None,
                ca_bundle: Some(&bundle),
            },
            Some(&endpoints),
        );
        assert_eq!(env["AZURE_AUTHORITY_HOST"], "https://127.0.0.1:9");
        assert_eq!(env["AWS_ENDPOINT_URL_STS"], "https://127.0.0.1:9");
        assert_eq!(
            env["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
            "https://127.0.0.1:9"
        );
        for k in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"] {
            assert_eq!(env[k], "/run/k/ca-bundle.pem");
        }
    }

    #[test]
    fn reserved_keys_from_the_plan_never_reach_the_child_and_the_runtimes_values_win() {
        let tokens: BTreeMap<String, PathBuf> = [("aws", "/run/k/aws-token.jwt")]
            .iter()
            .map(|(c, p)| (c.to_string(), PathBuf::from(p)))
            .collect();
        let adc = PathBuf::from("/run/k/adc.json");
        let bundle = PathBuf::from("/run/k/ca-bundle.pem");
        let endpoints = EndpointsFile::from_json(
            r#"{"aws": {"sts_url": "https://127.0.0.1:9", "secrets_manager_url": "https://127.0.0.1:9"},
                "azure": {"authority_host": "https://127.0.0.1:9"}}"#,
        )
        .unwrap();
        let mut plan = plan();
        // As a connection and variables stored before the keys were reserved (trial B1).
        plan.llm_connections[0].env.extend(
            [
                ("AZURE_AUTHORITY_HOST", "https://attacker.example"),
                ("https_proxy", "http://attacker.example:3128"),
                ("AWS_ROLE_ARN", "arn:aws:iam::666666666666:role/attacker"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let assigned = [
            ("AWS_ENDPOINT_URL_STS", "https://attacker.example"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/tmp/attacker-token"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/shadow"),
            ("SSL_CERT_FILE", "/tmp/attacker-ca.pem"),
            ("PATH", "/tmp/evil"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("KEYWARD_AUTOMATION_TOKEN", "kwa_planted"),
            ("AWS_ACCESS_KEY_ID", "AKIAPLANTED"),
            ("GOOGLE_API_KEY", "AIza-planted"),
            ("LOG_LEVEL", "debug"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let parent = [("PATH", "/usr/bin")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let env = child_env(
            parent,
            &plan,
            assigned,
            &Paths {
                tokens: &tokens,
                adc: Some(&adc),
                ca_bundle: Some(&bundle),
            },
            Some(&endpoints),
        );
        assert_eq!(env["LOG_LEVEL"], "debug", "ordinary variables pass");
        assert_eq!(env["GOOGLE_CLOUD_LOCATION"], "global");
        assert_eq!(
            env["PATH"], "/usr/bin",
            "the host's own PATH, not the plan's"
        );
        assert_eq!(env["AWS_ENDPOINT_URL_STS"], "https://127.0.0.1:9");
        assert_eq!(env["AZURE_AUTHORITY_HOST"], "https://127.0.0.1:9");
        assert_eq!(env["AWS_WEB_IDENTITY_TOKEN_FILE"], "/run/k/aws-token.jwt");
        assert_eq!(env["AWS_ROLE_ARN"], "arn:aws:iam::123456789012:role/r");
        assert_eq!(env["GOOGLE_APPLICATION_CREDENTIALS"], "/run/k/adc.json");
        assert_eq!(env["SSL_CERT_FILE"], "/run/k/ca-bundle.pem");
        for gone in [
            "https_proxy",
            "LD_PRELOAD",
            "KEYWARD_AUTOMATION_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "GOOGLE_API_KEY",
        ] {
            assert!(!env.contains_key(gone), "{gone} must not reach the child");
        }
        assert!(
            !env.values()
                .any(|v| v.contains("attacker") || v.contains("evil")),
            "{env:?}"
        );
    }

    #[test]
    fn keywards_own_secrets_stay_with_keyward_run() {
        let tokens = BTreeMap::new();
        let pat = format!("kwp_{}", "a".repeat(43));
        let header = format!("Authorization: Bearer {pat}");
        let parent = [
            ("KEYWARD_TOKEN", "kwp_x"),
            ("KEYWARD_BOOTSTRAP_TOKEN", "kwp_bootstrap"),
            ("KEYWARD_AUTOMATION_TOKEN", "kwa_x"),
            ("KEYWARD_MASTER_KEY", "bWFzdGVy"),
            ("KEYWARD_DATABASE_URL", "postgres://u:pw@db/k"),
            ("SAVED", pat.as_str()),
            ("HEADER", header.as_str()),
            ("SESSION", "kwsess_abc"),
            ("KEYWARD_URL", "https://keyward.example"),
            ("KEYWARD_CA_FILE", "/etc/keyward/ca.pem"),
            ("NOTE", "the kwp_ prefix marks a personal token"),
            ("HOME", "/home/crew"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let env = child_env(
            parent,
            &plan(),
            Vec::new(),
            &Paths {
                tokens: &tokens,
                adc: None,
                ca_bundle: None,
            },
            None,
        );
        for gone in [
            "KEYWARD_TOKEN",
            "KEYWARD_BOOTSTRAP_TOKEN",
            "KEYWARD_AUTOMATION_TOKEN",
            "KEYWARD_MASTER_KEY",
            "KEYWARD_DATABASE_URL",
            "SAVED",
            "HEADER",
            "SESSION",
        ] {
            assert!(!env.contains_key(gone), "{gone} must not reach the child");
        }
        for kept in ["KEYWARD_URL", "KEYWARD_CA_FILE", "NOTE", "HOME"] {
            assert!(env.contains_key(kept), "{kept} is not a secret");
        }
    }

    #[test]
    fn secret_shapes_are_recognised_without_catching_prose() {
        let body = "Zm9vYmFyYmF6cXV4cXV1eA";
        for value in [
            "kwp_x".to_owned(),
            format!("kwa_{body}"),
            format!("Bearer kwsess_{body}"),
            format!("https://k.example/setup#token=kws_{body}"),
            format!("x,kwi_{body}"),
            format!("kwdc_{body}"),
        ] {
            assert!(looks_like_keyward_secret(&value), "{value}");
        }
        for value in [
            "",
            "debug",
            "the kwp_ prefix",
            "mykwp_Zm9vYmFyYmF6cXV4cXV1eA",
            "kwp",
        ] {
            assert!(!looks_like_keyward_secret(value), "{value}");
        }
    }
}
