//! Where routes come from and how a new generation replaces the old one.
//! - A route file (`--config`): its policy and CA files are watched with it (mtime and length
//!   every [`FILE_POLL`]) and SIGHUP re-reads it. A file that does not load is refused with an
//!   error log naming `file:line:column`, and the previous routes keep serving.
//! - Without a file: the database's `gateway_routes`, re-read every [`DB_POLL`], so every replica
//!   picks up a change made through the API within seconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use keyward_core::OrgId;
use keyward_policy::{Route, parse_route_file, route_from_json};
use keyward_store::Store;

use crate::table::{RouteEntry, RouteTable};
use crate::upstream::UpstreamClients;

pub const FILE_POLL: Duration = Duration::from_millis(500);
pub const DB_POLL: Duration = Duration::from_secs(2);

/// A route file's routes, validated, and every file they were read from.
pub struct LoadedFile {
    pub organization: Option<String>,
    pub routes: Vec<Route>,
    pub files: Vec<PathBuf>,
}

/// Reads and validates a route file and the files it names (relative to it). The error is the
/// sentence operators see, naming `file:line:column` when the problem has a place.
pub fn load_file(path: &Path) -> Result<LoadedFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the route file: {e}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let files = std::cell::RefCell::new(vec![path.to_path_buf()]);
    let read = |name: &str| -> Result<String, String> {
        let full = dir.join(name);
        files.borrow_mut().push(full.clone());
        std::fs::read_to_string(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
    };
    let parsed =
        parse_route_file(&path.display().to_string(), &text, &read).map_err(|e| e.to_string())?;
    Ok(LoadedFile {
        organization: parsed.organization,
        routes: parsed.routes,
        files: files.into_inner(),
    })
}

/// The organization a route file names (uuid or name); without one, the installation's only
/// organization.
pub async fn resolve_org(store: &dyn Store, named: Option<&str>) -> Result<OrgId, String> {
    let orgs = store
        .list_orgs()
        .await
        .map_err(|e| format!("cannot read the organizations: {e}"))?;
    match named {
        Some(text) => orgs
            .iter()
            .find(|o| o.id.to_string() == text || o.name == text)
            .map(|o| o.id)
            .ok_or_else(|| {
                format!("organization = \"{text}\" names no organization of this installation; use its name or uuid")
            }),
        None => match orgs.as_slice() {
            [only] => Ok(only.id),
            [] => Err("the installation has no organization yet; create one, then name it in the route file (organization = \"…\")".into()),
            _ => Err("the installation has several organizations: name the one owning these routes (organization = \"…\")".into()),
        },
    }
}

/// One stored route (the store's `gateway_routes`; the lead wires the table).
#[derive(Clone, Debug)]
pub struct GatewayRouteRow {
    pub id: String,
    pub org_id: OrgId,
    pub name: String,
    pub spec: serde_json::Value,
    pub updated_at: i64,
}

/// Reads every stored route (implemented over the store by `lib.rs`).
#[async_trait]
pub trait RouteRows: Send + Sync {
    async fn all_gateway_routes(&self) -> Result<Vec<GatewayRouteRow>, String>;
}

/// Builds and installs one generation of routes.
pub struct Reloader {
    pub table: Arc<RouteTable>,
    pub clients: Arc<UpstreamClients>,
}

impl Reloader {
    fn install(&self, routes: Vec<(Route, Option<OrgId>)>) -> Result<u64, String> {
        let mut entries = Vec::with_capacity(routes.len());
        for (route, org) in routes {
            let name = route.name.clone();
            entries.push(Arc::new(
                RouteEntry::from_route(route, org, &self.clients)
                    .map_err(|e| format!("route {name}: {e}"))?,
            ));
        }
        if entries.iter().any(|e| e.masker.is_some()) {
            crate::masking::refresh_soon();
        }
        Ok(self.table.replace(entries))
    }

    /// Loads the route file and installs it; on error the current routes stay.
    pub async fn reload_file(&self, path: &Path, store: &dyn Store) -> Result<u64, String> {
        let loaded = load_file(path)?;
        let org = resolve_org(store, loaded.organization.as_deref())
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.install(loaded.routes.into_iter().map(|r| (r, Some(org))).collect())
    }

