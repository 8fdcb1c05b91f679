//! The people's CLI settings (the CrewAI CLI's keys) and where the access token is kept: the OS
//! keyring when there is one, else a 0600 file beside the settings.
//!
//! Settings live in `$KEYWARD_CONFIG_DIR`, else `$XDG_CONFIG_HOME/keyward`, else
//! `~/.config/keyward` (directory 0700).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The keys `keyward config` knows, in the CrewAI CLI's names.
pub const KEYS: &[&str] = &[
    "enterprise_base_url",
    "oauth2_provider",
    "oauth2_domain",
    "oauth2_client_id",
    "oauth2_audience",
    "oauth2_extra",
    "org_uuid",
    "org_name",
];

pub const PROVIDERS: &[&str] = &["workos", "okta", "auth0", "entra_id", "keycloak"];

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_audience: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub oauth2_extra: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
}

pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KEYWARD_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("keyward"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("cannot find a settings directory: set KEYWARD_CONFIG_DIR or HOME")?;
    Ok(PathBuf::from(home).join(".config").join("keyward"))
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the settings directory {}", dir.display()))
}

/// Writes `bytes` to `path` atomically (temp file + rename), readable by this user only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a file path has a directory")?;
    ensure_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

impl Settings {
    fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("settings.json"))
    }

    pub fn load() -> anyhow::Result<Settings> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a valid settings file: fix it or run `keyward config reset`",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self).context("settings serialise")?;
        write_private(&Self::path()?, &text)
    }

    pub fn reset() -> anyhow::Result<()> {
        match std::fs::remove_file(Self::path()?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context("cannot delete the settings file"),
        }
    }

    /// The value of `key` as `config list` shows it.
    pub fn get(&self, key: &str) -> Option<String> {
        match key {
            "enterprise_base_url" => self.enterprise_base_url.clone(),
            "oauth2_provider" => self.oauth2_provider.clone(),
            "oauth2_domain" => self.oauth2_domain.clone(),
            "oauth2_client_id" => self.oauth2_client_id.clone(),
            "oauth2_audience" => self.oauth2_audience.clone(),
            "oauth2_extra" => (!self.oauth2_extra.is_empty())
                .then(|| Value::Object(self.oauth2_extra.clone()).to_string()),
            "org_uuid" => self.org_uuid.clone(),
            "org_name" => self.org_name.clone(),
            _ => None,
        }
    }

    /// Validates `value` for `key` and sets it; the error says what a valid value looks like.
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let value = value.trim();
        let text = |what: &str, max: usize| -> anyhow::Result<String> {
            if value.is_empty()
                || value.len() > max
                || value.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                bail!(
                    "{key}: {value:?} is not a valid {what} (non-empty, no spaces, at most {max} characters)"
                );
            }
            Ok(value.to_owned())
        };
        match key {
            "enterprise_base_url" => self.enterprise_base_url = Some(base_url(value)?),
            "oauth2_provider" => {
                if !PROVIDERS.contains(&value) {
                    bail!(
                        "oauth2_provider: {value:?} is not a provider; use one of {}",
                        PROVIDERS.join(", ")
                    );
                }
                self.oauth2_provider = Some(value.to_owned());
            }
            "oauth2_domain" => {
                let domain = value
                    .strip_prefix("https://")
                    .unwrap_or(value)
                    .trim_end_matches('/');
                if value.starts_with("http://")
                    || domain.is_empty()
                    || domain.contains(['?', '#'])
                    || domain.chars().any(char::is_whitespace)
                {
                    bail!(
                        "oauth2_domain: {value:?} is not a domain; give the provider's host, e.g. your-domain.okta.com (no http://, query or spaces)"
                    );
                }
                self.oauth2_domain = Some(domain.to_owned());
            }
            "oauth2_client_id" => self.oauth2_client_id = Some(text("client id", 256)?),
            "oauth2_audience" => self.oauth2_audience = Some(text("audience", 512)?),
            "oauth2_extra" => match serde_json::from_str::<Value>(value) {
                Ok(Value::Object(map)) => self.oauth2_extra = map,
                _ => bail!(
                    "oauth2_extra: {value:?} is not a JSON object, e.g. '{{\"realm\": \"acme\"}}'"
                ),
            },
            "org_uuid" => {
                let id: uuid::Uuid = value.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "org_uuid: {value:?} is not an organization UUID (see `keyward org list`)"
                    )
                })?;
                self.org_uuid = Some(id.to_string());
            }
            "org_name" => {
                if value.is_empty() || value.len() > 200 {
                    bail!("org_name: give a name of 1 to 200 characters");
                }
                self.org_name = Some(value.to_owned());
            }
            _ => bail!(
                "unknown setting {key:?}; the settings are {}",
                KEYS.join(", ")
            ),
        }
        Ok(())
    }
}

