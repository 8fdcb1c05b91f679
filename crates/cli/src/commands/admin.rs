//! What the administrators' resource commands share: the typed client built from `ApiArgs` (a
//! personal access token, Keyward's CA, the organization) and the ways they print answers.

use anyhow::Context;
use keyward_client::Client;
use serde::Serialize;
use serde_json::Value;

use crate::common_args::{ApiArgs, Output};

/// The client for `keyward wi`, `keyward llm` and the other resource commands.
pub fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    let token = super::token_input::resolve(
        args.token.as_deref(),
        args.token_file.as_deref(),
        "KEYWARD_TOKEN",
    )?
    .context("no token: set KEYWARD_TOKEN (or --token-file) to a personal access token (kwp_…)")?;
    super::token_input::warn_if_cleartext(&args.url);
    // Without --org / KEYWARD_ORG, the organization chosen with `keyward org switch` (if any).
    let org = match &args.org {
        Some(org) => Some(org.clone()),
        None => super::settings::Settings::load()
            .ok()
            .and_then(|s| s.org_uuid),
    };
    Ok(Client::new(&args.url, args.ca_file.as_deref())?
        .token(&token)
        .organization(org.as_deref()))
}

/// The API's JSON, pretty-printed.
pub fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A list: one line per item with the columns that say what it is, or the API's JSON.
pub fn print_list<T: Serialize>(
    items: &[T],
    columns: &[&str],
    output: Output,
) -> anyhow::Result<()> {
    if output == Output::Json {
        return print(&items);
    }
    for item in items {
        let item = serde_json::to_value(item)?;
        let line: Vec<String> = columns
            .iter()
            .filter_map(|c| cell(&item[*c]).map(|v| format!("{c}={v}")))
            .collect();
        println!("{}", line.join("  "));
    }
    Ok(())
}

/// One item: a `field: value` line per column, or the API's JSON.
pub fn print_one<T: Serialize>(item: &T, columns: &[&str], output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print(item);
    }
    let item = serde_json::to_value(item)?;
    for c in columns {
        if let Some(v) = cell(&item[*c]) {
            println!("{c}: {v}");
        }
    }
    Ok(())
}

fn cell(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
