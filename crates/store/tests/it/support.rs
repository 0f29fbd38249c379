//! A throwaway database per test and route builders.

use std::path::PathBuf;

use pp_model::{AdapterOverrides, NewRoute, OwnerType, Route, RouteLimits, RouteMode, Upstream};
use pp_store::{SqliteStore, Store};
use sqlx::SqlitePool;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A directory under the system temp dir, removed when dropped (also when
/// the test fails, so failures do not pile up files).
pub(crate) struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("pp-store-it-{}", Uuid::new_v4()));
        Self { dir }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("db").join("routes.sqlite")
    }

    pub(crate) fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    /// A migrated store on this file.
    pub(crate) async fn open(&self) -> SqliteStore {
        let store = SqliteStore::connect(&self.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// A second, plain connection to the same file, for looking behind the
    /// store's back (WAL lets it read and write alongside the store).
    pub(crate) async fn raw(&self) -> SqlitePool {
        SqlitePool::connect(&self.url()).await.expect("raw connect")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixed instant with nanoseconds, so round trips are checked to the last
/// digit.
pub(crate) const T0: OffsetDateTime = datetime!(2025-06-01 12:00:00.123456789 UTC);

pub(crate) fn at(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

/// An app route as the control plane would build it: subdomain mode when
/// `host` is given, path-prefix mode otherwise.
pub(crate) fn app_route(owner_id: &str, host: Option<&str>) -> Route {
    NewRoute {
        owner_type: OwnerType::AppInstance,
        owner_id: owner_id.to_owned(),
        endpoint_name: Some("web".to_owned()),
        org_id: Some("acme".to_owned()),
        project_id: Some("ml-dev".to_owned()),
        proxy_pool_id: None,
        route_mode: if host.is_some() {
            RouteMode::Subdomain
        } else {
            RouteMode::PathPrefix
        },
        route_host: host.map(str::to_owned),
        upstream: Upstream {
            targets: vec!["10.0.3.7:8888".to_owned()],
            scheme: pp_model::UpstreamScheme::Http,
        },
        adapter: Some("jupyterlab".to_owned()),
        adapter_overrides: AdapterOverrides {
            default_open_path: Some("/lab".to_owned()),
            ..AdapterOverrides::default()
        },
        limits: RouteLimits {
            max_connections: Some(20),
            ..RouteLimits::default()
        },
        policy: Some(serde_json::json!({ "allowed_users": ["alice"], "nested": { "n": 1.5 } })),
        status: None,
    }
    .into_route(T0)
    .expect("valid route")
}

/// `app_route` created at `T0 + seconds`.
pub(crate) fn app_route_at(owner_id: &str, host: Option<&str>, seconds: i64) -> Route {
    let mut route = app_route(owner_id, host);
    route.created_at = at(seconds);
    route.updated_at = at(seconds);
    route
}
