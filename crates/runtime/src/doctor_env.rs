//! `keyward doctor`'s environment section: the variables and connection settings the kickoff
//! would hand the command, and the ones it cannot — reserved keys left out by the server (or
//! still in the plan, from an older server) and values no process environment can hold.

use keyward_core::api::v1::{KickoffPlan, KickoffValue};
use keyward_core::env_keys::reserved;

use crate::doctor_report::{Check, Outcome};

pub(crate) fn checks(plan: &KickoffPlan) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut fail = |step: String, message: String, cause: &str, fix: Option<String>| {
        checks.push(Check {
            step,
            outcome: Outcome::Failed {
                message,
                cause: Some(cause.to_owned()),
                fix,
            },
        });
    };
    let reserved_cause = "a reserved key would let whoever edits variables redirect the federated token or run code in the command";
    for line in &plan.withheld {
        let key = line.split_whitespace().next().unwrap_or_default();
        fail(
            format!("reserved key {key}"),
            line.clone(),
            reserved_cause,
            None,
        );
    }
    let mut vars = 0;
    for var in &plan.env {
        vars += 1;
        if let Some(why) = reserved(&var.key) {
            fail(
                format!("reserved key {}", var.key),
                format!("{} is reserved: {why}", var.key),
                reserved_cause,
                Some(format!(
                    "delete the variable: keyward env delete {}",
                    var.key
                )),
            );
        }
        if let KickoffValue::Value { value } = &var.value
            && value.contains('\0')
        {
            fail(
                format!("value of {}", var.key),
                format!(
                    "the value of {} contains a NUL byte, which no process environment can hold: the command would not start",
                    var.key
                ),
                "a NUL byte in the stored value or the secret it was resolved from",
                Some(format!(
                    "update {} (or its secret) without the NUL byte",
                    var.key
                )),
            );
        }
    }
    let mut settings = 0;
    for connection in &plan.llm_connections {
        for (key, value) in &connection.env {
            settings += 1;
            if let Some(why) = reserved(key) {
                fail(
                    format!("reserved key {key}"),
                    format!(
                        "LLM connection '{}' sets {key}, which is reserved: {why}",
                        connection.name
                    ),
                    reserved_cause,
                    Some(format!(
                        "remove {key} from the env of LLM connection '{}'",
                        connection.name
                    )),
                );
            }
            if value.contains(['\0', '\n', '\r']) {
                fail(
                    format!("value of {key}"),
                    format!(
                        "LLM connection '{}': the value of {key} contains a NUL byte or a line break",
                        connection.name
                    ),
                    "a NUL byte cannot reach a process; a line break would add a line to keyward agent's env file",
                    Some(format!(
                        "make {key} a single line on LLM connection '{}'",
                        connection.name
                    )),
                );
            }
        }
    }
    if checks.is_empty() {
        checks.push(Check {
            step: "environment".into(),
            outcome: Outcome::Ok(format!(
                "{vars} variable(s) and {settings} connection setting(s) can be passed to the command"
            )),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use keyward_core::api::v1::{
        KickoffAutomation, KickoffEnvVar, KickoffLlmConnection, KickoffPlan, KickoffValue,
    };

    use super::checks;
    use crate::doctor::{Outcome, Report};

    fn plan() -> KickoffPlan {
        KickoffPlan {
            kickoff_id: "k".into(),
            automation: KickoffAutomation {
                id: keyward_core::AutomationId::new_random(),
                name: "crew".into(),
            },
            identities: Vec::new(),
            llm_connections: Vec::new(),
            token_ttl: 3600,
            env: Vec::new(),
            withheld: Vec::new(),
        }
    }

    fn render(plan: &KickoffPlan) -> (bool, String) {
        let report = Report {
            sections: vec![("environment".into(), checks(plan))],
        };
        (report.healthy(), report.render())
    }

    #[test]
    fn a_nul_value_and_reserved_keys_are_named() {
        let mut plan = plan();
        plan.env = vec![
            KickoffEnvVar {
                key: "NULVAL".into(),
                value: KickoffValue::Value {
                    value: "a\0b".into(),
                },
            },
            KickoffEnvVar {
                key: "AWS_ENDPOINT_URL_STS".into(),
                value: KickoffValue::Value {
                    value: "https://attacker.example".into(),
                },
            },
            KickoffEnvVar {
                key: "PEM".into(),
                value: KickoffValue::Value {
                    value: "-----BEGIN-----\nabc\n-----END-----".into(),
                },
            },
        ];
        plan.llm_connections = vec![KickoffLlmConnection {
            name: "vertex".into(),
            provider: "vertex".into(),
            model: None,
            workload_identity_config: None,
            env: [("HTTPS_PROXY".to_owned(), "http://attacker".to_owned())].into(),
        }];
        plan.withheld =
            vec!["LD_PRELOAD (environment variable) is reserved and left out: …".into()];
        let (healthy, text) = render(&plan);
        assert!(!healthy, "{text}");
        for needle in [
            "value of NULVAL",
            "reserved key AWS_ENDPOINT_URL_STS",
            "reserved key HTTPS_PROXY",
            "reserved key LD_PRELOAD",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
        assert!(
            !text.contains("PEM"),
            "a multi-line value is fine for run:\n{text}"
        );
    }

    #[test]
    fn a_clean_plan_is_one_ok_line() {
        let mut plan = plan();
        plan.env = vec![KickoffEnvVar {
            key: "DB_HOST".into(),
            value: KickoffValue::Value { value: "db".into() },
        }];
        let (healthy, text) = render(&plan);
        assert!(healthy, "{text}");
        assert!(matches!(checks(&plan)[0].outcome, Outcome::Ok(_)));
    }
}
