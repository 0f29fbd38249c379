//! Opening, URLs and schema migrations.

use pp_model::RouteStatus;
use pp_store::{RouteFilter, SqliteStore, Store, StoreError};
use sqlx::Row;

use crate::support::{app_route, TempDb};

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
    assert_eq!(recorded, [(1, "routes".to_owned())]);
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
async fn in_memory_store_keeps_its_data_for_its_lifetime() {
    let store = pp_store::open("sqlite::memory:")
        .await
        .expect("open memory");
    let mut route = app_route("m1", None);
    store.create_route(&route).await.expect("create");
    route.status = RouteStatus::Active;
    assert!(store.update_route(&route).await.expect("update"));
    assert_eq!(store.live_routes().await.expect("live"), [route]);
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
    assert_eq!(count, 1);
    b.create_route(&app_route("a1", None))
        .await
        .expect("schema usable");
}
