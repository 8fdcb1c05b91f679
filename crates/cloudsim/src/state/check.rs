//! The checker every section of the state file goes through: it names the line of the value it
//! refuses. Also what all clouds' sections share: secret declarations and the URL/GUID checks.

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state file {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("state file {path}, line {line}: {field}: {message}")]
    Invalid {
        path: String,
        line: usize,
        field: String,
        message: String,
    },
    #[error("state file {path}: cannot read it: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    pub name: S<String>,
    /// The current value; `versions` lists older ones first when history matters.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub versions: Vec<String>,
}

impl SecretDecl {
    /// Every version in order, the current one last.
    pub fn all_versions(&self) -> Vec<String> {
        let mut v = self.versions.clone();
        if let Some(value) = &self.value {
            v.push(value.clone());
        }
        v
    }
}

pub(super) struct Checker<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
    pub(super) error: Option<StateError>,
}

impl Checker<'_> {
    pub(super) fn fail(
        &mut self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        if self.error.is_some() {
            return;
        }
        let line = self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        self.error = Some(StateError::Invalid {
            path: self.path.to_owned(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn secrets(&mut self, secrets: &[SecretDecl], field: &str) {
        let mut seen = std::collections::BTreeSet::new();
        for s in secrets {
            if !seen.insert(s.name.get_ref().clone()) {
                self.fail(
                    s.name.span(),
                    format!("{field}.name"),
                    format!("secret '{}' is declared twice", s.name.get_ref()),
                );
            }
            if s.value.is_none() && s.versions.is_empty() {
                self.fail(
                    s.name.span(),
                    format!("{field}.value"),
                    format!("secret '{}' needs a value (or versions)", s.name.get_ref()),
                );
            }
        }
    }

    pub(super) fn guid(&mut self, value: &S<String>, field: &str) {
        if uuid::Uuid::parse_str(value.get_ref()).is_err() {
            self.fail(
                value.span(),
                field.to_owned(),
                format!("'{}' is not a GUID", value.get_ref()),
            );
        }
    }

    pub(super) fn https_url(&mut self, value: &S<String>, field: &str) {
        let v = value.get_ref();
        if !v.starts_with("https://") || v.len() <= "https://".len() {
            self.fail(
                value.span(),
                field.to_owned(),
                format!("'{v}' must be an https:// URL"),
            );
        }
    }
}
