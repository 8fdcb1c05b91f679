//! Where things are in a route file, so that an error found after deserializing (a missing
//! name, a bad upstream, a duplicate route) points at the route's table or the offending key.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

/// Byte offsets into the route file.
#[derive(Debug, Default)]
pub(super) struct FileSpans {
    root_keys: HashMap<String, usize>,
    routes: Vec<RouteSpans>,
}

#[derive(Debug, Default)]
struct RouteSpans {
    /// The start of the route's table.
    table: usize,
    /// Key → start of the key (`credential.automation` for keys of the credential table).
    keys: HashMap<String, usize>,
    /// Where the text of an inline `policy` starts, when its characters map one to one onto the
    /// file (a literal string, or a basic string without escapes).
    inline_policy: Option<usize>,
}

impl FileSpans {
    /// Positions in `text`; empty when the text does not parse (then deserializing has already
    /// reported the syntax error with its own position).
    pub(super) fn parse(text: &str) -> FileSpans {
        let Ok(root) = DeTable::parse(text) else {
            return FileSpans::default();
        };
        let mut spans = FileSpans::default();
        for (key, value) in root.get_ref() {
            spans
                .root_keys
                .insert(key.get_ref().to_string(), key.span().start);
            if key.get_ref() != "route" {
                continue;
            }
            let DeValue::Array(routes) = value.get_ref() else {
                continue;
            };
            for route in routes.iter() {
                let mut route_spans = RouteSpans {
                    table: route.span().start,
                    ..RouteSpans::default()
                };
                if let DeValue::Table(table) = route.get_ref() {
                    for (key, value) in table {
                        let name = key.get_ref().to_string();
                        if let DeValue::Table(inner) = value.get_ref() {
                            for (inner_key, _) in inner {
                                route_spans.keys.insert(
                                    format!("{name}.{}", inner_key.get_ref()),
                                    inner_key.span().start,
                                );
                            }
                        }
                        if name == "policy" {
                            route_spans.inline_policy =
                                string_content_start(text, value.span().start, value.span().end);
                        }
                        route_spans.keys.insert(name, key.span().start);
                    }
                }
                spans.routes.push(route_spans);
            }
        }
        spans
    }

    pub(super) fn root_key(&self, key: &str) -> Option<usize> {
        self.root_keys.get(key).copied()
    }

    /// The key `field` names in route `index` (`policies[1]` → `policies`,
    /// `credential.env` → itself, else `credential`), or the route's table.
    pub(super) fn route_field(&self, index: usize, field: Option<&str>) -> Option<usize> {
        let route = self.routes.get(index)?;
        let Some(field) = field else {
            return Some(route.table);
        };
        let without_index = field.split('[').next().unwrap_or(field);
        let top = without_index.split('.').next().unwrap_or(without_index);
        route
            .keys
            .get(without_index)
            .or_else(|| route.keys.get(top))
            .copied()
            .or(Some(route.table))
    }

    pub(super) fn inline_policy(&self, index: usize) -> Option<usize> {
        self.routes.get(index)?.inline_policy
    }
}

/// The offset of the first character of a string value's content, when offsets in the value
/// equal offsets in the file (no escapes). A multi-line string drops the newline right after
/// its opening quotes, as TOML does.
fn string_content_start(text: &str, start: usize, end: usize) -> Option<usize> {
    let raw = text.get(start..end)?;
    let (quote_len, multiline) = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with('\'') || raw.starts_with('"') {
        (1, false)
    } else {
        return None;
    };
    if raw.starts_with('"') && raw.contains('\\') {
        return None;
    }
    let mut content = start + quote_len;
    if multiline {
        let rest = text.get(content..)?;
        if rest.starts_with("\r\n") {
            content += 2;
        } else if rest.starts_with('\n') {
            content += 1;
        }
    }
    Some(content)
}
