//! The route table: which route a request belongs to (host without port, and the longest
//! `path_prefix` on a segment boundary), held as an immutable [`Snapshot`] that a reload swaps
//! atomically, so a request in flight keeps the routes it started with.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use keyward_core::OrgId;
use keyward_policy::{Accept, ApprovalWait, CredentialSpec, NoMatch, Route};

use crate::phases::PolicyPhase;
use crate::route_metrics::RouteMetrics;
use crate::upstream::{Upstream, UpstreamClients};

/// One route as the data path uses it.
pub struct RouteEntry {
    pub name: String,
    /// The organization owning the route (audit events, and callers must belong to it).
    pub org: Option<OrgId>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub strip_prefix: bool,
    pub upstream: Upstream,
    pub accept: Vec<Accept>,
    pub policy: Arc<dyn PolicyPhase>,
    pub no_match: NoMatch,
    pub inspect_limit: usize,
    pub timeout: Duration,
    pub approval: ApprovalWait,
    pub approval_timeout: Duration,
    pub credential: CredentialSpec,
    pub metrics: RouteMetrics,
    /// Compiled from `[route.mask]`, with the organization's secret values (`masking`).
    pub masker: Option<keyward_mask::Masker>,
}

impl RouteEntry {
    /// A validated route, with its upstream client taken from (or added to) `clients`.
    pub fn from_route(
        route: Route,
        org: Option<OrgId>,
        clients: &UpstreamClients,
    ) -> Result<RouteEntry, String> {
        let upstream = Upstream::new(
            route.upstream.clone(),
            clients.client(route.upstream_ca.as_deref(), route.connect_timeout)?,
        );
        let metrics = RouteMetrics::new(&route.name);
        let masker = crate::masking::route_masker(route.mask.as_ref(), org)?;
        Ok(RouteEntry {
            name: route.name,
            org,
            host: route.host.map(|h| h.to_ascii_lowercase()),
            path_prefix: route.path_prefix,
            strip_prefix: route.strip_prefix,
            upstream,
            accept: route.accept,
            policy: Arc::new(route.policies),
            no_match: route.no_match,
            inspect_limit: route.inspect_limit,
            timeout: route.timeout,
            approval: route.approval,
            approval_timeout: route.approval_timeout,
            credential: route.credential,
            metrics,
            masker,
        })
    }

    /// How many bytes of `path` the prefix covers when it matches on a segment boundary.
    fn prefix_match(&self, path: &str) -> Option<usize> {
        let Some(prefix) = self.path_prefix.as_deref() else {
            return Some(0);
        };
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Some(0);
        }
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(prefix.len())
    }

    /// The path the upstream sees after the route's prefix, if stripped (always starts with `/`).
    pub fn forwarded_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.strip_prefix {
            return path.into();
        }
        let covered = self.prefix_match(path).unwrap_or(0);
        let rest = &path[covered..];
        if rest.is_empty() {
            "/".into()
        } else {
            rest.into()
        }
    }
}

/// One generation of the configuration.
pub struct Snapshot {
    /// Counts successful loads from 1; `/healthz` shows it.
    pub generation: u64,
    pub routes: Vec<Arc<RouteEntry>>,
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot {
            generation: 0,
            routes: Vec::new(),
        }
    }

    /// The route for `host` (no port, any case) and `path`: a route naming the host beats one
    /// without; then the longest prefix wins; file order breaks ties.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<RouteEntry>> {
        let host = host.to_ascii_lowercase();
        let mut best: Option<(&Arc<RouteEntry>, (bool, usize))> = None;
        for route in &self.routes {
            if let Some(h) = &route.host
                && *h != host
            {
                continue;
            }
            let Some(len) = route.prefix_match(path) else {
                continue;
            };
            let rank = (route.host.is_some(), len);
            if best.as_ref().is_none_or(|(_, r)| rank > *r) {
                best = Some((route, rank));
            }
        }
        best.map(|(route, _)| route)
    }
}

/// The current snapshot, swapped whole by reloads.
pub struct RouteTable {
    current: ArcSwap<Snapshot>,
}

