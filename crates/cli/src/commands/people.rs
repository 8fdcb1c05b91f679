//! The people's CLI: `keyward configure <url>`, `login` (RFC 8628 device flow against whichever
//! provider the server names, as the CrewAI CLI does), `logout`, `config list|set|reset` and
//! `org list|switch`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keyward_client::{Client, ClientError};
use serde_json::Value;

use super::settings::{self, Settings, Stored, StoredToken};
use crate::common_args::{ListOutput, Output, PeopleArgs};

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The Keyward server, e.g. https://keyward.example.com
    pub url: String,
    #[command(flatten)]
    pub people: PeopleArgs,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting.
    List,
    /// Validate and set one setting.
    Set {
        /// One of the keys `keyward config list` shows.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Forget every setting.
    Reset,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(flatten)]
    pub people: PeopleArgs,
    #[command(subcommand)]
    pub command: OrgCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// List your organizations (the current one is marked).
    List(ListOutput),
    /// Act in this organization from now on.
    Switch {
        /// The organization's UUID (see `keyward org list`).
        org_uuid: String,
    },
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// One HTTPS client for Keyward and the identity provider: the provider may be a public one
/// (Okta, Entra) while Keyward runs on its own CA, so both the platform's roots and the bundle.
fn http(args: &PeopleArgs) -> anyhow::Result<reqwest::Client> {
    Ok(keyward_client::http_client_trusting(
        args.ca_file.as_deref(),
        keyward_client::Trust::KeywardAndPlatform,
    )?)
}

/// The provider's device, token and key endpoints and its issuer, as the CrewAI CLI derives them.
struct Endpoints {
    device: String,
    token: String,
    jwks: String,
    issuer: String,
    scope: String,
}

