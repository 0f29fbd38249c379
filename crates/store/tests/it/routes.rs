//! Create, read, update, soft delete and the one-live-owner-per-address rule.

use pp_model::{
    AuthBridge, AuthBridgeMode, OwnerType, RouteLimits, RouteStatus, Upstream, UpstreamScheme,
};
use pp_store::{RouteFilter, Store, StoreError};
use time::macros::datetime;
use uuid::Uuid;

use crate::support::{app_route, at, live_routes, TempDb};

fn everything() -> RouteFilter {
    RouteFilter {
        limit: 500,
        ..RouteFilter::default()
    }
}

#[tokio::test]
async fn created_route_reads_back_equal_including_timestamps_and_json() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut route = app_route("a1", Some("jupyter-a1"));
    // A non-UTC offset reads back as the same instant in UTC.
    route.updated_at = datetime!(2025-06-01 14:00:00.000000001 +02:00);
    route.failure_reason = Some("probe failed".to_owned());

    store.create_route(&route).await.expect("create");
    let back = store
        .get_route(route.id)
        .await
        .expect("get")
        .expect("found");

    assert_eq!(back, route);
    assert_eq!(back.created_at.nanosecond(), 123_456_789);
    assert_eq!(
        back.updated_at.unix_timestamp_nanos(),
        route.updated_at.unix_timestamp_nanos()
    );
    assert_eq!(back.policy, route.policy);
    assert_eq!(
        back.adapter_overrides.default_open_path.as_deref(),
        Some("/lab")
    );
}

#[tokio::test]
async fn get_of_an_unknown_id_is_none() {
    let db = TempDb::new();
    let store = db.open().await;
    assert_eq!(store.get_route(Uuid::new_v4()).await.expect("get"), None);
}

#[tokio::test]
async fn same_route_host_conflicts_with_the_live_holder() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = app_route("a1", Some("jupyter"));
    store.create_route(&first).await.expect("create first");

    let err = store
        .create_route(&app_route("a2", Some("jupyter")))
        .await
        .expect_err("host taken");
    assert!(
        matches!(err, StoreError::Conflict { field: "route_host", existing } if existing == first.id),
        "{err:?}"
    );
    assert_eq!(live_routes(&store).await.expect("live").len(), 1);
}

#[tokio::test]
async fn same_public_path_conflicts_with_the_live_holder() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = app_route("a1", None);
    store.create_route(&first).await.expect("create first");

    // Same owner and endpoint: same /w/a1/web/ path, different id.
    let err = store
        .create_route(&app_route("a1", None))
        .await
        .expect_err("path taken");
    assert!(
        matches!(err, StoreError::Conflict { field: "public_path", existing } if existing == first.id),
        "{err:?}"
    );
}

#[tokio::test]
async fn subdomain_routes_do_not_collide_on_their_shared_root_path() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .create_route(&app_route("a1", Some("one")))
        .await
        .expect("first");
    store
        .create_route(&app_route("a2", Some("two")))
        .await
        .expect("second, also at /");
}

#[tokio::test]
async fn address_is_free_again_once_its_holder_is_deleted() {
    let db = TempDb::new();
    let store = db.open().await;
    for host in [Some("jupyter"), None] {
        let first = app_route("a1", host);
        store.create_route(&first).await.expect("create first");
        assert!(store.delete_route(first.id).await.expect("delete"));

        let second = app_route("a1", host);
        store.create_route(&second).await.expect("address reusable");
        assert_eq!(
            live_routes(&store).await.expect("live"),
            std::slice::from_ref(&second),
            "{host:?}"
        );
        assert!(store.delete_route(second.id).await.expect("clean up"));
    }
}

#[tokio::test]
async fn update_cannot_take_an_address_another_live_route_holds() {
    let db = TempDb::new();
    let store = db.open().await;
    let holder = app_route("a1", Some("taken"));
    let mut other = app_route("a2", Some("free"));
    store.create_route(&holder).await.expect("create holder");
    store.create_route(&other).await.expect("create other");

    other.route_host = Some("taken".to_owned());
    let err = store.update_route(&other).await.expect_err("host taken");
    assert!(
        matches!(err, StoreError::Conflict { field: "route_host", existing } if existing == holder.id),
        "{err:?}"
    );
    let stored = store
        .get_route(other.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.route_host.as_deref(), Some("free"));
}

#[tokio::test]
async fn update_keeping_its_own_address_is_not_a_conflict() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut route = app_route("a1", Some("mine"));
    store.create_route(&route).await.expect("create");
    route.status = RouteStatus::Active;
    assert!(store.update_route(&route).await.expect("update"));
}

#[tokio::test]
async fn update_replaces_mutable_fields_and_keeps_identity_and_creation_time() {
    let db = TempDb::new();
    let store = db.open().await;
    let original = app_route("a1", Some("before"));
    store.create_route(&original).await.expect("create");

    let mut changed = original.clone();
    changed.route_host = Some("after".to_owned());
    changed.proxy_pool_id = "pool-b".to_owned();
    changed.upstream = Upstream {
        targets: vec!["10.0.0.9:443".to_owned(), "10.0.0.10:443".to_owned()],
        scheme: UpstreamScheme::Https,
    };
    changed.adapter = "generic".to_owned();
    changed.adapter_overrides = Default::default();
    changed.limits = RouteLimits {
        max_body_bytes: Some(1 << 20),
        websocket_idle_timeout_secs: Some(30),
        ..RouteLimits::default()
    };
    changed.policy = serde_json::json!({ "allowed_groups": ["ml"] });
    changed.status = RouteStatus::Failed;
    changed.failure_reason = Some("upstream refused".to_owned());
    changed.updated_at = at(60);
    // Not the store's to change: who owns the route and when it was made.
    let mut request = changed.clone();
    request.owner_type = OwnerType::PlatformService;
    request.owner_id = "someone-else".to_owned();
    request.created_at = at(-3600);

    assert!(store.update_route(&request).await.expect("update"));
    let stored = store
        .get_route(original.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored, changed);
}

