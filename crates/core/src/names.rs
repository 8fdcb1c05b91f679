//! Rules for the human-chosen names of resources (automations, tokens, organizations).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long; the limit is {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{field} may contain only letters, digits, '-', '_' and '.', and must start with a letter or digit (got {value:?})"
    )]
    BadCharacters { field: &'static str, value: String },
    #[error("{field} must not contain control characters")]
    ControlCharacters { field: &'static str },
}

impl NameError {
    pub fn field(&self) -> &'static str {
        match self {
            NameError::Empty { field }
            | NameError::TooLong { field, .. }
            | NameError::BadCharacters { field, .. }
            | NameError::ControlCharacters { field } => field,
        }
    }
}

/// A slug-like name that is used on command lines (`keyward run --automation <name>`).
pub fn validate_slug(field: &'static str, value: &str) -> Result<(), NameError> {
    const MAX: usize = 64;
    if value.is_empty() {
        return Err(NameError::Empty { field });
    }
    if value.len() > MAX {
        return Err(NameError::TooLong {
            field,
            len: value.len(),
            max: MAX,
        });
    }
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !first_ok || !rest_ok {
        return Err(NameError::BadCharacters {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// A free-text display name (organization names, token labels).
pub fn validate_display_name(field: &'static str, value: &str) -> Result<(), NameError> {
    const MAX: usize = 200;
    if value.trim().is_empty() {
        return Err(NameError::Empty { field });
    }
    if value.chars().count() > MAX {
        return Err(NameError::TooLong {
            field,
            len: value.chars().count(),
            max: MAX,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(NameError::ControlCharacters { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_typical_names_and_refuse_others() {
        assert!(validate_slug("name", "research-crew_2.prod").is_ok());
        assert_eq!(
            validate_slug("name", ""),
            Err(NameError::Empty { field: "name" })
        );
        assert!(matches!(
            validate_slug("name", "-leading"),
            Err(NameError::BadCharacters { .. })
        ));
        assert!(matches!(
            validate_slug("name", "has space"),
            Err(NameError::BadCharacters { .. })
        ));
        assert!(matches!(
            validate_slug("name", &"a".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn display_names_refuse_blank_and_control_characters() {
        assert!(validate_display_name("name", "Acme Corp").is_ok());
        assert!(validate_display_name("name", "   ").is_err());
        assert!(validate_display_name("name", "a\u{0}b").is_err());
    }
}
