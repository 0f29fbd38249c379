//! A throwaway database per test, and builders for routes and the identity
//! records.

use std::path::PathBuf;
use std::str::FromStr;

use pp_model::records::{
    AuditEntry, AuditOutcome, Grant, Revocation, RevocationTarget, ServiceToken, SessionRecord,
};
use pp_model::{
    AdapterOverrides, NewRoute, OwnerType, Principal, PrincipalKind, Role, Route, RouteChange,
    RouteLimits, RouteMode, Scope, Upstream,
};
use pp_store::{SqliteStore, Store, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
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

    /// A plain connection that creates the file (and its directory), for
    /// building a database as an older build would have left it.
    pub(crate) async fn raw_new(&self) -> SqlitePool {
        let dir = self.path();
        let dir = dir.parent().expect("db path has a parent");
        std::fs::create_dir_all(dir).expect("create db dir");
        let options = SqliteConnectOptions::from_str(&self.url())
            .expect("url")
            .create_if_missing(true);
        SqlitePool::connect_with(options)
            .await
            .expect("raw connect")
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
        auth_bridge: None,
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

/// `role` for `subject` on `org` (and `project`), created at `T0 + seconds`.
pub(crate) fn grant(
    subject: &str,
    org: &str,
    project: Option<&str>,
    role: Role,
    seconds: i64,
) -> Grant {
    Grant {
        id: Uuid::new_v4(),
        subject: subject.to_owned(),
        org_id: org.to_owned(),
        project_id: project.map(str::to_owned),
        role,
        created_by: "operator".to_owned(),
        created_at: at(seconds),
    }
}

/// A service token of `org` (and `project`), created at `T0 + seconds` and
/// valid for an hour.
pub(crate) fn service_token(
    name: &str,
    org: &str,
    project: Option<&str>,
    seconds: i64,
) -> ServiceToken {
    ServiceToken {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        token_hash: format!("{:064x}", Uuid::new_v4().as_u128()),
        org_id: org.to_owned(),
        project_id: project.map(str::to_owned),
        role: Role::Member,
        created_by: "alice".to_owned(),
        created_at: at(seconds),
        expires_at: at(seconds + 3600),
        revoked_at: None,
    }
}

/// How long a builder session's launch code stays redeemable.
pub(crate) const LAUNCH_SECONDS: i64 = 60;

/// A freshly minted session of `user` on `route`, created at
/// `T0 + seconds`: launch code unredeemed for `LAUNCH_SECONDS`, session alive
/// for an hour. The principal carries org and project roles, so its JSON
/// round trip is exercised.
pub(crate) fn session(
    route_id: Uuid,
    user: &str,
    platform_session: Option<&str>,
    seconds: i64,
) -> SessionRecord {
    let mut principal = Principal::new(PrincipalKind::User, user);
    principal.email = Some(format!("{user}@example.com"));
    principal.platform_session = platform_session.map(str::to_owned);
    principal.grant(Scope::org("acme"), Role::Viewer);
    principal.grant(Scope::project("acme", "ml-dev"), Role::Member);
    SessionRecord {
        id: Uuid::new_v4(),
        route_id,
        user_id: user.to_owned(),
        principal,
        platform_session: platform_session.map(str::to_owned),
        launch_code_hash: format!("{:064x}", Uuid::new_v4().as_u128()),
        launch_expires_at: at(seconds + LAUNCH_SECONDS),
        redeemed_at: None,
        created_at: at(seconds),
        expires_at: at(seconds + 3600),
        revoked_at: None,
        correlation_id: format!("corr-{seconds}"),
    }
}

/// A revocation at `T0 + seconds`, remembered for a day.
pub(crate) fn revocation(target: RevocationTarget, seconds: i64) -> Revocation {
    Revocation {
        target,
        revoked_at: at(seconds),
        expires_at: at(seconds + 86_400),
        reason: "logout".to_owned(),
    }
}

/// An allowed `action` at `T0 + seconds` in org `acme`, with details.
pub(crate) fn audit_entry(action: &str, seconds: i64) -> AuditEntry {
    AuditEntry {
        id: Uuid::new_v4(),
        at: at(seconds),
        action: action.to_owned(),
        outcome: AuditOutcome::Allowed,
        actor: Some("alice".to_owned()),
        org_id: Some("acme".to_owned()),
        project_id: Some("ml-dev".to_owned()),
        route_id: None,
        user_id: Some("alice".to_owned()),
        reason: None,
        correlation_id: format!("corr-{seconds}"),
        details: serde_json::json!({ "n": seconds, "list": [1, "two"] }),
    }
}

/// Every live route in creation order, collected from `each_live_route`.
pub(crate) async fn live_routes(store: &dyn Store) -> Result<Vec<Route>, StoreError> {
    let mut routes = Vec::new();
    store.each_live_route(&mut |r| routes.push(r)).await?;
    Ok(routes)
}

/// The routes changed after `since` and the change number they bring the
/// reader to, for a read expected to fit in `at_most` (10).
pub(crate) async fn changes_since(store: &dyn Store, since: u64) -> (Vec<RouteChange>, u64) {
    store
        .routes_changed_since(since, 10)
        .await
        .expect("changes")
        .expect("no more than 10 changes")
}
