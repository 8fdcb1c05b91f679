//! OpenID Connect for people: the relying party of the browser sign-in (authorization code +
//! PKCE S256 + state + nonce, against the provider found by discovery), the end-session URL for
//! sign-out, and validation of the provider's access tokens presented as API bearer tokens
//! (issuer, audience, signature by a key of its JWKS, lifetime).
//!
//! Nothing here keeps sign-ins in progress: [`Oidc::begin`] returns the values the caller must
//! store (state, nonce, PKCE verifier) and [`Oidc::finish`] takes them back, so any replica can
//! finish a sign-in another one began. Time is always an argument.

mod claims;
mod http;
mod jwks;

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IdTokenVerifier,
    IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope,
    TokenResponse as _,
};
use serde_json::Value;
use thiserror::Error;
use tokio::sync::RwLock;

pub use claims::{Identity, identity};
pub use http::Http;
pub use jwks::{JwksCache, MAX_AGE_SECS, MIN_REFETCH_SECS};
/// For `KEYWARD_SSO_CA_FILE`: certificates to trust for the provider's HTTPS.
pub use reqwest::Certificate;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
/// Discovery documents are fetched again after this long.
const DISCOVERY_MAX_AGE_SECS: i64 = 3600;

#[derive(Debug, Error)]
pub enum SsoError {
    #[error("{what}: {value:?} {reason}")]
    Config {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "cannot discover the identity provider at {issuer}/.well-known/openid-configuration: {reason}; check the provider settings and that Keyward trusts its TLS certificate (KEYWARD_SSO_CA_FILE)"
    )]
    Discovery { issuer: String, reason: String },
    #[error("cannot fetch the identity provider's keys from {uri}: {reason}")]
    Jwks { uri: String, reason: String },
    #[error(
        "the token is signed with key {kid:?}, which {jwks_uri} does not publish (keys are refetched at most every {min_refetch} s)"
    )]
    UnknownKey {
        kid: String,
        jwks_uri: String,
        min_refetch: i64,
    },
    #[error(
        "the identity provider refused the authorization code ({error}{}): start the sign-in again",
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    CodeRefused {
        error: String,
        description: Option<String>,
    },
    #[error("the token request to the identity provider failed: {0}")]
    TokenRequest(String),
    #[error(
        "the identity provider's answer has no ID token; is the `openid` scope allowed for this client?"
    )]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    #[error("the access token was refused: {0}")]
    AccessToken(String),
    /// The token is the provider's, signed by its key, and only its lifetime is wrong: the
    /// one refusal worth telling the caller (sign in again).
    #[error("the access token was refused: {0}")]
    AccessTokenLifetime(String),
}

/// One provider, as configured.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer exactly as the provider's tokens name it, e.g.
    /// `https://kc.example.com/realms/acme`.
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client (PKCE alone, e.g. WorkOS AuthKit).
    pub client_secret: Option<String>,
    /// `https://<keyward>/auth/<provider>/callback`.
    pub redirect_uri: String,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// The `aud` that API bearer tokens must carry; `None` refuses the provider's access tokens.
    pub api_audience: Option<String>,
    /// Client ids whose `resource_access.<id>.roles` count as roles (Keycloak client roles).
    pub role_clients: Vec<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("api_audience", &self.api_audience)
            .finish_non_exhaustive()
    }
}

/// What [`Oidc::begin`] hands back: the URL to send the browser to, and what to keep until the
/// callback. All three values are secrets of this one sign-in.
pub struct Begin {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    jwks: Arc<JwksCache>,
    at: i64,
}

pub struct Oidc {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: Http,
    discovered: RwLock<Option<Arc<Discovered>>>,
}

