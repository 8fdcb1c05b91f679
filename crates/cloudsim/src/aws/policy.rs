//! IAM as AWS evaluates it for these actions: a role's trust policy (an OIDC provider's claims,
//! or IAM principals with `sts:ExternalId`) and the caller's identity policies, with IAM globs.

use crate::aws::types::AwsSession;
use crate::jwt::Unverified;
use crate::state::{AwsPolicyStatement, AwsRole, AwsState};

/// The declared role an ARN names (a path before the name is allowed).
pub fn find_role<'a>(aws: &'a AwsState, arn: &str) -> Option<&'a AwsRole> {
    let prefix = format!("arn:aws:iam::{}:role/", aws.account_id.get_ref());
    let name = arn.strip_prefix(&prefix)?;
    let name = name.rsplit('/').next()?;
    aws.roles.iter().find(|r| r.name.get_ref() == name)
}

/// The role's trust policy: the federated principal must be this provider, and every condition
/// on `<host>:sub` / `<host>:aud` must hold.
pub fn trusts(aws: &AwsState, role: &AwsRole, host: &str, token: &Unverified) -> bool {
    let principal = format!(
        "arn:aws:iam::{}:oidc-provider/{host}",
        aws.account_id.get_ref()
    );
    if role.trust.federated.as_ref().map(|f| f.get_ref()) != Some(&principal) {
        return false;
    }
    let claim = |key: &str| -> Option<Vec<String>> {
        let name = key.strip_prefix(host)?.strip_prefix(':')?;
        Some(match name {
            "aud" => token.audiences(),
            "sub" => token
                .str_claim("sub")
                .map(|s| vec![s.to_owned()])
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    };
    let equals = role
        .trust
        .string_equals
        .iter()
        .all(|(k, v)| claim(k).is_some_and(|vals| vals.iter().any(|x| x == v.get_ref())));
    let like = role
        .trust
        .string_like
        .iter()
        .all(|(k, v)| claim(k).is_some_and(|vals| vals.iter().any(|x| glob(v.get_ref(), x))));
    equals && like
}

/// The role's trust policy for `AssumeRole`: it names the caller (or the account root), and every
/// condition is an `sts:ExternalId` the request presents.
pub fn trusts_principal(
    aws: &AwsState,
    role: &AwsRole,
    caller: &str,
    external_id: Option<&str>,
) -> bool {
    let root = format!("arn:aws:iam::{}:root", aws.account_id.get_ref());
    let principal_ok = role
        .trust
        .aws
        .iter()
        .any(|p| p.get_ref() == caller || p.get_ref() == &root);
    let condition_ok = role
        .trust
        .string_equals
        .iter()
        .all(|(k, v)| k == "sts:ExternalId" && external_id.is_some_and(|x| x == v.get_ref()))
        && role.trust.string_like.iter().all(|(k, v)| {
            k == "sts:ExternalId" && external_id.is_some_and(|x| glob(v.get_ref(), x))
        });
    principal_ok && condition_ok
}

/// The identity policies of the session's principal: the IAM user's, or the assumed role's.
pub fn policies_of<'a>(
    aws: &'a AwsState,
    session: &AwsSession,
) -> Option<&'a [AwsPolicyStatement]> {
    if session.user {
        aws.users
            .iter()
            .find(|u| u.name.get_ref() == &session.role)
            .map(|u| u.policies.as_slice())
    } else {
        aws.roles
            .iter()
            .find(|r| r.name.get_ref() == &session.role)
            .map(|r| r.policies.as_slice())
    }
}

/// Whether one of the statements allows the action (named case-insensitively, as IAM does) on the
/// resource.
pub fn allowed(policies: &[AwsPolicyStatement], action: &str, resource: &str) -> bool {
    policies.iter().any(|st| {
        st.actions.iter().any(|a| {
            glob(
                &a.get_ref().to_ascii_lowercase(),
                &action.to_ascii_lowercase(),
            )
        }) && st.resources.iter().any(|r| glob(r.get_ref(), resource))
    })
}

/// IAM wildcard match: `*` any run, `?` one character; case-sensitive as resource ARNs are.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn iam_globs() {
        assert!(glob(
            "arn:aws:secretsmanager:us-east-1:1:secret:demo-*",
            "arn:aws:secretsmanager:us-east-1:1:secret:demo-key-AbC123"
        ));
        assert!(!glob(
            "arn:aws:secretsmanager:us-east-1:1:secret:demo-*",
            "arn:aws:secretsmanager:us-east-1:1:secret:prod-key-AbC123"
        ));
        assert!(glob("*", "*"));
        assert!(
            !glob("arn:aws:secretsmanager:*", "*"),
            "ListSecrets needs Resource \"*\""
        );
        assert!(glob("organization:?bc", "organization:abc"));
    }
}
