//! The route table: an immutable snapshot built off the hot path and
//! swapped whole; lookups are one hash probe for host routes and one probe
//! per path segment for path routes (longest prefix first).

use std::collections::HashMap;
use std::sync::Arc;

use crate::adapter::{Adapter, AdapterOverrides};
use crate::route::{AuthBridge, AuthBridgeMode, Route, RouteMode};

/// A route prepared for serving: everything derivable is derived once here.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    /// The stored record, less its `policy` (see [`TableBuilder`]).
    pub route: Route,
    pub adapter: Arc<Adapter>,
    /// Public path prefix without the trailing slash; empty on host routes.
    pub public_prefix: String,
    /// Prefix the upstream serves under, without trailing slash; empty when
    /// the upstream believes it lives at `/`.
    pub upstream_prefix: String,
    /// Full host of a subdomain route (`{route_host}.{apps_domain}`).
    pub host: Option<String>,
    /// The upstream targets, lower-case, for recognising absolute
    /// redirects that point at the upstream.
    pub upstream_authorities: Vec<String>,
    /// The auth-bridge header to inject upstream, secret unsealed.
    pub bridge: Option<BridgeHeader>,
    /// `policy.public = true`: served without authentication (docs,
    /// status pages). Off unless the operator says so.
    pub public: bool,
    /// The name of this route's session cookie ([`session_cookie_name`]).
    pub session_cookie: String,
}

impl CompiledRoute {
    /// Upstream target `i` (a [`crate::route::Upstream`] index), as stored.
    #[must_use]
    pub fn target(&self, i: usize) -> Option<&str> {
        self.route.upstream.targets.get(i).map(String::as_str)
    }
}

/// Prefix of every cookie the proxy sets: what the forwarder strips so no
/// proxy cookie reaches an upstream.
pub const SESSION_COOKIE_PREFIX: &str = "pp_s_";

/// The session cookie name of a route. Path routes share one host, so each
/// route gets its own name; the browser then sends only the cookie of the
/// route whose Path matches, and one route's cookie never shadows
/// another's.
#[must_use]
pub fn session_cookie_name(route: uuid::Uuid) -> String {
    let simple = route.simple().to_string();
    format!("{SESSION_COOKIE_PREFIX}{}", &simple[..12])
}

/// An auth-bridge header ready to send: lower-case name and full value
/// (`token abc…`). The value is redacted from `Debug`, so a route table
/// dump can never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct BridgeHeader {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for BridgeHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHeader")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl BridgeHeader {
    /// The header for `bridge` carrying `secret`.
    #[must_use]
    pub fn new(bridge: &AuthBridge, secret: &str) -> Self {
        let name = match bridge.mode {
            AuthBridgeMode::AuthorizationHeader => "authorization".to_owned(),
            AuthBridgeMode::Header => bridge.header.to_ascii_lowercase(),
        };
        let value = match &bridge.scheme {
            Some(s) => format!("{s} {secret}"),
            None => secret.to_owned(),
        };
        Self { name, value }
    }
}

/// The outcome of matching a request against the table.
#[derive(Debug, Clone)]
pub struct ResolvedRoute {
    pub route: Arc<CompiledRoute>,
    /// The path to send upstream (normalized, mapped per `base_url_strategy`).
    pub upstream_path: String,
    /// The request addressed the bare prefix without its trailing slash.
    pub bare_prefix: bool,
}

/// A route that could not be placed because another one owns its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub kept: uuid::Uuid,
    pub dropped: uuid::Uuid,
    pub address: String,
}

/// The table's maps hash with foldhash, seeded per process: a lookup
/// hashes the request's host (and each prefix of its path), and SipHash
/// was several times slower at it. Keys are inserted only from stored
/// routes, so a client's choice of host cannot crowd a bucket.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    apps_domain: String,
    /// Keys are shared strings: an incremental update clones the maps,
    /// and a shared key clones without an allocation.
    hosts: Map<Arc<str>, Arc<CompiledRoute>>,
    paths: Map<Arc<str>, Arc<CompiledRoute>>,
    by_id: Map<uuid::Uuid, Arc<CompiledRoute>>,
    max_depth: usize,
}

impl RouteTable {
    /// Builds a table from stored routes, with no auth-bridge secrets (a
    /// running proxy builds through [`TableBuilder`], which unseals them).
    /// Routes that are deleted or not in a served state are left out; of
    /// two routes claiming one address the older wins and the other is
    /// reported.
    #[must_use]
    pub fn build(apps_domain: &str, routes: Vec<Route>) -> (Self, Vec<Conflict>) {
        let mut builder = TableBuilder::new(apps_domain, &|_| None);
        for route in routes {
            builder.push(route);
        }
        builder.finish()
    }

