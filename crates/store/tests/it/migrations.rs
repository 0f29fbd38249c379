//! Opening, URLs and schema migrations.

use pp_model::{AuthBridge, AuthBridgeMode, Route, RouteStatus};
use pp_store::{RouteFilter, SqliteStore, Store, StoreError, StoreOptions};
use sqlx::Row;

use crate::support::{app_route, changes_since, live_routes, TempDb};

/// `T0` as the store writes it.
const T0_TEXT: &str = "2025-06-01T12:00:00.123456789Z";

#[tokio::test]
async fn migrating_again_applies_nothing_and_keeps_data() {
    let db = TempDb::new();
    let route = app_route("a1", Some("jupyter-a1"));
    {
        let store = db.open().await;
        store
            .migrate()
            .await
            .expect("second migrate on the same handle");
        store.create_route(&route).await.expect("create");
    }
    let store = db.open().await;
    store.migrate().await.expect("migrate after reopen");

    assert_eq!(store.get_route(route.id).await.expect("get"), Some(route));
    let raw = db.raw().await;
    let rows = sqlx::query("SELECT version, name FROM schema_migrations ORDER BY version")
        .fetch_all(&raw)
        .await
        .expect("read schema_migrations");
    let recorded: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.get("version"), r.get("name")))
        .collect();
    assert_eq!(
        recorded,
        [
            (1, "routes".to_owned()),
            (2, "identity".to_owned()),
            (3, "route_changes".to_owned())
        ]
    );
}

#[tokio::test]
async fn open_creates_missing_parent_directories_and_migrates() {
    let db = TempDb::new();
    assert!(!db.path().exists());
    let store = pp_store::open(&db.url()).await.expect("open");
    store.ping().await.expect("ping");
    assert!(db.path().exists());
    let page = store
        .list_routes(&RouteFilter {
            limit: 10,
            ..RouteFilter::default()
        })
        .await
        .expect("routes table exists");
    assert!(page.items.is_empty());
}

#[tokio::test]
async fn file_database_runs_in_wal_mode() {
    let db = TempDb::new();
    let _store = db.open().await;
    let raw = db.raw().await;
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .expect("pragma")
        .get(0);
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn the_pool_holds_at_most_the_connections_asked_for() {
    let db = TempDb::new();
    let at = |n| StoreOptions { max_connections: n };
    let sized = SqliteStore::connect_with(&db.url(), at(3))
        .await
        .expect("3");
    assert_eq!(sized.max_connections(), 3);
    let least = SqliteStore::connect_with(&db.url(), at(0))
        .await
        .expect("0");
    assert_eq!(least.max_connections(), 1, "never fewer than one");
    let default = SqliteStore::connect(&db.url()).await.expect("default");
    assert_eq!(
        default.max_connections(),
        StoreOptions::DEFAULT_MAX_CONNECTIONS
    );
    let memory = SqliteStore::connect_with("sqlite::memory:", at(8))
        .await
        .expect("memory");
    assert_eq!(memory.max_connections(), 1, "one database, one connection");
}

/// Each connection is a thread; the store is idle nearly all the time, so a
/// file's pool lets its connections go once unused and opens them again
/// when a call comes. An in-memory database would be lost: its one stays.
#[tokio::test]
async fn idle_connections_are_closed_and_reopened_on_the_next_call() {
    let db = TempDb::new();
    let store = db.open().await;
    let memory = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    memory.migrate().await.expect("migrate");
    let filter = RouteFilter::default();
    store.list_routes(&filter).await.expect("a read");
    memory.list_routes(&filter).await.expect("a read");
    assert!(store.open_connections() >= 1);
    // Bounded: the pool checks every IDLE_CLOSE (2 s), so 2–4 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while store.open_connections() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "an idle connection stayed open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        memory.open_connections(),
        1,
        "the in-memory database's connection stays"
    );
    store
        .list_routes(&filter)
        .await
        .expect("a read after the pool emptied");
    assert_eq!(store.open_connections(), 1);
}

/// No call holds one connection while it waits for another, so even a
/// pool of one serves calls arriving together: they queue, none deadlocks.
#[tokio::test]
async fn a_pool_of_one_serves_concurrent_calls() {
    let db = TempDb::new();
    let store = pp_store::open_with(&db.url(), StoreOptions { max_connections: 1 })
        .await
        .expect("open");
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .create_route(&app_route(&format!("c{i}"), None))
                    .await
                    .expect("create");
                live_routes(&*store).await.expect("read").len()
            })
        })
        .collect();
    let all = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        for c in calls {
            c.await.expect("task");
        }
    })
    .await;
    assert!(all.is_ok(), "calls on a pool of one finished");
    let page = store
        .list_routes(&RouteFilter {
            limit: 100,
            ..RouteFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 16);
}

#[tokio::test]
async fn in_memory_store_keeps_its_data_for_its_lifetime() {
    let store = pp_store::open("sqlite::memory:")
        .await
        .expect("open memory");
    let mut route = app_route("m1", None);
    store.create_route(&route).await.expect("create");
    route.status = RouteStatus::Active;
    assert!(store.update_route(&route).await.expect("update"));
    assert_eq!(live_routes(&*store).await.expect("live"), [route]);
}