fn endpoints(s: &Settings) -> anyhow::Result<Endpoints> {
    let provider = s.oauth2_provider.as_deref().unwrap_or("");
    let domain = s
        .oauth2_domain
        .as_deref()
        .context("oauth2_domain is not set: run `keyward configure <url>` first")?;
    let extra = |k: &str| {
        s.oauth2_extra
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut scope = "openid profile email".to_owned();
    let e = match provider {
        "workos" => Endpoints {
            device: format!("https://{domain}/oauth2/device_authorization"),
            token: format!("https://{domain}/oauth2/token"),
            jwks: format!("https://{domain}/oauth2/jwks"),
            issuer: format!("https://{domain}"),
            scope: String::new(),
        },
        "okta" => {
            let org_server = s
                .oauth2_extra
                .get("using_org_auth_server")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let base = if org_server {
                format!("https://{domain}/oauth2")
            } else {
                let server = extra("authorization_server_name").unwrap_or_else(|| "default".into());
                format!("https://{domain}/oauth2/{server}")
            };
            Endpoints {
                device: format!("{base}/v1/device/authorize"),
                token: format!("{base}/v1/token"),
                jwks: format!("{base}/v1/keys"),
                issuer: base.trim_end_matches("/oauth2").to_owned(),
                scope: String::new(),
            }
        }
        "auth0" => Endpoints {
            device: format!("https://{domain}/oauth/device/code"),
            token: format!("https://{domain}/oauth/token"),
            jwks: format!("https://{domain}/.well-known/jwks.json"),
            issuer: format!("https://{domain}/"),
            scope: String::new(),
        },
        "entra_id" => {
            let base = format!("https://login.microsoftonline.com/{domain}");
            if let Some(custom) = extra("scope") {
                scope = format!("{scope} {custom}");
            }
            Endpoints {
                device: format!("{base}/oauth2/v2.0/devicecode"),
                token: format!("{base}/oauth2/v2.0/token"),
                jwks: format!("{base}/discovery/v2.0/keys"),
                issuer: format!("{base}/v2.0"),
                scope: String::new(),
            }
        }
        "keycloak" => {
            let realm = extra("realm")
                .context("oauth2_extra has no realm: run `keyward configure <url>` again")?;
            let base = format!("https://{domain}/realms/{realm}/protocol/openid-connect");
            Endpoints {
                device: format!("{base}/auth/device"),
                token: format!("{base}/token"),
                jwks: format!("{base}/certs"),
                issuer: format!("https://{domain}/realms/{realm}"),
                scope: String::new(),
            }
        }
        "" => bail!("no provider is configured: run `keyward configure <url>` first"),
        other => bail!(
            "oauth2_provider {other:?} is not one of {}",
            settings::PROVIDERS.join(", ")
        ),
    };
    Ok(Endpoints { scope, ..e })
}

pub async fn configure(args: ConfigureArgs) -> anyhow::Result<ExitCode> {
    let base = settings::base_url(&args.url)?;
    let url = format!("{base}/auth/parameters");
    let body = Client::with_http(http(&args.people)?, &base)?
        .auth_parameters()
        .await
        .map_err(|e| match e {
            ClientError::Unreachable { .. } => {
                anyhow::anyhow!("{e} (a self-signed server needs KEYWARD_CA_FILE)")
            }
            ClientError::Api {
                status, message, ..
            } => anyhow::anyhow!("{url} answered {status}: {message}"),
            other => other.into(),
        })?;
    let mut s = Settings::load()?;
    s.set("enterprise_base_url", &base)?;
    for (key, field) in [
        ("oauth2_provider", "provider"),
        ("oauth2_domain", "domain"),
        ("oauth2_client_id", "device_authorization_client_id"),
        ("oauth2_audience", "audience"),
    ] {
        let value = body[field].as_str().with_context(|| {
            format!("{url} lacks {field:?}: is this a Keyward or CrewAI server?")
        })?;
        s.set(key, value)
            .with_context(|| format!("{url} gave an unusable {field}"))?;
    }
    s.oauth2_extra = body["extra"].as_object().cloned().unwrap_or_default();
    s.org_uuid = None;
    s.org_name = None;
    s.save()?;
    println!(
        "Configured for {base}: provider {}, domain {}",
        s.oauth2_provider.as_deref().unwrap_or(""),
        s.oauth2_domain.as_deref().unwrap_or("")
    );
    println!("Next: keyward login");
    Ok(ExitCode::SUCCESS)
}

fn form_error(body: &Value) -> (String, String) {
    (
        body["error"].as_str().unwrap_or("").to_owned(),
        body["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

pub async fn login(args: PeopleArgs) -> anyhow::Result<ExitCode> {
    let mut s = Settings::load()?;
    let ep = endpoints(&s)?;
    let client_id = s
        .oauth2_client_id
        .clone()
        .context("oauth2_client_id is not set: run `keyward configure <url>` first")?;
    let audience = s.oauth2_audience.clone().unwrap_or_default();
    let client = http(&args)?;

    let mut form = vec![
        ("client_id", client_id.clone()),
        ("scope", ep.scope.clone()),
    ];
    if !audience.is_empty() {
        form.push(("audience", audience.clone()));
    }
    let response = client
        .post(&ep.device)
        .form(&form)
        .send()
        .await
        .with_context(|| format!("cannot reach the device endpoint {}", ep.device))?;
    let status = response.status();
    let started: Value = response
        .json()
        .await
        .with_context(|| format!("{} answered {status} without JSON", ep.device))?;
    if !status.is_success() {
        let (error, description) = form_error(&started);
        bail!("the provider refused the device login ({status} {error}): {description}");
    }
    let device_code = started["device_code"]
        .as_str()
        .context("the device response has no device_code")?
        .to_owned();
    let user_code = started["user_code"].as_str().unwrap_or("");
    let verify_at = started["verification_uri_complete"]
        .as_str()
        .or_else(|| started["verification_uri"].as_str())
        .unwrap_or("");
    // RFC 8628 §3.2: interval is optional and defaults to 5 seconds.
    let mut interval = started["interval"].as_u64().filter(|i| *i > 0).unwrap_or(5);
    let expires_in = started["expires_in"].as_u64().unwrap_or(600);
    println!("1. Open: {verify_at}");
    println!("2. Enter the code: {user_code}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(expires_in);
    let spinner = std::io::stderr().is_terminal();
    let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let mut frame = 0;
    let token = loop {
        let wake = tokio::time::Instant::now() + Duration::from_secs(interval);
        while tokio::time::Instant::now() < wake {
            if spinner {
                let left = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs();
                eprint!(
                    "\r{} Waiting for approval… {}:{:02} left ",
                    frames[frame % frames.len()],
                    left / 60,
                    left % 60
                );
                let _ = std::io::stderr().flush();
                frame += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the code expired before it was approved: run `keyward login` again");
        }
        let response = client
            .post(&ep.token)
            .form(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", device_code.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .with_context(|| format!("cannot reach the token endpoint {}", ep.token))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{} answered {status} without JSON", ep.token))?;
        if status.is_success() {
            break body;
        }
        match form_error(&body) {
            (e, _) if e == "authorization_pending" => {}
            // RFC 8628 §3.5: every later request waits 5 seconds longer.
            (e, _) if e == "slow_down" => interval += 5,
            (e, _) if e == "access_denied" => {
                bail!("the sign-in was denied on the verification page")
            }
            (e, _) if e == "expired_token" => {
                bail!("the code expired before it was approved: run `keyward login` again")
            }
            (e, d) => bail!("the provider refused the sign-in ({e}): {d}"),
        }
    };
    if spinner {
        eprintln!("\r{:40}\r", "");
    }
    let access = token["access_token"]
        .as_str()
        .context("the token response has no access_token")?;
    let expires_at = verify(&client, access, &ep, &audience).await?;
    match settings::save_token(&StoredToken {
        access_token: access.to_owned(),
        expires_at,
    })? {
        Stored::Keyring => println!("Signed in. The token is in the OS keyring."),
        Stored::File {
            path,
            keyring_error,
        } => {
            println!("Signed in. The token is in {} (mode 0600).", path.display());
            if let Some(e) = keyring_error {
                println!("  (no OS keyring: {e})");
            }
        }
    }

    // Choose the organization when there is only one to choose.
    match organizations(&client, &s, access).await {
        Ok(orgs) if orgs.len() == 1 => {
            s.org_uuid = orgs[0]["uuid"].as_str().map(str::to_owned);
            s.org_name = orgs[0]["name"].as_str().map(str::to_owned);
            s.save()?;
            println!(
                "Organization: {} ({})",
                s.org_name.as_deref().unwrap_or(""),
                s.org_uuid.as_deref().unwrap_or("")
            );
        }
        Ok(orgs) if orgs.is_empty() => println!("You do not belong to any organization yet."),
        Ok(_) => println!(
            "You belong to several organizations: choose one with `keyward org switch <uuid>` (see `keyward org list`)."
        ),
        Err(e) => println!("Could not list your organizations: {e:#}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies the access token as the CrewAI CLI does (JWKS, issuer, audience, exp); returns exp.
async fn verify(
    client: &reqwest::Client,
    token: &str,
    ep: &Endpoints,
    audience: &str,
) -> anyhow::Result<i64> {
    let header = jsonwebtoken::decode_header(token).context("the access token is not a JWT")?;
    let kid = header
        .kid
        .context("the access token names no signing key (kid)")?;
    let jwks: Value = client
        .get(&ep.jwks)
        .send()
        .await
        .with_context(|| format!("cannot fetch the provider's keys from {}", ep.jwks))?
        .json()
        .await
        .with_context(|| format!("{} is not a JWKS", ep.jwks))?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .with_context(|| format!("the access token's key {kid} is not in {}", ep.jwks))?;
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or(""),
        jwk["e"].as_str().unwrap_or(""),
    )
    .context("the provider's key is not an RSA key")?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ep.issuer.as_str()]);
    if audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&[audience]);
    }
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 10;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
        anyhow::anyhow!(
            "the access token did not verify ({e}): check `keyward config list` against the server"
        )
    })?;
    data.claims["exp"]
        .as_i64()
        .context("the access token has no exp")
}

async fn organizations(
    http: &reqwest::Client,
    s: &Settings,
    token: &str,
) -> anyhow::Result<Vec<Value>> {
    let base = s
        .enterprise_base_url
        .as_deref()
        .context("enterprise_base_url is not set: run `keyward configure <url>`")?;
    let client = Client::with_http(http.clone(), base)?.token(token);
    match client.my_organizations().await {
        Ok(orgs) => Ok(orgs),
        Err(ClientError::Api {
            status: 401,
            message,
            ..
        }) => bail!("the server refused the token ({message}): run `keyward login`"),
        Err(e) => Err(e.into()),
    }
}

fn current_token() -> anyhow::Result<String> {
    let token = settings::load_token()?.context("not signed in: run `keyward login`")?;
    if token.expires_at <= unix_now() {
        bail!("the sign-in expired: run `keyward login` again");
    }
    Ok(token.access_token)
}

/// The wall clock in Unix seconds, to compare a stored token's expiry: the CLI is not the server
/// and has no injected clock.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn logout() -> anyhow::Result<ExitCode> {
    settings::delete_token()?;
    println!("Signed out: the stored token is gone.");
    Ok(ExitCode::SUCCESS)
}

