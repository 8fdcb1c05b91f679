//! Who a verified token names, and which application roles it grants.

use serde_json::Value;

/// A person as a verified ID or access token describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// Lower-cased; `None` when the token carries no address.
    pub email: Option<String>,
    /// Application roles and groups, as the provider named them (`member`, `factory-admin` …).
    pub roles: Vec<String>,
}

/// Reads subject, email and roles from verified claims. Roles come from where providers put
/// them: `roles` (Entra ID app roles, Auth0/Okta custom claims), `groups` (Okta),
/// `realm_access.roles` and `resource_access.<client>.roles` (Keycloak).
pub fn identity(claims: &Value, role_clients: &[String]) -> Result<Identity, String> {
    let subject = claims["sub"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("it has no subject (sub)")?
        .to_owned();
    // An address the provider itself marks unverified names nobody: accounts are matched by
    // email, so trusting it would let anyone who types someone's address become them.
    let unverified = claims["email_verified"] == Value::Bool(false)
        || claims["email_verified"] == Value::String("false".into());
    let email = ["email", "preferred_username", "upn", "unique_name"]
        .iter()
        .filter_map(|c| claims[*c].as_str())
        .find(|v| looks_like_email(v))
        .or(Some(subject.as_str()).filter(|s| looks_like_email(s)))
        .filter(|_| !unverified)
        .map(|e| e.trim().to_lowercase());
    let mut roles: Vec<String> = Vec::new();
    let mut take = |v: &Value| {
        let items: Vec<&str> = match v {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        for r in items {
            if !roles.iter().any(|x| x == r) {
                roles.push(r.to_owned());
            }
        }
    };
    take(&claims["roles"]);
    take(&claims["groups"]);
    take(&claims["realm_access"]["roles"]);
    for client in role_clients {
        take(&claims["resource_access"][client.as_str()]["roles"]);
    }
    Ok(Identity {
        subject,
        email,
        roles,
    })
}

fn looks_like_email(v: &str) -> bool {
    let v = v.trim();
    v.len() <= 254
        && !v.contains(char::is_whitespace)
        && v.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_come_from_every_provider_layout() {
        let who = identity(
            &json!({"sub": "u1", "email": "A@Acme.example", "roles": ["member"],
                    "realm_access": {"roles": ["factory-admin", "member"]},
                    "resource_access": {"web": {"roles": ["ops"]}, "other": {"roles": ["x"]}},
                    "groups": "g1 g2"}),
            &["web".to_owned()],
        )
        .unwrap();
        assert_eq!(who.email.as_deref(), Some("a@acme.example"));
        assert_eq!(who.roles, ["member", "g1", "g2", "factory-admin", "ops"]);
    }

    #[test]
    fn email_falls_back_to_username_claims_and_never_invents_one() {
        let who = identity(
            &json!({"sub": "u", "preferred_username": "bo@acme.example"}),
            &[],
        )
        .unwrap();
        assert_eq!(who.email.as_deref(), Some("bo@acme.example"));
        let who = identity(&json!({"sub": "u", "preferred_username": "bo"}), &[]).unwrap();
        assert_eq!(who.email, None);
        assert!(identity(&json!({"email": "x@y.z"}), &[]).is_err());
        let who = identity(
            &json!({"sub": "u", "email": "x@y.z", "email_verified": false}),
            &[],
        )
        .unwrap();
        assert_eq!(who.email, None);
    }
}
