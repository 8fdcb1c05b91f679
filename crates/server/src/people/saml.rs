//! SAML 2.0 browser sign-in (SP-initiated; the AuthnRequest by HTTP-Redirect, the response by
//! HTTP-POST) for Entra ID and any SAML IdP, with the strict verification of `keyward-saml`.
//!
//! `GET /auth/saml/login` sends the browser to the IdP with a fresh AuthnRequest; its ID (the
//! only InResponseTo accepted) is kept in a database row found through a random RelayState that
//! the browser also holds in an HttpOnly cookie. `POST /auth/saml/acs` verifies the response
//! against that row and records the assertion in the database replay cache, so a response
//! posted again — to any replica — is refused. `GET /auth/saml/metadata` is this SP's metadata
//! to upload to the IdP.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_saml::PendingRequest;
use keyward_sso::Identity;
use keyward_store::{SsoPendingRow, secret};
use time::OffsetDateTime;

use super::admission::{PENDING_TTL, admit, land, safe_next};
use super::clients::DbReplay;
use super::cookies::{add_cookie, cookie, secure};
use super::html::{error_page, notice, redirect};
use super::pending_bounds;
use super::refusal::{Refusal, audit_refusal};
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie holding the RelayState of the SAML sign-in this browser started.
const RELAY_COOKIE: &str = "keyward_saml_relay";

fn odt(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn not_configured() -> Response {
    notice(
        StatusCode::NOT_FOUND,
        "Sign in",
        "SAML sign-in is not configured on this server (SAML_IDP_METADATA_FILE, or SAML_IDP_ENTITY_ID + SAML_IDP_SSO_URL + SAML_IDP_CERT_FILE).",
    )
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /auth/saml/login`: a new AuthnRequest, by HTTP-Redirect to the IdP.
pub async fn login(
    State(app): State<AppState>,
    client: ClientAddr,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(saml) = app.sso.saml.as_ref() else {
        return not_configured();
    };
    let now = app.clock.now();
    if let Err(refused) = pending_bounds::admit(&app, &client, q.next.as_deref(), now).await {
        return refused;
    }
    // 43 URL-safe characters: within RelayState's 80 bytes.
    let Some(relay) = secret::generate_token("") else {
        return error_page(ApiError::internal("system RNG failed"));
    };
    let request = match saml.sp.authn_request(&relay, odt(now)) {
        Ok(r) => r,
        Err(e) => return error_page(ApiError::internal(e)),
    };
    let row = SsoPendingRow {
        state_hash: secret::hash_token(&relay),
        protocol: "saml".into(),
        nonce: request.pending.id.clone(),
        pkce_verifier: String::new(),
        next_path: safe_next(q.next.as_deref()),
        created_at: request.pending.issued_at,
        expires_at: now + PENDING_TTL,
    };
    if let Err(e) = app.store.create_sso_pending(&row).await {
        return error_page(e.into());
    }
    let mut response = redirect(&request.redirect_url);
    // SameSite=None: the IdP's answer is a cross-site POST, which a Lax cookie would not
    // accompany. HttpOnly keeps scripts out; the row it points to holds nothing secret.
    let same_site = if secure(&app).is_empty() {
        "Lax"
    } else {
        "None"
    };
    add_cookie(
        &mut response,
        &format!(
            "{RELAY_COOKIE}={relay}; Path=/auth/saml; HttpOnly; SameSite={same_site}; Max-Age={}{}",
            PENDING_TTL,
            secure(&app)
        ),
    );
    response
}

/// The body limit of the assertion consumer: the SAML crate's 512 KiB of base64, form-encoded
/// (`+`, `/` and `=` become three characters each), with room for RelayState.
pub const ACS_BODY_LIMIT: usize = 640 * 1024;

/// `POST /auth/saml/acs`: the IdP's signed response.
pub async fn acs(
    State(app): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app.sso.saml.is_none() {
        return not_configured();
    }
    if let Err(refused) = pending_bounds::admit_finish(&app, &client, app.clock.now()).await {
        return refused;
    }
    match finish(&app, &headers, &body).await {
        Ok(response) => response,
        Err(refusal) => {
            audit_refusal(&app, "saml", &refusal).await;
            refusal.page("/auth/saml/login")
        }
    }
}

async fn finish(app: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let saml = app
        .sso
        .saml
        .as_ref()
        .ok_or_else(|| Refusal::Other(ApiError::internal("no SAML SP")))?;
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(body).into_owned().collect();
    let now = app.clock.now();
    let Some(started) = cookie(headers, RELAY_COOKIE) else {
        return Err(Refusal::State(
            "This sign-in was not started in this browser (or it took longer than 10 minutes): start again.",
        ));
    };
    let relay = fields.get("RelayState").map(String::as_str).unwrap_or("");
    if aws_lc_rs::constant_time::verify_slices_are_equal(relay.as_bytes(), started.as_bytes())
        .is_err()
    {
        return Err(Refusal::State(
            "The sign-in answer does not belong to the sign-in this browser started (RelayState mismatch): start again.",
        ));
    }
    // Read, not taken: what makes a response single-use is the replay cache below, which a
    // second post of the same response (to any replica) meets.
    let Some(pending) = app
        .store
        .find_sso_pending(&secret::hash_token(&started), now)
        .await?
        .filter(|p| p.protocol == "saml")
    else {
        return Err(Refusal::State(
            "This sign-in has expired or is unknown: start again.",
        ));
    };
    let response = fields
        .get("SAMLResponse")
        .filter(|r| !r.is_empty())
        .ok_or(Refusal::State("The post has no SAMLResponse: start again."))?;
    let request = PendingRequest {
        id: pending.nonce.clone(),
        issued_at: pending.created_at,
    };
    let login = saml
        .sp
        .verify_response(response, &request, odt(now), &DbReplay(app.store.as_ref()))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "a SAML sign-in was refused");
            Refusal::Verification(e.to_string())
        })?;
    let email = login
        .email
        .clone()
        .or_else(|| Some(login.name_id.clone()).filter(|n| n.contains('@')))
        .map(|e| e.trim().to_lowercase());
    let mut roles = login.roles.clone();
    roles.extend(login.groups.iter().cloned());
    // The one configured IdP, whose signature was just verified, is the authority for its own
    // users' addresses (see `links`). A transient NameID changes at every sign-in, so it links
    // nothing.
    let transient = login.name_id_format.as_deref()
        == Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient");
    let who = Identity {
        issuer: login.issuer.clone(),
        subject: if transient {
            String::new()
        } else {
            login.name_id.clone()
        },
        email_verified: email.is_some(),
        email,
        roles,
    };
    let user = admit(app, &who, "saml", now).await?;
    land(app, &user, &who, "saml", &pending.next_path, now).await
}

/// `GET /auth/saml/metadata`: this SP's metadata XML, to give the IdP.
pub async fn metadata(State(app): State<AppState>) -> Response {
    let Some(saml) = app.sso.saml.as_ref() else {
        return not_configured();
    };
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        saml.sp.metadata_xml(),
    )
        .into_response()
}