#[tokio::test]
async fn urls_that_name_no_sqlite_database_are_refused() {
    for url in [
        "postgres://localhost/pp",
        "sqlite://",
        "sqlite:",
        "mysql://x",
        "",
    ] {
        let err = pp_store::open(url).await.err();
        assert!(
            matches!(err, Some(StoreError::UnsupportedUrl(ref u)) if u == url),
            "{url:?}: {err:?}"
        );
    }
    let err = SqliteStore::connect("file:/tmp/x.db").await.err();
    assert!(
        matches!(err, Some(StoreError::UnsupportedUrl(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn two_stores_migrating_one_new_file_together_apply_it_once() {
    let db = TempDb::new();
    let url = db.url();
    let (a, b) = tokio::join!(SqliteStore::connect(&url), SqliteStore::connect(&url));
    let (a, b) = (a.expect("connect a"), b.expect("connect b"));
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("migrate a");
    rb.expect("migrate b");

    let raw = db.raw().await;
    let count: i64 = sqlx::query("SELECT count(*) FROM schema_migrations")
        .fetch_one(&raw)
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 3);
    b.create_route(&app_route("a1", None))
        .await
        .expect("schema usable");
}

#[tokio::test]
async fn migration_0002_upgrades_a_0001_database_and_keeps_its_routes() {
    let db = TempDb::new();
    let route = app_route("a1", Some("jupyter-a1"));
    // The file as a build that knew only 0001 left it (no auth_bridge).
    older_database(&db, &OLD[..1], std::slice::from_ref(&route)).await;

    let store = db.open().await;
    assert_eq!(
        store.get_route(route.id).await.expect("get"),
        Some(route.clone())
    );
    assert_eq!(
        live_routes(&store).await.expect("live"),
        std::slice::from_ref(&route)
    );

    // The new column works on the old row.
    let mut bridged = route;
    bridged.auth_bridge = Some(AuthBridge {
        mode: AuthBridgeMode::AuthorizationHeader,
        header: "authorization".to_owned(),
        scheme: Some("token".to_owned()),
        sealed_secret: "v1.sealed-bytes".to_owned(),
    });
    assert!(store.update_route(&bridged).await.expect("update"));
    assert_eq!(
        store.get_route(bridged.id).await.expect("get"),
        Some(bridged)
    );

    let raw = db.raw().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&raw)
            .await
            .expect("history");
    assert_eq!(versions, [1, 2, 3]);
}

/// 0003 numbers the rows an older build left, so a follower's first
/// incremental read after the upgrade starts above them, and a write after
/// the upgrade takes a higher number.
#[tokio::test]
async fn migration_0003_numbers_the_routes_an_older_build_left() {
    let db = TempDb::new();
    let old = [
        app_route("o1", Some("old-1")),
        app_route("o2", Some("old-2")),
    ];
    older_database(&db, &OLD, &old).await;

    let store = db.open().await;
    let raw = db.raw().await;
    let numbers: Vec<i64> =
        sqlx::query_scalar("SELECT change_seq FROM platform_proxy_routes ORDER BY change_seq")
            .fetch_all(&raw)
            .await
            .expect("numbers");
    assert_eq!(numbers.len(), 2);
    assert!(
        numbers[0] > 0 && numbers[0] < numbers[1],
        "distinct numbers: {numbers:?}"
    );
    let (both, seen) = changes_since(&store, 0).await;
    assert_eq!(both.len(), 2);
    assert_eq!(seen, u64::try_from(numbers[1]).expect("positive"));
    assert_eq!(
        store.each_live_route(&mut |_| {}).await.expect("live"),
        seen
    );

    let new = app_route("n1", Some("new-1"));
    store.create_route(&new).await.expect("create after 0003");
    let (after, _) = changes_since(&store, seen).await;
    assert_eq!(after, [pp_model::RouteChange::stored(new)]);
}

/// Migrations of older builds, as (version, name, script).
const OLD: [(i64, &str, &str); 2] = [
    (
        1,
        "routes",
        include_str!("../../migrations/sqlite/0001_routes.sql"),
    ),
    (
        2,
        "identity",
        include_str!("../../migrations/sqlite/0002_identity.sql"),
    ),
];

/// The file as a build that knew only `known` left it: their schema, their
/// history rows, and `routes` written in 0001's columns.
async fn older_database(db: &TempDb, known: &[(i64, &str, &str)], routes: &[Route]) {
    let raw = db.raw_new().await;
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(&raw)
    .await
    .expect("history table");
    for (version, name, sql) in known {
        sqlx::raw_sql(sql).execute(&raw).await.expect("apply");
        sqlx::query(
            "INSERT INTO schema_migrations VALUES (?, ?, '2025-01-01T00:00:00.000000000Z')",
        )
        .bind(version)
        .bind(name)
        .execute(&raw)
        .await
        .expect("record");
    }
    let json = |v: serde_json::Value| v.to_string();
    for route in routes {
        sqlx::query(
            "INSERT INTO platform_proxy_routes (id, owner_type, owner_id, endpoint_name, org_id,
                project_id, proxy_pool_id, route_mode, route_host, public_path, upstream,
                adapter, adapter_overrides, limits, policy, status, failure_reason,
                created_at, updated_at, deleted_at)
             VALUES (?, 'app_instance', ?, 'web', 'acme', 'ml-dev', 'shared', 'subdomain',
                ?, '/', ?, 'jupyterlab', ?, ?, ?, 'pending', NULL, ?, ?, NULL)",
        )
        .bind(route.id.to_string())
        .bind(&route.owner_id)
        .bind(&route.route_host)
        .bind(json(serde_json::json!(route.upstream)))
        .bind(json(serde_json::json!(route.adapter_overrides)))
        .bind(json(serde_json::json!(route.limits)))
        .bind(json(route.policy.clone()))
        .bind(T0_TEXT)
        .bind(T0_TEXT)
        .execute(&raw)
        .await
        .expect("insert an old route");
    }
    raw.close().await;
}