#[tokio::test]
async fn update_of_a_deleted_or_unknown_route_changes_nothing() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut route = app_route("a1", None);
    store.create_route(&route).await.expect("create");
    assert!(store.delete_route(route.id).await.expect("delete"));

    let before = store.get_route(route.id).await.expect("get");
    route.status = RouteStatus::Active;
    assert!(!store.update_route(&route).await.expect("update deleted"));
    assert_eq!(store.get_route(route.id).await.expect("get"), before);

    let unknown = app_route("nobody", None);
    assert!(!store.update_route(&unknown).await.expect("update unknown"));
    assert_eq!(store.get_route(unknown.id).await.expect("get"), None);
}

#[tokio::test]
async fn delete_is_soft_the_route_stays_readable_by_id_only() {
    let db = TempDb::new();
    let store = db.open().await;
    let gone = app_route("a1", None);
    let kept = app_route("a2", None);
    store.create_route(&gone).await.expect("create");
    store.create_route(&kept).await.expect("create");

    assert!(store.delete_route(gone.id).await.expect("delete"));
    assert!(!store.delete_route(gone.id).await.expect("delete again"));
    assert!(!store
        .delete_route(Uuid::new_v4())
        .await
        .expect("delete unknown"));

    let read = store
        .get_route(gone.id)
        .await
        .expect("get")
        .expect("still there");
    let deleted_at = read.deleted_at.expect("deleted_at set");
    assert_eq!(read.updated_at, deleted_at);
    assert!(deleted_at > gone.created_at);
    assert_eq!(read.created_at, gone.created_at);

    assert_eq!(
        live_routes(&store).await.expect("live"),
        std::slice::from_ref(&kept)
    );
    let default_list = store.list_routes(&everything()).await.expect("list");
    assert_eq!(default_list.items, [kept]);
    let with_deleted = store
        .list_routes(&RouteFilter {
            include_deleted: true,
            ..everything()
        })
        .await
        .expect("list with deleted");
    assert_eq!(with_deleted.items.len(), 2);
}

#[tokio::test]
async fn reusing_an_id_is_a_database_error_not_an_address_conflict() {
    let db = TempDb::new();
    let store = db.open().await;
    let route = app_route("a1", Some("one"));
    store.create_route(&route).await.expect("create");
    let mut same_id = app_route("a2", Some("two"));
    same_id.id = route.id;
    let err = store
        .create_route(&same_id)
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

#[tokio::test]
async fn auth_bridge_round_trips_with_its_sealed_secret_through_every_read() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut route = app_route("a1", Some("jupyter-a1"));
    route.auth_bridge = Some(AuthBridge {
        mode: AuthBridgeMode::AuthorizationHeader,
        header: "authorization".to_owned(),
        scheme: Some("token".to_owned()),
        sealed_secret: "v1.nonce.ciphertext".to_owned(),
    });
    store.create_route(&route).await.expect("create");

    let got = store
        .get_route(route.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        got.auth_bridge.as_ref().map(|b| b.sealed_secret.as_str()),
        Some("v1.nonce.ciphertext")
    );
    assert_eq!(got, route);
    assert_eq!(live_routes(&store).await.expect("live"), [route.clone()]);
    assert_eq!(
        store.list_routes(&everything()).await.expect("list").items,
        [route.clone()]
    );

    // Replaced by update, then removed by it.
    route.auth_bridge = Some(AuthBridge {
        mode: AuthBridgeMode::Header,
        header: "x-app-token".to_owned(),
        scheme: None,
        sealed_secret: "v2.other".to_owned(),
    });
    assert!(store.update_route(&route).await.expect("replace bridge"));
    assert_eq!(
        store.get_route(route.id).await.expect("get"),
        Some(route.clone())
    );
    route.auth_bridge = None;
    assert!(store.update_route(&route).await.expect("remove bridge"));
    assert_eq!(store.get_route(route.id).await.expect("get"), Some(route));
}

#[tokio::test]
async fn live_routes_read_text_that_needs_escaping_as_it_was_written() {
    // The bulk read folds each row into JSON inside SQLite; quotes,
    // backslashes, control characters and non-ASCII must come back as
    // they went in, and NULL columns as None.
    let db = TempDb::new();
    let store = db.open().await;
    let mut route = app_route("escapes", None);
    route.failure_reason = Some("o\"q\\b\u{1}\té✓ \u{2028}".to_owned());
    route.public_path = "/w/o%22q/\u{7f}/ü".to_owned();
    route.org_id = None;
    route.project_id = None;
    route.policy = serde_json::json!({ "note": "a \"quoted\" \\ value\n" });
    store.create_route(&route).await.expect("create");
    let plain = app_route("plain", None);
    store.create_route(&plain).await.expect("create");
    let live = live_routes(&store).await.expect("live");
    assert_eq!(live.len(), 2);
    let got = live.iter().find(|r| r.id == route.id).expect("listed");
    assert_eq!(
        *got,
        store
            .get_route(route.id)
            .await
            .expect("get")
            .expect("found")
    );
    assert_eq!(got.failure_reason, route.failure_reason);
    assert_eq!(got.public_path, route.public_path);
    assert_eq!(got.policy, route.policy);
    assert_eq!(got.org_id, None);
}