    /// Installs the stored routes; one that does not validate refuses the whole generation.
    ///
    /// Rows come oldest first. A route matching exactly what an older one matches (same host
    /// and path prefix) is left out with an error in the log: organizations share the gateway,
    /// and a newer route of one must not take another's traffic, nor stop every other change
    /// from loading.
    pub fn install_rows(&self, rows: &[GatewayRouteRow]) -> Result<u64, String> {
        let mut routes: Vec<(Route, Option<OrgId>)> = Vec::with_capacity(rows.len());
        let mut taken: Vec<(Option<String>, Option<String>, String)> = Vec::new();
        for row in rows {
            let route = route_from_json(&row.spec)
                .map_err(|e| format!("stored route {} ({}): {e}", row.name, row.id))?;
            if let Some((_, _, first)) = taken
                .iter()
                .find(|(host, prefix, _)| *host == route.host && *prefix == route.path_prefix)
            {
                tracing::error!(
                    route = %row.name,
                    route_id = %row.id,
                    older_route_id = %first,
                    "stored gateway route left out: an older route already matches the same host and path prefix; change its path_prefix or host"
                );
                continue;
            }
            taken.push((
                route.host.clone(),
                route.path_prefix.clone(),
                row.id.clone(),
            ));
            routes.push((route, Some(row.org_id)));
        }
        self.install(routes)
    }
}

/// Counts a reload and logs a refused one.
pub fn record(outcome: &Result<u64, String>, source: &str) {
    match outcome {
        Ok(generation) => {
            metrics::counter!("keyward_gateway_config_reloads_total", "result" => "ok")
                .increment(1);
            tracing::info!(generation, source, "gateway routes loaded");
        }
        Err(error) => {
            metrics::counter!("keyward_gateway_config_reloads_total", "result" => "error")
                .increment(1);
            tracing::error!(error = %error, source, "gateway configuration refused; the previous routes keep serving");
        }
    }
}

/// What tells a file changed: modification time and length (absent files included).
fn fingerprint(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

/// The files a route file depends on; when it cannot be read, at least itself.
fn watched(path: &Path) -> Vec<PathBuf> {
    load_file(path)
        .map(|l| l.files)
        .unwrap_or_else(|_| vec![path.to_path_buf()])
}

/// Installs the SIGHUP handler. Call it before announcing readiness: until it is installed a
/// SIGHUP terminates the process (the signal's default action).
pub fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be watched; the route file is still polled");
            None
        }
    }
}

/// Re-reads the route file when it or a file it names changes, and on SIGHUP.
pub async fn watch_file(
    reloader: Arc<Reloader>,
    path: PathBuf,
    store: Arc<dyn Store>,
    mut hangup: Option<tokio::signal::unix::Signal>,
) {
    let mut files = watched(&path);
    let mut seen = fingerprint(&files);
    let mut tick = tokio::time::interval(FILE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let source = tokio::select! {
            _ = tick.tick() => {
                if fingerprint(&files) == seen {
                    continue;
                }
                "file change"
            }
            Some(()) = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
        };
        // An editor may still be writing: settle a moment, then read what is there.
        tokio::time::sleep(Duration::from_millis(50)).await;
        files = watched(&path);
        seen = fingerprint(&files);
        let outcome = reloader.reload_file(&path, store.as_ref()).await;
        record(&outcome, source);
    }
}

/// What tells stored routes changed: each route's id, last update and spec (two updates within
/// one second of `updated_at` still differ by their spec).
pub type Stamp = Vec<(String, i64, String)>;

pub fn stamp(rows: &[GatewayRouteRow]) -> Stamp {
    let mut stamp: Stamp = rows
        .iter()
        .map(|r| (r.id.clone(), r.updated_at, r.spec.to_string()))
        .collect();
    stamp.sort();
    stamp
}

/// Re-reads the stored routes every [`DB_POLL`], installing them when any changed since `seen`
/// (the stamp of the routes installed at startup).
pub async fn watch_rows(
    reloader: Arc<Reloader>,
    rows: Arc<dyn RouteRows>,
    mut seen: Option<Stamp>,
) {
    let mut tick = tokio::time::interval(DB_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let current = match rows.all_gateway_routes().await {
            Ok(current) => current,
            Err(e) => {
                tracing::error!(error = %e, "reading the stored gateway routes failed; the previous routes keep serving");
                continue;
            }
        };
        let stamp = stamp(&current);
        if seen.as_ref() == Some(&stamp) {
            continue;
        }
        let outcome = reloader.install_rows(&current);
        record(&outcome, "database");
        seen = Some(stamp);
    }
}