impl Oidc {
    /// Checks the settings; contacts nobody (discovery happens at first use, so a provider that
    /// is down does not keep Keyward from starting).
    pub fn new(
        settings: OidcSettings,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<Self, SsoError> {
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| SsoError::Config {
            what: "issuer",
            value: settings.issuer.clone(),
            reason: format!("is not a URL ({e})"),
        })?;
        let redirect =
            RedirectUrl::new(settings.redirect_uri.clone()).map_err(|e| SsoError::Config {
                what: "redirect URI",
                value: settings.redirect_uri.clone(),
                reason: format!("is not a URL ({e}); set KEYWARD_PUBLIC_URL"),
            })?;
        let http = Http::new(extra_roots).map_err(|e| SsoError::Config {
            what: "HTTPS client",
            value: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Oidc {
            settings,
            issuer,
            redirect,
            http,
            discovered: RwLock::new(None),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    async fn discovered(&self, now: i64) -> Result<Arc<Discovered>, SsoError> {
        if let Some(d) = self.discovered.read().await.as_ref()
            && now - d.at < DISCOVERY_MAX_AGE_SECS
        {
            return Ok(d.clone());
        }
        let mut slot = self.discovered.write().await;
        if let Some(d) = slot.as_ref()
            && now - d.at < DISCOVERY_MAX_AGE_SECS
        {
            return Ok(d.clone());
        }
        let metadata = ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| SsoError::Discovery {
                issuer: self.settings.issuer.clone(),
                reason: error_chain(&e),
            })?;
        // Keep the key cache across rediscoveries of the same key set location.
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let jwks = match slot.as_ref() {
            Some(old) if old.jwks.uri() == jwks_uri => old.jwks.clone(),
            _ => Arc::new(JwksCache::new(jwks_uri, self.http.clone())),
        };
        let d = Arc::new(Discovered {
            metadata,
            jwks,
            at: now,
        });
        *slot = Some(d.clone());
        Ok(d)
    }

    /// Starts a sign-in: a fresh state, nonce and PKCE verifier (S256 challenge in the URL).
    pub async fn begin(&self, now: i64) -> Result<Begin, SsoError> {
        let d = self.discovered(now).await?;
        let client = CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            None,
        )
        .set_redirect_uri(self.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Begin {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: redeems `code` with the PKCE verifier, verifies the ID token
    /// (signature, issuer, audience, lifetime, nonce, `at_hash`) and returns who signed in.
    /// Roles also come from the access token when it is a JWT for this API that verifies.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
        now: i64,
    ) -> Result<Identity, SsoError> {
        let d = self.discovered(now).await?;
        let client = CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone());
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SsoError::TokenRequest(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()));
        let tokens = exchange
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => SsoError::CodeRefused {
                    error: r.error().to_string(),
                    description: r.error_description().cloned(),
                },
                other => SsoError::TokenRequest(error_chain(&other)),
            })?;
        let id_token = tokens.id_token().ok_or(SsoError::NoIdToken)?;
        let raw = id_token.to_string();
        let keys = d.jwks.keys_for(header_kid(&raw).as_deref(), now).await?;
        let keys: CoreJsonWebKeySet = serde_json::from_value(keys).map_err(|e| SsoError::Jwks {
            uri: d.jwks.uri().to_owned(),
            reason: format!("a key is malformed: {e}"),
        })?;
        let verifier = IdTokenVerifier::new_public_client(
            ClientId::new(self.settings.client_id.clone()),
            self.issuer.clone(),
            keys,
        )
        .set_time_fn(move || chrono::DateTime::from_timestamp(now, 0).unwrap_or_default())
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp() > now + LEEWAY_SECS {
                Err("it was issued in the future".into())
            } else {
                Ok(())
            }
        });
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| SsoError::IdToken(error_chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| SsoError::IdToken(error_chain(&e)))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| SsoError::IdToken(error_chain(&e)))?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
                .map_err(|e| SsoError::IdToken(error_chain(&e)))?;
            if actual != *expected {
                return Err(SsoError::IdToken(
                    "its at_hash does not match the access token issued with it".into(),
                ));
            }
        }
        // The claims were verified above; read them again as JSON for the ones openidconnect
        // does not type (roles, groups, realm_access …). Same bytes, same signature.
        let payload = payload(&raw).map_err(SsoError::IdToken)?;
        let mut who = identity(&payload, &self.settings.role_clients).map_err(SsoError::IdToken)?;
        // Keycloak, for one, puts roles in the access token only.
        if let Ok(access) = self
            .verify_access_token(tokens.access_token().secret(), now)
            .await
        {
            for role in access.roles {
                if !who.roles.contains(&role) {
                    who.roles.push(role);
                }
            }
        }
        Ok(who)
    }

    /// Where to send the browser to end the provider's session too, when it has an end-session
    /// endpoint (OpenID Connect RP-Initiated Logout); it returns to `post_logout`.
    pub async fn end_session_url(
        &self,
        post_logout: &str,
        now: i64,
    ) -> Result<Option<String>, SsoError> {
        let d = self.discovered(now).await?;
        let Some(endpoint) = d
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()
        else {
            return Ok(None);
        };
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.settings.client_id.clone()));
        if let Ok(back) = PostLogoutRedirectUrl::new(post_logout.to_owned()) {
            request = request.set_post_logout_redirect_uri(back);
        }
        Ok(Some(request.http_get_url().to_string()))
    }

    /// Validates an access token of this provider presented as an API bearer token: a JWT
    /// signed by a key of the provider's JWKS with an asymmetric algorithm, `iss` = the issuer,
    /// `aud` holding the configured API audience, `exp` in the future.
    pub async fn verify_access_token(&self, token: &str, now: i64) -> Result<Identity, SsoError> {
        let refuse = |m: String| SsoError::AccessToken(m);
        let audience = self.settings.api_audience.as_deref().ok_or_else(|| {
            refuse(
                "this provider's access tokens are not accepted: no API audience is configured"
                    .into(),
            )
        })?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| refuse(format!("it is not a JWT ({e})")))?;
        let allowed = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !allowed.contains(&header.alg) {
            return Err(refuse(format!(
                "it is signed with {:?}; only the provider's asymmetric keys are accepted",
                header.alg
            )));
        }
        let d = self.discovered(now).await?;
        let keys = d.jwks.keys_for(header.kid.as_deref(), now).await?;
        let all = keys["keys"].as_array().cloned().unwrap_or_default();
        let jwk = match &header.kid {
            Some(kid) => all.iter().find(|k| k["kid"].as_str() == Some(kid)),
            None if all.len() == 1 => all.first(),
            None => None,
        }
        .ok_or_else(|| refuse("it names no key (kid) and the provider has several".into()))?;
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
            .map_err(|e| refuse(format!("the provider's key is malformed ({e})")))?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| refuse(format!("the provider's key is unusable ({e})")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Lifetime is checked below against the `now` we were given.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            refuse(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => format!(
                    "it was not issued by {} (check the provider settings)",
                    self.settings.issuer
                ),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => format!(
                    "it is not for audience {audience:?} (check the provider's audience setting)"
                ),
                _ => e.to_string(),
            })
        })?;
        let claims = data.claims;
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| refuse("exp is not a number".into()))?;
        if exp + LEEWAY_SECS <= now {
            return Err(SsoError::AccessTokenLifetime(
                "it has expired; sign in again".into(),
            ));
        }
        if let Some(nbf) = claims["nbf"].as_i64()
            && nbf > now + LEEWAY_SECS
        {
            return Err(SsoError::AccessTokenLifetime(
                "it is not valid yet (nbf)".into(),
            ));
        }
        identity(&claims, &self.settings.role_clients).map_err(refuse)
    }
}

/// The `kid` of a JWT's header, if any.
fn header_kid(jwt: &str) -> Option<String> {
    let header = jwt.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value["kid"].as_str().map(str::to_owned)
}

/// A JWT's payload as JSON (no verification: only for tokens verified already).
fn payload(jwt: &str) -> Result<Value, String> {
    let part = jwt.split('.').nth(1).ok_or("it is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("its payload is not base64url ({e})"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("its payload is not JSON ({e})"))
}

/// An error with its sources, for messages ("x: y: z").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
