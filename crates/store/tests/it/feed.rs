//! The change feed the data plane follows.

use std::time::Duration;

use pp_model::RouteStatus;
use pp_store::Store;
use uuid::Uuid;

use crate::support::{app_route, TempDb};

#[tokio::test]
async fn revision_increases_after_each_committed_write_only() {
    let db = TempDb::new();
    let store = db.open().await;
    let rx = store.subscribe();
    let rev = || *rx.borrow();
    let start = rev();

    let mut route = app_route("a1", Some("host"));
    store.create_route(&route).await.expect("create");
    assert_eq!(rev(), start + 1, "after create");

    route.status = RouteStatus::Active;
    assert!(store.update_route(&route).await.expect("update"));
    assert_eq!(rev(), start + 2, "after update");

    assert!(store.delete_route(route.id).await.expect("delete"));
    assert_eq!(rev(), start + 3, "after delete");

    // Writes that change nothing do not wake followers.
    let holder = app_route("a2", Some("taken"));
    store.create_route(&holder).await.expect("create holder");
    let after_holder = rev();
    store
        .create_route(&app_route("a3", Some("taken")))
        .await
        .expect_err("conflict");
    assert!(!store
        .delete_route(Uuid::new_v4())
        .await
        .expect("delete unknown"));
    assert!(!store.update_route(&route).await.expect("update deleted"));
    assert_eq!(rev(), after_holder, "after failed or empty writes");
}

#[tokio::test]
async fn a_subscriber_is_woken_by_a_write_and_sees_it() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut rx = store.subscribe();
    let seen = *rx.borrow_and_update();

    let waiter = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("woken within 5s")
            .expect("sender alive");
        *rx.borrow_and_update()
    });
    let route = app_route("a1", None);
    store.create_route(&route).await.expect("create");

    let revision = waiter.await.expect("waiter task");
    assert!(revision > seen);
    // The write is visible to a follower that re-reads on wake-up.
    assert_eq!(store.live_routes().await.expect("live"), [route]);
}
