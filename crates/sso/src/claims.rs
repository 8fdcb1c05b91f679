//! Who a verified token names, and which application roles it grants.

use serde_json::Value;

/// A person as a verified ID or access token (or SAML assertion) describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Who vouches for the subject: the token's `iss`, or the SAML IdP's entity ID.
    pub issuer: String,
    /// The provider's stable name for the person (`sub`, or the SAML NameID); empty when the
    /// provider gives none that lasts (a transient NameID).
    pub subject: String,
    /// Lower-cased; `None` when the token carries no address. Only the `email` claim counts:
    /// `preferred_username`, `upn` and `unique_name` are names the person or a tenant admin may
    /// choose, not addresses anyone checked.
    pub email: Option<String>,
    /// Whether the provider vouches for `email`: `email_verified` is `true` (a missing claim is
    /// not), or Entra ID's `xms_edov` (the address's domain is verified by the tenant) is.
    pub email_verified: bool,
    /// Application roles and groups, as the provider named them (`member`, `factory-admin` …).
    pub roles: Vec<String>,
}

/// Whether a claim says yes: `true`, `"true"` or `1` (providers disagree on the type).
fn yes(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_str() == Some("true") || v.as_i64() == Some(1)
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
    let issuer = claims["iss"].as_str().unwrap_or("").to_owned();
    let email = claims["email"]
        .as_str()
        .filter(|v| looks_like_email(v))
        .map(|e| e.trim().to_lowercase());
    let email_verified =
        email.is_some() && (yes(&claims["email_verified"]) || yes(&claims["xms_edov"]));
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
        issuer,
        subject,
        email,
        email_verified,
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
    fn only_the_email_claim_is_an_address_and_only_a_vouched_one_is_verified() {
        // Usernames are never taken for addresses.
        let who = identity(
            &json!({"sub": "u", "iss": "https://idp", "preferred_username": "bo@acme.example",
                    "upn": "bo@acme.example", "unique_name": "bo@acme.example"}),
            &[],
        )
        .unwrap();
        assert_eq!((who.email, who.email_verified), (None, false));
        assert_eq!(who.issuer, "https://idp");
        assert!(identity(&json!({"email": "x@y.z"}), &[]).is_err());
        for (claims, verified) in [
            (json!({"sub": "u", "email": "X@y.z"}), false),
            (
                json!({"sub": "u", "email": "X@y.z", "email_verified": false}),
                false,
            ),
            (
                json!({"sub": "u", "email": "X@y.z", "email_verified": "false"}),
                false,
            ),
            (
                json!({"sub": "u", "email": "X@y.z", "email_verified": true}),
                true,
            ),
            (
                json!({"sub": "u", "email": "X@y.z", "email_verified": "true"}),
                true,
            ),
            (
                json!({"sub": "u", "email": "X@y.z", "xms_edov": true}),
                true,
            ),
            (
                json!({"sub": "u", "email": "X@y.z", "xms_edov": "1"}),
                false,
            ),
            (json!({"sub": "u", "email": "X@y.z", "xms_edov": 1}), true),
        ] {
            let who = identity(&claims, &[]).unwrap();
            assert_eq!(who.email.as_deref(), Some("x@y.z"), "{claims}");
            assert_eq!(who.email_verified, verified, "{claims}");
        }
    }
}
