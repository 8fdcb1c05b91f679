//! Identifier newtypes, so an organization id can never be passed where an automation id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) identifier.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An organization: the security boundary carried in every federated token.
    OrgId
);
uuid_id!(
    /// A person's account.
    UserId
);
uuid_id!(
    /// A deployed crew or flow.
    AutomationId
);
uuid_id!(
    /// A personal access token or an automation token (the record, never the secret).
    TokenId
);
uuid_id!(
    /// A workload identity config: one cloud identity an automation can federate to.
    WorkloadIdentityConfigId
);
uuid_id!(
    /// An LLM connection.
    LlmConnectionId
);
uuid_id!(
    /// A secret provider credential.
    SecretProviderId
);
uuid_id!(
    /// An environment variable of an organization.
    EnvVarId
);
uuid_id!(
    /// A role of an organization (Owner, Member or a custom one).
    RoleId
);
uuid_id!(
    /// A gateway route stored through the API.
    GatewayRouteId
);
uuid_id!(
    /// A just-in-time approval request (SPEC §9).
    ApprovalId
);

impl ApprovalId {
    /// A fresh time-ordered (v7) identifier: requests created in the same second still list
    /// newest first (`ORDER BY created_at DESC, id DESC`).
    pub fn new_ordered() -> Self {
        Self(Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_ids_made_one_after_another_sort_in_that_order() {
        let ids: Vec<String> = (0..100)
            .map(|_| ApprovalId::new_ordered().to_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = OrgId::new_random();
        let parsed: OrgId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
    }

    #[test]
    fn numeric_org_ids_are_not_uuids() {
        assert!("4711".parse::<OrgId>().is_err());
    }
}