impl RouteTable {
    pub fn new(snapshot: Snapshot) -> RouteTable {
        RouteTable {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot a request keeps for its whole life.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The organizations some current route masks for (their static values are kept).
    pub fn masking_orgs(&self) -> std::collections::BTreeSet<OrgId> {
        let snapshot = self.current.load();
        snapshot
            .routes
            .iter()
            .filter(|r| r.masker.is_some())
            .filter_map(|r| r.org)
            .collect()
    }

    /// Installs the next generation of `routes`; returns its generation.
    pub fn replace(&self, routes: Vec<Arc<RouteEntry>>) -> u64 {
        let generation = self.current.load().generation + 1;
        self.current
            .store(Arc::new(Snapshot { generation, routes }));
        generation
    }
}

/// The host of a request without its port: the URI's authority (HTTP/2), else `Host`.
pub fn request_host<B>(request: &http::Request<B>) -> String {
    let raw = request
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    strip_port(&raw).to_ascii_lowercase()
}

fn strip_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pipeline::tests::AllowAll;

    pub(crate) fn entry(name: &str, host: Option<&str>, prefix: Option<&str>) -> RouteEntry {
        let clients = UpstreamClients::default();
        RouteEntry {
            name: name.into(),
            org: None,
            host: host.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
            strip_prefix: true,
            upstream: Upstream::new(
                url::Url::parse("http://127.0.0.1:9/v1").unwrap(),
                clients.client(None, Duration::from_secs(1)).unwrap(),
            ),
            accept: vec![Accept::Workload, Accept::Idp, Accept::Pat],
            policy: Arc::new(AllowAll),
            no_match: NoMatch::Deny,
            inspect_limit: 1024,
            timeout: Duration::from_secs(5),
            approval: ApprovalWait::Hold,
            approval_timeout: Duration::from_secs(2),
            credential: CredentialSpec::None,
            metrics: RouteMetrics::new(name),
            masker: None,
        }
    }

    fn snapshot(routes: Vec<RouteEntry>) -> Snapshot {
        Snapshot {
            generation: 1,
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    #[test]
    fn longest_prefix_on_a_segment_boundary_wins() {
        let table = snapshot(vec![
            entry("root", None, Some("/")),
            entry("openai", None, Some("/openai")),
            entry("openai-v2", None, Some("/openai/v2")),
        ]);
        let name = |path: &str| table.find("any", path).map(|r| r.name.clone());
        assert_eq!(name("/openai/chat").as_deref(), Some("openai"));
        assert_eq!(name("/openai").as_deref(), Some("openai"));
        assert_eq!(name("/openai/v2/x").as_deref(), Some("openai-v2"));
        // `/openaix` is not under `/openai`.
        assert_eq!(name("/openaix").as_deref(), Some("root"));
    }

    #[test]
    fn host_routes_beat_hostless_ones_and_ports_are_ignored() {
        let table = snapshot(vec![
            entry("any", None, Some("/api")),
            entry("internal", Some("llm.internal"), Some("/")),
        ]);
        assert_eq!(
            table.find("llm.internal", "/api/x").unwrap().name,
            "internal"
        );
        assert_eq!(table.find("other", "/api/x").unwrap().name, "any");
        assert!(table.find("other", "/nothing").is_none());
        let request = http::Request::builder()
            .uri("/x")
            .header("host", "LLM.internal:8444")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), "llm.internal");
    }

    #[test]
    fn the_prefix_is_stripped_before_forwarding() {
        let route = entry("openai", None, Some("/openai"));
        assert_eq!(
            route.forwarded_path("/openai/chat/completions"),
            "/chat/completions"
        );
        assert_eq!(route.forwarded_path("/openai"), "/");
        let mut kept = entry("kept", None, Some("/openai"));
        kept.strip_prefix = false;
        assert_eq!(kept.forwarded_path("/openai/chat"), "/openai/chat");
    }

    #[test]
    fn a_swap_keeps_the_old_snapshot_for_whoever_holds_it() {
        let table = RouteTable::new(snapshot(vec![entry("old", None, Some("/"))]));
        let held = table.load();
        let generation = table.replace(vec![Arc::new(entry("new", None, Some("/")))]);
        assert_eq!(generation, 2);
        assert_eq!(held.routes[0].name, "old");
        assert_eq!(table.load().routes[0].name, "new");
    }
}