pub fn config(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::List => {
            let s = Settings::load()?;
            for key in settings::KEYS {
                println!(
                    "{key} = {}",
                    s.get(key).unwrap_or_else(|| "(not set)".into())
                );
            }
        }
        ConfigCommand::Set { key, value } => {
            let mut s = Settings::load()?;
            s.set(&key, &value)?;
            s.save()?;
            println!("{key} = {}", s.get(&key).unwrap_or_default());
        }
        ConfigCommand::Reset => {
            Settings::reset()?;
            println!("Every setting is back to its default (unset).");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn org(args: OrgArgs) -> anyhow::Result<ExitCode> {
    let mut s = Settings::load()?;
    let client = http(&args.people)?;
    let token = current_token()?;
    let orgs = organizations(&client, &s, &token).await?;
    match args.command {
        OrgCommand::List(out) if out.output == Output::Json => super::admin::print(&orgs)?,
        OrgCommand::List(_) => {
            if orgs.is_empty() {
                println!("You do not belong to any organization yet.");
            }
            for o in &orgs {
                let uuid = o["uuid"].as_str().unwrap_or("");
                let mark = if s.org_uuid.as_deref() == Some(uuid) {
                    "*"
                } else {
                    " "
                };
                println!("{mark} {}  {uuid}", o["name"].as_str().unwrap_or(""));
            }
        }
        OrgCommand::Switch { org_uuid } => {
            let wanted = org_uuid.trim().to_lowercase();
            let Some(found) = orgs
                .iter()
                .find(|o| o["uuid"].as_str() == Some(wanted.as_str()))
            else {
                bail!("you are not a member of organization {wanted:?}: see `keyward org list`");
            };
            s.org_uuid = Some(wanted.clone());
            s.org_name = found["name"].as_str().map(str::to_owned);
            s.save()?;
            println!(
                "Now acting in {} ({wanted})",
                s.org_name.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
