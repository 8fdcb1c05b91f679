//! The `sub` claim of workload tokens (SPEC §3): the organization's, or — opted in per workload
//! identity config — one automation's (security review H3).

use std::fmt;

use crate::workload::WorkloadError;
use crate::{AutomationId, OrgId};

/// The `sub` a config's tokens carry (SPEC §3). `Organization` is the reference's
/// `organization:<org>`; `Automation` appends the minting automation's id, so the cloud-side trust
/// (Entra federated credential, AWS `sub` condition, GCP attribute condition) can admit one
/// automation only — without it a config's `automations` list is enforced by Keyward alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SubjectMode {
    #[default]
    Organization,
    Automation,
}

impl SubjectMode {
    pub fn parse(value: &str) -> Result<SubjectMode, WorkloadError> {
        match value {
            "organization" => Ok(SubjectMode::Organization),
            "automation" => Ok(SubjectMode::Automation),
            other => Err(WorkloadError::UnknownSubject {
                value: other.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectMode::Organization => "organization",
            SubjectMode::Automation => "automation",
        }
    }

    /// The `sub` claim for a token of `org` minted by `automation`. The automation is always the
    /// caller's own, so a finer subject can never name another automation.
    pub fn subject(self, org: OrgId, automation: AutomationId) -> String {
        match self {
            SubjectMode::Organization => organization_subject(org),
            SubjectMode::Automation => format!("organization:{org}:automation:{automation}"),
        }
    }
}

impl fmt::Display for SubjectMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `organization:<org>`: the subject of every token not minted through an `automation`-subject
/// config.
pub fn organization_subject(org: OrgId) -> String {
    format!("organization:{org}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automation_subject_names_the_org_and_the_caller() {
        let org = OrgId::new_random();
        let automation = AutomationId::new_random();
        assert_eq!(
            SubjectMode::default().subject(org, automation),
            format!("organization:{org}")
        );
        assert_eq!(
            SubjectMode::parse("automation")
                .unwrap()
                .subject(org, automation),
            format!("organization:{org}:automation:{automation}")
        );
        let err = SubjectMode::parse("config").unwrap_err();
        assert_eq!(err.field(), "subject");
        assert!(err.to_string().contains("'automation'"), "{err}");
    }
}
