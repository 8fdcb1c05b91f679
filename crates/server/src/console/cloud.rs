//! What the cloud settings pages (workload identity, LLM connections, secret providers,
//! environment variables) share: reading their forms and deciding which forms to show.

use std::collections::HashMap;

use keyward_core::Need;

use super::guard::Ctx;

/// The fields of a posted form.
pub type Fields = HashMap<String, String>;

/// Whether the person's role meets `need`: only which forms are shown (each route checks again).
pub fn allows(ctx: &Ctx, need: Need) -> bool {
    match (need, ctx.caller.org.as_ref()) {
        (Need::Feature(f, l) | Need::Entity(_, f, l), Some(org)) => org.role.allows(f, l),
        _ => false,
    }
}

/// A field as typed, trimmed; absent reads as empty.
pub fn text(fields: &Fields, name: &str) -> String {
    fields
        .get(name)
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// A field that was filled in.
pub fn given(fields: &Fields, name: &str) -> Option<String> {
    Some(text(fields, name)).filter(|v| !v.is_empty())
}

/// A checkbox: present when ticked.
pub fn ticked(fields: &Fields, name: &str) -> bool {
    fields.contains_key(name)
}

/// A comma-separated list of names, as typed in one text input.
pub fn list(fields: &Fields, name: &str) -> Vec<String> {
    text(fields, name)
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An option of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The options of a select from `(value, label)` pairs with `current` selected.
pub fn choices<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    current: &str,
) -> Vec<Choice> {
    items
        .into_iter()
        .map(|(value, label)| Choice {
            selected: value == current,
            value: value.to_owned(),
            label: label.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_blanks_read_as_typed() {
        let fields: Fields = [
            ("a".to_owned(), " x, ,y ".to_owned()),
            ("b".to_owned(), "  ".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(list(&fields, "a"), ["x", "y"]);
        assert_eq!(given(&fields, "b"), None);
        assert_eq!(given(&fields, "a").as_deref(), Some("x, ,y"));
        assert!(!ticked(&fields, "c"));
    }
}