    /// This table with `changes` applied: each stored route replaces the
    /// one of its id, or removes it when it is deleted or no longer served,
    /// and takes its new address by the same rule as a build (the older
    /// route wins). Unchanged routes are shared with this table.
    ///
    /// Every changed route leaves the table before any is placed again: a
    /// batch may move one route off an address and give the address to
    /// another, and only the routes' final states are in it.
    ///
    /// A route left out of the table because an older one held its address
    /// (a conflict) is not reconsidered when that one leaves; the store
    /// keeps live addresses unique, so only hand-written rows get there, and
    /// the next full build places it.
    #[must_use]
    pub fn with_changes(
        &self,
        changes: Vec<RouteChange>,
        unseal: &Unseal<'_>,
    ) -> (Self, Vec<Conflict>) {
        let mut builder = TableBuilder::over(self.clone(), unseal);
        for change in &changes {
            builder.remove(change.id());
        }
        for change in changes {
            if let RouteChange::Stored(route) = change {
                builder.push(*route);
            }
        }
        builder.finish()
    }

    /// A served route by id (launch-code redemption on the bare apps
    /// domain names its route).
    #[must_use]
    pub fn get(&self, id: uuid::Uuid) -> Option<&Arc<CompiledRoute>> {
        self.by_id.get(&id)
    }

    /// Every served route (forward-auth, metrics).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.by_id.values()
    }

    #[must_use]
    pub fn apps_domain(&self) -> &str {
        &self.apps_domain
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.hosts.len() + self.paths.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `host` (lower-case, without port) belongs to the apps domain.
    #[must_use]
    pub fn is_apps_host(&self, host: &str) -> bool {
        host == self.apps_domain
            || host
                .strip_suffix(&self.apps_domain)
                .is_some_and(|l| l.len() > 1 && l.ends_with('.'))
    }

    /// Matches a request. `host` is lower-case without port; `path` must
    /// already be normalized by [`crate::path::normalize`].
    #[must_use]
    pub fn resolve(&self, host: &str, path: &str) -> Option<ResolvedRoute> {
        if host == self.apps_domain {
            return self.resolve_path(path);
        }
        let route = self.hosts.get(host)?;
        let p = &route.upstream_prefix;
        // A base-path app emits absolute links under its runtime prefix; a
        // browser following one must not get the prefix twice.
        let already = !p.is_empty()
            && path.starts_with(p.as_str())
            && matches!(path.as_bytes().get(p.len()), None | Some(b'/'));
        let upstream_path = if p.is_empty() || already {
            path.to_owned()
        } else {
            format!("{p}{path}")
        };
        Some(ResolvedRoute {
            route: Arc::clone(route),
            upstream_path,
            bare_prefix: false,
        })
    }

    fn resolve_path(&self, path: &str) -> Option<ResolvedRoute> {
        // Byte offsets of each segment end: "/w/a/web/x" -> [2, 4, 8, 10].
        let mut ends: Vec<usize> = path
            .char_indices()
            .skip(1)
            .filter(|(_, c)| *c == '/')
            .map(|(i, _)| i)
            .collect();
        if !path.ends_with('/') {
            ends.push(path.len());
        }
        ends.truncate(self.max_depth);
        for &end in ends.iter().rev() {
            let prefix = &path[..end];
            if let Some(route) = self.paths.get(prefix) {
                let rest = &path[end..];
                let bare_prefix = rest.is_empty();
                let upstream_path = if route.upstream_prefix.is_empty() {
                    if rest.is_empty() {
                        "/".to_owned()
                    } else {
                        rest.to_owned()
                    }
                } else {
                    format!("{}{rest}", route.upstream_prefix)
                };
                return Some(ResolvedRoute {
                    route: Arc::clone(route),
                    upstream_path,
                    bare_prefix,
                });
            }
        }
        None
    }
}

/// One route's change since a table was built: its stored state now, or
/// that it was deleted (a deleted row is not decoded: only its id is
/// needed to take it out).
#[derive(Debug, Clone, PartialEq)]
pub enum RouteChange {
    Stored(Box<Route>),
    Deleted(uuid::Uuid),
}

impl RouteChange {
    #[must_use]
    pub fn stored(route: Route) -> Self {
        Self::Stored(Box::new(route))
    }

    #[must_use]
    pub fn id(&self) -> uuid::Uuid {
        match self {
            Self::Stored(r) => r.id,
            Self::Deleted(id) => *id,
        }
    }
}

/// Unseals a route's auth-bridge secret for the table (`None`: no bridge
/// header). `Sync`, so a builder can be fed from a store's read future.
pub type Unseal<'u> = dyn Fn(&Route) -> Option<String> + Sync + 'u;

/// Builds a [`RouteTable`] one stored route at a time, so a store can hand
/// routes over as it reads them and the whole set is never held twice (at
/// 100,000 routes the stored records alone were 72 MB beside the table).
///
/// Of two routes claiming one address the older (`created_at`, then id)
/// wins whatever order they arrive in. The table keeps what serving reads:
/// the stored record less its `policy` map, whose only served field,
/// `public`, is kept as [`CompiledRoute::public`] (a JSON map cost 600
/// bytes a route); routes whose adapter has no overrides share one
/// [`Adapter`] per preset.
pub struct TableBuilder<'u> {
    table: RouteTable,
    conflicts: Vec<Conflict>,
    unseal: &'u Unseal<'u>,
    presets: Map<String, Arc<Adapter>>,
}

