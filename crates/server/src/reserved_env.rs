//! At startup, the stored environment variables and LLM-connection `env` keys that are reserved
//! (security review H4) but were saved before the API refused them. Each kickoff leaves them out;
//! this says so once per row, naming the organization, the key and what to do.

use std::collections::BTreeMap;

use keyward_core::env_keys::reserved;
use keyward_store::Store;

/// Logs one warning per stored row holding a reserved key; returns how many there were. A store
/// error is logged and ends the check: it must not stop the server from starting.
pub async fn report(store: &dyn Store) -> usize {
    match scan(store).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("cannot check stored environment variables for reserved keys: {e}");
            0
        }
    }
}

async fn scan(store: &dyn Store) -> Result<usize, keyward_store::StoreError> {
    let mut found = 0;
    for org in store.list_orgs().await? {
        for var in store.list_env_vars(org.id).await? {
            if let Some(why) = reserved(&var.key) {
                found += 1;
                tracing::warn!(
                    "organization '{}' ({}): environment variable {} holds a reserved key and is left out of every kickoff ({why}); delete it: keyward env delete {} (or DELETE /api/v1/environment-variables/{})",
                    org.name,
                    org.id,
                    var.key,
                    var.key,
                    var.id
                );
            }
        }
        for connection in store.list_llm_connections(org.id).await? {
            // A damaged env is reported where it is read; here only the keys matter.
            let env: BTreeMap<String, String> =
                serde_json::from_str(&connection.env).unwrap_or_default();
            for (key, why) in env.keys().filter_map(|k| Some((k, reserved(k)?))) {
                found += 1;
                tracing::warn!(
                    "organization '{}' ({}): LLM connection '{}' sets the reserved key {key} in its env, left out of every kickoff ({why}); remove it from the connection's env (PATCH /api/v1/llm-connections/{} with the env without it)",
                    org.name,
                    org.id,
                    connection.name,
                    connection.name
                );
            }
        }
    }
    Ok(found)
}
