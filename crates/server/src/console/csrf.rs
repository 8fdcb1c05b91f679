//! The console's CSRF token: derived from the session cookie (so a token works only with the
//! session it was made for, and dies with it), put in a hidden `csrf` field of every form, and
//! compared in constant time by the permission layer on every console POST.

use crate::people::local;

/// The form field the token travels in.
pub const FIELD: &str = "csrf";

/// Whether the urlencoded `form` carries the token of session `session`; if not, what the
/// refusal page says.
pub fn check(session: &str, form: &[u8]) -> Result<(), &'static str> {
    let given = form_urlencoded::parse(form)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    match given {
        Some(token) if local::csrf_matches(session, &token) => Ok(()),
        Some(_) => Err(
            "This form carries a CSRF token of another session (it is stale, or it came from another site). Nothing was changed: reload the page and send the form again.",
        ),
        None => Err(
            "This form has no CSRF token, so it may come from another site. Nothing was changed: open the page in the console and send the form from there.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sessions_own_token_passes() {
        let token = local::csrf_token("kwsess_a");
        let form = format!("csrf={token}&name=x");
        assert!(check("kwsess_a", form.as_bytes()).is_ok());
        assert!(check("kwsess_b", form.as_bytes()).is_err());
        assert!(check("kwsess_a", b"name=x").is_err());
        assert!(check("kwsess_a", b"csrf=&name=x").is_err());
    }
}