/// `https://host[:port][/path]`; plain http only for loopback (a local test server).
pub fn base_url(value: &str) -> anyhow::Result<String> {
    let value = value.trim().trim_end_matches('/');
    let rest = match (
        value.strip_prefix("https://"),
        value.strip_prefix("http://"),
    ) {
        (Some(rest), _) => rest,
        (None, Some(rest))
            if rest.starts_with("127.0.0.1")
                || rest.starts_with("localhost")
                || rest.starts_with("[::1]") =>
        {
            rest
        }
        (None, Some(_)) => bail!(
            "enterprise_base_url: {value:?} must use https:// (plain http only for 127.0.0.1 and localhost)"
        ),
        (None, None) => bail!(
            "enterprise_base_url: {value:?} is not a URL; give it like https://keyward.example.com"
        ),
    };
    if rest.is_empty()
        || rest.starts_with('/')
        || rest.contains(['?', '#'])
        || rest.chars().any(char::is_whitespace)
    {
        bail!(
            "enterprise_base_url: {value:?} is not a URL like https://keyward.example.com (no query, fragment or spaces)"
        );
    }
    Ok(value.to_owned())
}

/// The stored access token.
#[derive(Serialize, Deserialize)]
pub struct StoredToken {
    pub access_token: String,
    pub expires_at: i64,
}

const KEYRING_SERVICE: &str = "keyward";
const KEYRING_USER: &str = "access-token";

fn token_file() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.json"))
}

fn use_keyring() -> bool {
    std::env::var("KEYWARD_CREDENTIAL_STORE").map_or(true, |v| v != "file")
}

/// Where a token went.
pub enum Stored {
    Keyring,
    File {
        path: PathBuf,
        keyring_error: Option<String>,
    },
}

/// Keeps the token in the OS keyring, or in a 0600 file when no keyring answers.
pub fn save_token(token: &StoredToken) -> anyhow::Result<Stored> {
    let text = serde_json::to_string(token).context("token serialise")?;
    let keyring_error = if use_keyring() {
        match keyring::Entry::new(KEYRING_SERVICE, KEYRING_USER).and_then(|e| e.set_password(&text))
        {
            Ok(()) => {
                // A stale file from an earlier keyring-less login must not outlive this one.
                let _ = std::fs::remove_file(token_file()?);
                return Ok(Stored::Keyring);
            }
            Err(e) => Some(e.to_string()),
        }
    } else {
        None
    };
    let path = token_file()?;
    write_private(&path, text.as_bytes())?;
    Ok(Stored::File {
        path,
        keyring_error,
    })
}

pub fn load_token() -> anyhow::Result<Option<StoredToken>> {
    if use_keyring()
        && let Ok(text) =
            keyring::Entry::new(KEYRING_SERVICE, KEYRING_USER).and_then(|e| e.get_password())
    {
        return serde_json::from_str(&text)
            .map(Some)
            .context("the token in the OS keyring is damaged: run `keyward login`");
    }
    let path = token_file()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is damaged: run `keyward login`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Forgets the token everywhere it may be.
pub fn delete_token() -> anyhow::Result<()> {
    if use_keyring()
        && let Ok(entry) = keyring::Entry::new(KEYRING_SERVICE, KEYRING_USER)
    {
        let _ = entry.delete_credential();
    }
    match std::fs::remove_file(token_file()?) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("cannot delete the token file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_validates_each_key() {
        let mut s = Settings::default();
        s.set("oauth2_provider", "okta").unwrap();
        assert!(
            s.set("oauth2_provider", "ldap")
                .unwrap_err()
                .to_string()
                .contains("workos, okta")
        );
        s.set("oauth2_domain", "https://acme.okta.com/").unwrap();
        assert_eq!(s.oauth2_domain.as_deref(), Some("acme.okta.com"));
        assert!(s.set("oauth2_domain", "http://acme.okta.com").is_err());
        assert!(
            s.set("enterprise_base_url", "http://keyward.example.com")
                .is_err()
        );
        s.set("enterprise_base_url", "https://kw.example.com/")
            .unwrap();
        assert!(s.set("org_uuid", "42").is_err());
        assert!(s.set("oauth2_extra", "[1]").is_err());
        s.set("oauth2_extra", r#"{"realm": "acme"}"#).unwrap();
        assert!(
            s.set("colour", "x")
                .unwrap_err()
                .to_string()
                .contains("enterprise_base_url")
        );
    }
}
