//! The first owner: created headlessly from `KEYWARD_BOOTSTRAP_*`, or through the one-time setup
//! link printed on first start.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keyward_core::api::v1::{CreateToken, Org, SetupRequest, SetupResponse, TokenCreated};
use keyward_core::permission::RoleGrants;
use keyward_core::{OrgId, UserId, names};
use keyward_store::{OrgRow, Store, TokenKind, UserRow, secret};
use serde_json::json;

use super::token_info;
use crate::audit::{Auditor, kind};
use crate::client_addr::ClientAddr;
use crate::clock::to_datetime;
use crate::console::render::{Layout, render};
use crate::domain::tokens::new_token;
use crate::error::{ApiError, ApiJson};
use crate::people::throttle;
use crate::state::AppState;

/// How long a printed setup link stays valid.
pub const SETUP_LINK_TTL: i64 = 24 * 3600;

/// Creates the organization, its owner and the owner's first personal access token. With
/// `token` the given secret is used (headless bootstrap); otherwise one is generated.
pub(crate) async fn create_owner(
    store: &dyn Store,
    audit: &Auditor,
    org_name: &str,
    email: &str,
    token: Option<&str>,
    now: i64,
) -> Result<(Org, TokenCreated, UserId), ApiError> {
    let email = validate_owner(org_name, email)?;
    let user = UserRow {
        id: UserId::new_random(),
        email: email.clone(),
        created_at: now,
    };
    store.create_user(&user).await?;
    let org = OrgRow {
        id: OrgId::new_random(),
        name: org_name.trim().to_owned(),
        created_at: now,
    };
    store.create_org(&org, user.id, RoleGrants::OWNER).await?;
    let request = CreateToken {
        name: "owner setup".into(),
        expires_in: None,
    };
    let (mut row, mut secret_text) = new_token(
        TokenKind::Personal,
        &request,
        Some(user.id),
        None,
        None,
        now,
    )?;
    if let Some(given) = token {
        row.hash = secret::hash_token(given);
        row.prefix = secret::display_prefix(given);
        given.clone_into(&mut secret_text);
    }
    store.insert_token(&row).await?;
    let actor = format!("user:{}", user.id);
    audit
        .record(
            kind::BOOTSTRAP_COMPLETED,
            Some(org.id),
            &actor,
            json!({"org": org.name, "email": email, "headless": token.is_some(), "token_id": row.id}),
        )
        .await?;
    let org = Org {
        uuid: org.id,
        name: org.name,
        role: RoleGrants::OWNER.into(),
        created_at: to_datetime(now),
    };
    Ok((
        org,
        TokenCreated {
            info: token_info(&row),
            token: secret_text,
        },
        user.id,
    ))
}

/// Checks the organization's name and the owner's email, returning the email as stored. Runs
/// before the setup link is consumed, so a typo does not burn the one-time link.
fn validate_owner(org_name: &str, email: &str) -> Result<String, ApiError> {
    names::validate_display_name("org_name", org_name)
        .map_err(|e| ApiError::invalid("org_name", e.to_string()))?;
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "email",
            format!("{email:?} is not an email address"),
        ));
    }
    Ok(email)
}

/// Issues a fresh one-time setup secret (only the newest works) and returns it.
pub(crate) async fn issue_setup_token(
    store: &dyn Store,
    audit: &Auditor,
    now: i64,
) -> Result<String, ApiError> {
    let token =
        secret::generate_token("kws_").ok_or_else(|| ApiError::internal("system RNG failed"))?;
    store
        .replace_setup_token(&secret::hash_token(&token), now + SETUP_LINK_TTL)
        .await?;
    audit
        .record(
            kind::SETUP_LINK_ISSUED,
            None,
            "system:setup",
            json!({"valid_for_seconds": SETUP_LINK_TTL}),
        )
        .await?;
    Ok(token)
}

pub async fn complete(
    State(app): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<SetupRequest>,
) -> Result<(StatusCode, Json<SetupResponse>), ApiError> {
    if app.store.user_count().await? > 0 {
        return Err(ApiError::Conflict {
            field: "setup_token",
            message: "setup is already complete; sign in with the owner's token".into(),
        });
    }
    // One reading of the clock for the whole request, as `Caller::now` is for the others.
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    // Guessing a 256-bit secret is hopeless, but each try must still cost the guesser, and be seen.
    let address = throttle::address("setup", &client);
    let wait = match throttle::admit(&app, &client, now).await? {
        Some(wait) => Some(wait),
        None => throttle::wait_for(&app, &[&address], now_ms).await?,
    };
    if let Some(retry_after) = wait {
        return Err(ApiError::Throttled {
            message: format!(
                "too many setup attempts from this address; retry in {retry_after} seconds"
            ),
            retry_after,
        });
    }
    // Input is checked before the link is consumed: a refused form keeps the link usable. The
    // consumption itself stays the single atomic step that lets only one of two racing setups on.
    validate_owner(&body.org_name, &body.email)?;
    let hash = secret::hash_token(&body.setup_token);
    let Some(expires_at) = app.store.consume_setup_token(&hash, now).await? else {
        throttle::failed(&app, &[&address], now_ms).await?;
        let ip = client.0.map(|ip| ip.to_string());
        tracing::warn!(
            address = ip.as_deref(),
            "setup attempt with an invalid setup token"
        );
        app.audit
            .record(
                kind::SETUP_FAILED,
                None,
                "anonymous",
                json!({"address": ip}),
            )
            .await?;
        return Err(ApiError::Unauthenticated {
            code: "invalid_setup_token",
            message: "the setup link is invalid, used or expired; restart keyward serve to print a new one".into(),
        });
    };
    let created = create_owner(
        app.store.as_ref(),
        &app.audit,
        &body.org_name,
        &body.email,
        None,
        now,
    )
    .await;
    let (org, token, user) = match created {
        Ok(created) => created,
        Err(e) => {
            // No owner came of it (the setup route refuses once one exists): the link stays
            // usable, so a passing database failure does not force a restart for a new one.
            if let Err(restore) = app.store.replace_setup_token(&hash, expires_at).await {
                tracing::error!(error = %restore, "the setup link could not be put back after a failed setup");
            }
            return Err(e);
        }
    };
    app.audit
        .record(
            kind::LOGIN,
            Some(org.uuid),
            &format!("user:{user}"),
            json!({"method": "setup_link"}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(SetupResponse { org, token })))
}

/// The page's one script: it reads the secret from the URL fragment and posts it. Inline (allowed
/// by its hash) so that no other inline code on the page can run.
const SETUP_SCRIPT: &str = include_str!("setup.js");

#[derive(askama::Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    layout: Layout,
    script: &'static str,
}

/// The page's policy: only its own inline script (by hash), the console's own script file (the
/// layout loads it on every page) and stylesheet, it talks
/// only to this server, and nobody frames it — it shows the owner's first personal access token.
static SETUP_CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, SETUP_SCRIPT.as_bytes());
    let hash = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest);
    format!(
        "default-src 'none'; script-src 'sha256-{hash}' 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
});

/// The page behind the printed link. The secret stays in the URL fragment, which browsers never
/// send to the server or put in access logs; the page's script posts it to `/api/v1/setup`.
/// `no-store`: the page ends up displaying the owner's token, which no cache may keep.
pub async fn page() -> Response {
    let mut response = render(
        StatusCode::OK,
        &SetupPage {
            layout: Layout::bare("Set up Keyward"),
            script: SETUP_SCRIPT,
        },
    );
    if let Ok(csp) = HeaderValue::from_str(&SETUP_CSP) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}
