//! External identities linked to Keyward accounts (SPEC §7; security review M3, L4).

use async_trait::async_trait;
use keyward_core::UserId;

use crate::Result;

/// One identity at an identity provider, linked to one Keyward account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoLinkRow {
    /// The OIDC issuer, or the SAML IdP's entity ID.
    pub issuer: String,
    /// The OIDC `sub`, or the SAML NameID.
    pub subject: String,
    pub user_id: UserId,
    /// The address the provider sent at the last sign-in (shown, never matched).
    pub email: Option<String>,
    /// Whether the last sign-in carried `member` or `factory-admin`.
    pub admitted: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
}

#[async_trait]
pub trait SsoLinkStore: Send + Sync {
    async fn sso_link(&self, issuer: &str, subject: &str) -> Result<Option<SsoLinkRow>>;
    /// `Conflict { field: "subject" }` when the identity is already linked (to anyone).
    async fn create_sso_link(&self, row: &SsoLinkRow) -> Result<()>;
    /// Records a sign-in through the link: the address it carried and whether it was admitted.
    async fn record_sso_sign_in(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
        admitted: bool,
        now: i64,
    ) -> Result<()>;
    /// Whether the person's most recent sign-in through the identity provider was admitted;
    /// `None` when they never signed in through one.
    async fn sso_admitted(&self, user: UserId) -> Result<Option<bool>>;
}