impl<'u> TableBuilder<'u> {
    /// A builder of a new table; `unseal` opens each route's auth-bridge
    /// secret (the caller holds the key ring; this crate does no crypto).
    /// A secret that does not unseal leaves the route without its bridge
    /// header; the caller logs why.
    #[must_use]
    pub fn new(apps_domain: &str, unseal: &'u Unseal<'u>) -> Self {
        Self::over(
            RouteTable {
                apps_domain: apps_domain.to_ascii_lowercase(),
                ..RouteTable::default()
            },
            unseal,
        )
    }

    /// A builder that goes on from `table`.
    fn over(table: RouteTable, unseal: &'u Unseal<'u>) -> Self {
        Self {
            table,
            conflicts: Vec::new(),
            unseal,
            presets: Map::default(),
        }
    }

    /// Places one stored route; deleted and unserved routes are skipped.
    pub fn push(&mut self, mut route: Route) {
        if route.deleted_at.is_some() || !route.status.is_served() {
            return;
        }
        let adapter = self.adapter(&route);
        let upstream_prefix = if adapter.base_url_strategy.keeps_prefix() {
            route.runtime_prefix()
        } else {
            String::new()
        };
        let key = match route.route_mode {
            RouteMode::Subdomain => {
                let label = route.route_host.as_deref().unwrap_or_default();
                format!("{label}.{}", self.table.apps_domain)
            }
            RouteMode::PathPrefix => route.public_path.trim_end_matches('/').to_owned(),
        };
        let public = route.is_public();
        route.policy = serde_json::Value::Null;
        let compiled = CompiledRoute {
            public_prefix: match route.route_mode {
                RouteMode::Subdomain => String::new(),
                RouteMode::PathPrefix => key.clone(),
            },
            host: (route.route_mode == RouteMode::Subdomain).then(|| key.clone()),
            upstream_authorities: route
                .upstream
                .targets
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            upstream_prefix,
            adapter,
            bridge: route
                .auth_bridge
                .as_ref()
                .and_then(|b| (self.unseal)(&route).map(|secret| BridgeHeader::new(b, &secret))),
            public,
            session_cookie: session_cookie_name(route.id),
            route,
        };
        let map = match compiled.route.route_mode {
            RouteMode::Subdomain => &mut self.table.hosts,
            RouteMode::PathPrefix => &mut self.table.paths,
        };
        if let Some(existing) = map.get(key.as_str()) {
            let age = |r: &Route| (r.created_at, r.id);
            if age(&existing.route) <= age(&compiled.route) {
                self.conflicts.push(Conflict {
                    kept: existing.route.id,
                    dropped: compiled.route.id,
                    address: key,
                });
                return;
            }
            // Routes the displaced one had beaten lose to the newcomer now.
            for c in &mut self.conflicts {
                if c.kept == existing.route.id && c.address == key {
                    c.kept = compiled.route.id;
                }
            }
            self.conflicts.push(Conflict {
                kept: compiled.route.id,
                dropped: existing.route.id,
                address: key.clone(),
            });
            self.table.by_id.remove(&existing.route.id);
        }
        if compiled.route.route_mode == RouteMode::PathPrefix {
            self.table.max_depth = self.table.max_depth.max(key.matches('/').count());
        }
        let compiled = Arc::new(compiled);
        self.table
            .by_id
            .insert(compiled.route.id, Arc::clone(&compiled));
        map.insert(key.into(), compiled);
    }

    /// Takes the route of `id` out of the table, with its address if it
    /// holds one.
    fn remove(&mut self, id: uuid::Uuid) {
        let Some(old) = self.table.by_id.remove(&id) else {
            return;
        };
        let (map, key) = match old.route.route_mode {
            RouteMode::Subdomain => (
                &mut self.table.hosts,
                old.host.as_deref().unwrap_or_default(),
            ),
            RouteMode::PathPrefix => (&mut self.table.paths, old.public_prefix.as_str()),
        };
        if map.get(key).is_some_and(|r| r.route.id == id) {
            map.remove(key);
        }
    }

    /// The table, and the routes dropped because an older one owns their
    /// address.
    #[must_use]
    pub fn finish(self) -> (RouteTable, Vec<Conflict>) {
        (self.table, self.conflicts)
    }

    fn adapter(&mut self, route: &Route) -> Arc<Adapter> {
        if route.adapter_overrides != AdapterOverrides::default() {
            return Arc::new(route.effective_adapter());
        }
        if let Some(shared) = self.presets.get(&route.adapter) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(route.effective_adapter());
        self.presets
            .insert(route.adapter.clone(), Arc::clone(&shared));
        shared
    }
}

#[cfg(test)]
mod tests;
