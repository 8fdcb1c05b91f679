//! Bearer tokens: a person's personal access tokens and an automation's tokens. The secret is
//! generated here, shown once, and stored only as its SHA-256.

use keyward_core::api::v1::CreateToken;
use keyward_core::{AutomationId, OrgId, TokenId, UserId, names};
use keyward_store::{AutomationRow, TokenKind, TokenRow, secret};
use serde_json::json;

use crate::audit::kind;
use crate::caller::Caller;
use crate::clock;
use crate::error::{ApiError, or_not_found};
use crate::state::AppState;

/// Longest lifetime any token may be given (ten years); absent means no expiry. Personal access
/// tokens have a shorter, required limit ([`check_lifetime`]).
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// Validates a creation request and makes the record and the secret (shown once), created `now`.
pub(crate) fn new_token(
    kind: TokenKind,
    body: &CreateToken,
    user: Option<UserId>,
    org: Option<OrgId>,
    automation: Option<AutomationId>,
    now: i64,
) -> Result<(TokenRow, String), ApiError> {
    names::validate_display_name("name", &body.name)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    if let Some(secs) = body.expires_in
        && (secs == 0 || secs > MAX_EXPIRES_IN)
    {
        return Err(ApiError::invalid(
            "expires_in",
            format!(
                "expires_in is in seconds and must be between 1 and {MAX_EXPIRES_IN}; omit it for a token that does not expire"
            ),
        ));
    }
    let prefix = match kind {
        TokenKind::Personal => secret::PERSONAL_PREFIX,
        TokenKind::Automation => secret::AUTOMATION_PREFIX,
    };
    let token =
        secret::generate_token(prefix).ok_or_else(|| ApiError::internal("system RNG failed"))?;
    let row = TokenRow {
        id: TokenId::new_random(),
        kind,
        hash: secret::hash_token(&token),
        prefix: secret::display_prefix(&token),
        name: body.name.trim().to_owned(),
        user_id: user,
        org_id: org,
        automation_id: automation,
        created_at: now,
        expires_at: body.expires_in.map(|s| now + s as i64),
        revoked_at: None,
    };
    Ok((row, token))
}

/// A personal access token must expire, and within `max` seconds (`KEYWARD_MAX_PAT_TTL`): a
/// forgotten or leaked one stops working on its own.
fn check_lifetime(expires_in: Option<u64>, max: i64) -> Result<(), ApiError> {
    let days = max / 86_400;
    let limit = if days > 0 && max % 86_400 == 0 {
        format!("{max} seconds ({days} days)")
    } else {
        format!("{max} seconds")
    };
    match expires_in {
        Some(secs) if secs > 0 && i64::try_from(secs).is_ok_and(|s| s <= max) => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "expires_in",
            format!(
                "expires_in is in seconds and must be between 1 and {limit}, the longest lifetime of a personal access token on this server (KEYWARD_MAX_PAT_TTL)"
            ),
        )),
        None => Err(ApiError::invalid(
            "expires_in",
            format!(
                "personal access tokens must expire: send expires_in, at most {limit} (KEYWARD_MAX_PAT_TTL)"
            ),
        )),
    }
}

/// The caller's own personal access tokens (records only; the secrets are not kept).
pub(crate) async fn list_personal_tokens(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<TokenRow>, ApiError> {
    Ok(app.store.list_personal_tokens(caller.user()?).await?)
}

pub(crate) async fn create_personal_token(
    app: &AppState,
    caller: &Caller,
    body: &CreateToken,
) -> Result<(TokenRow, String), ApiError> {
    let user = caller.user()?;
    check_lifetime(body.expires_in, app.config.max_pat_ttl)?;
    let (row, token) = new_token(
        TokenKind::Personal,
        body,
        Some(user),
        None,
        None,
        caller.now,
    )?;
    app.store.insert_token(&row).await?;
    app.audit
        .record(
            kind::PERSONAL_TOKEN_CREATED,
            None,
            &caller.actor(),
            json!({"token_id": row.id, "name": row.name, "prefix": row.prefix, "expires_at": row.expires_at.map(clock::rfc3339)}),
        )
        .await?;
    Ok((row, token))
}

pub(crate) async fn revoke_personal_token(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<TokenRow, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("token"))?;
    let row = app
        .store
        .revoke_personal_token(caller.user()?, id, caller.now)
        .await
        .map_err(or_not_found("token"))?;
    app.audit
        .record(
            kind::PERSONAL_TOKEN_REVOKED,
            None,
            &caller.actor(),
            json!({"token_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(row)
}

/// An automation's tokens (records only; the secrets are not kept).
pub(crate) async fn list_automation_tokens(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
) -> Result<Vec<TokenRow>, ApiError> {
    let org = caller.org()?.id;
    Ok(app.store.list_automation_tokens(org, automation.id).await?)
}

pub(crate) async fn create_automation_token(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
    body: &CreateToken,
) -> Result<(TokenRow, String), ApiError> {
    let org = caller.org()?.id;
    let (row, token) = new_token(
        TokenKind::Automation,
        body,
        None,
        Some(org),
        Some(automation.id),
        caller.now,
    )?;
    app.store.insert_token(&row).await?;
    app.audit
        .record(
            kind::AUTOMATION_TOKEN_CREATED,
            Some(org),
            &caller.actor(),
            json!({
                "automation_id": automation.id,
                "automation": automation.name,
                "token_id": row.id,
                "name": row.name,
                "prefix": row.prefix,
                "expires_at": row.expires_at.map(clock::rfc3339),
            }),
        )
        .await?;
    Ok((row, token))
}

pub(crate) async fn revoke_automation_token(
    app: &AppState,
    caller: &Caller,
    automation: &AutomationRow,
    token_id: &str,
) -> Result<TokenRow, ApiError> {
    let org = caller.org()?.id;
    let token_id: TokenId = token_id.parse().map_err(|_| ApiError::not_found("token"))?;
    let row = app
        .store
        .revoke_automation_token(org, automation.id, token_id, caller.now)
        .await
        .map_err(or_not_found("token"))?;
    app.audit
        .record(
            kind::AUTOMATION_TOKEN_REVOKED,
            Some(org),
            &caller.actor(),
            json!({"automation_id": automation.id, "automation": automation.name, "token_id": row.id, "name": row.name}),
        )
        .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_tokens_must_expire_within_the_limit() {
        let max = 90 * 86_400;
        assert!(check_lifetime(Some(3600), max).is_ok());
        assert!(check_lifetime(Some(max as u64), max).is_ok());
        for bad in [None, Some(0), Some(max as u64 + 1), Some(u64::MAX)] {
            let e = check_lifetime(bad, max).unwrap_err();
            let body = format!("{e:?}");
            assert!(body.contains("7776000 seconds (90 days)"), "{body}");
            assert!(body.contains("KEYWARD_MAX_PAT_TTL"), "{body}");
        }
    }
}
