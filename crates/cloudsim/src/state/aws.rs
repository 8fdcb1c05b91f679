//! The `[aws]` section: the account, its OIDC providers, roles with trust and identity policies,
//! IAM users with access keys, and Secrets Manager secrets.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::check::{Checker, S, SecretDecl};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsState {
    pub account_id: S<String>,
    pub region: S<String>,
    #[serde(default)]
    pub oidc_providers: Vec<AwsOidcProvider>,
    #[serde(default)]
    pub roles: Vec<AwsRole>,
    /// IAM users with long-lived access keys (the static-credentials path).
    #[serde(default)]
    pub users: Vec<AwsUser>,
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsUser {
    pub name: S<String>,
    pub access_key_id: S<String>,
    pub secret_access_key: S<String>,
    #[serde(default)]
    pub policies: Vec<AwsPolicyStatement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsOidcProvider {
    pub url: S<String>,
    pub client_ids: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsRole {
    pub name: S<String>,
    pub trust: AwsTrust,
    #[serde(default)]
    pub policies: Vec<AwsPolicyStatement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsTrust {
    /// `arn:aws:iam::<account>:oidc-provider/<issuer host and path>`
    #[serde(default)]
    pub federated: Option<S<String>>,
    /// IAM principals allowed to call `sts:AssumeRole` (user ARNs or the account root).
    #[serde(default)]
    pub aws: Vec<S<String>>,
    /// `StringEquals` conditions, keyed `<issuer host>:sub` / `<issuer host>:aud`, or
    /// `sts:ExternalId` for AWS principals.
    #[serde(default)]
    pub string_equals: BTreeMap<String, S<String>>,
    /// `StringLike` conditions (`*` and `?` wildcards).
    #[serde(default)]
    pub string_like: BTreeMap<String, S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsPolicyStatement {
    pub actions: Vec<S<String>>,
    pub resources: Vec<S<String>>,
}

/// What AWS calls an OIDC provider: the issuer URL without its scheme or a trailing slash.
pub fn provider_host(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .unwrap_or(issuer)
        .trim_end_matches('/')
}

impl Checker<'_> {
    pub(super) fn aws(&mut self, aws: &AwsState) {
        let acct = aws.account_id.get_ref();
        if acct.len() != 12 || !acct.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(
                aws.account_id.span(),
                "aws.account_id",
                "an AWS account id is 12 digits",
            );
        }
        let region = aws.region.get_ref();
        if region.split('-').count() < 3 {
            self.fail(
                aws.region.span(),
                "aws.region",
                format!("'{region}' is not a region name like us-east-1"),
            );
        }
        for (i, p) in aws.oidc_providers.iter().enumerate() {
            self.https_url(&p.url, &format!("aws.oidc_providers[{i}].url"));
            if p.client_ids.is_empty() {
                self.fail(
                    p.url.span(),
                    format!("aws.oidc_providers[{i}].client_ids"),
                    "at least one client id (audience) is required, usually sts.amazonaws.com",
                );
            }
        }
        for (i, role) in aws.roles.iter().enumerate() {
            let at = format!("aws.roles[{i}]");
            let trust = &role.trust;
            match (&trust.federated, trust.aws.is_empty()) {
                (Some(federated), true) => {
                    let fed = federated.get_ref();
                    let prefix = format!("arn:aws:iam::{acct}:oidc-provider/");
                    match fed.strip_prefix(&prefix) {
                        Some(host) if !host.starts_with("http") && !host.ends_with('/') && !host.is_empty() => {
                            if !aws.oidc_providers.iter().any(|p| provider_host(p.url.get_ref()) == host) {
                                self.fail(federated.span(), format!("{at}.trust.federated"), format!("no [[aws.oidc_providers]] entry has the host '{host}'"));
                            }
                        }
                        _ => self.fail(
                            federated.span(),
                            format!("{at}.trust.federated"),
                            format!("must be {prefix}<issuer host> — the host without https:// and without a trailing slash"),
                        ),
                    }
                    for key in trust.string_equals.keys().chain(trust.string_like.keys()) {
                        if !(key.ends_with(":sub") || key.ends_with(":aud")) {
                            self.fail(federated.span(), format!("{at}.trust"), format!("condition key '{key}' is not supported: AWS only evaluates <host>:sub and <host>:aud for OIDC providers"));
                        }
                    }
                }
                (None, false) => {
                    for principal in &trust.aws {
                        let p = principal.get_ref();
                        let user = p
                            .strip_prefix(&format!("arn:aws:iam::{acct}:user/"))
                            .is_some_and(|u| aws.users.iter().any(|x| x.name.get_ref() == u));
                        if !(user || p == &format!("arn:aws:iam::{acct}:root")) {
                            self.fail(principal.span(), format!("{at}.trust.aws"), format!("'{p}' is not arn:aws:iam::{acct}:root or the ARN of a declared [[aws.users]] entry"));
                        }
                    }
                    for key in trust.string_equals.keys().chain(trust.string_like.keys()) {
                        if key != "sts:ExternalId" {
                            self.fail(role.name.span(), format!("{at}.trust"), format!("condition key '{key}' is not supported for AWS principals: use sts:ExternalId"));
                        }
                    }
                }
                _ => self.fail(
                    role.name.span(),
                    format!("{at}.trust"),
                    "set exactly one of federated (an OIDC provider, for workload identity) or aws (IAM principals, for AssumeRole with access keys)",
                ),
            }
            for (j, st) in role.policies.iter().enumerate() {
                for a in &st.actions {
                    let a_ref = a.get_ref();
                    if !(a_ref == "*" || a_ref.contains(':')) {
                        self.fail(
                            a.span(),
                            format!("{at}.policies[{j}].actions"),
                            format!(
                                "'{a_ref}' is not an action like secretsmanager:GetSecretValue"
                            ),
                        );
                    }
                }
                for r in &st.resources {
                    let r_ref = r.get_ref();
                    if !(r_ref == "*" || r_ref.starts_with("arn:aws:")) {
                        self.fail(
                            r.span(),
                            format!("{at}.policies[{j}].resources"),
                            format!("'{r_ref}' is not an ARN pattern or \"*\""),
                        );
                    }
                }
            }
        }
        self.secrets(&aws.secrets, "aws.secrets");
    }
}
