//! Change numbers: every route write takes the next one, and a follower
//! reads just the routes written after the number its table is current to.

use pp_model::{Route, RouteChange, RouteStatus};
use pp_store::Store;
use uuid::Uuid;

use crate::support::{app_route_at, changes_since, TempDb};

fn ids(changes: &[RouteChange]) -> Vec<Uuid> {
    changes.iter().map(RouteChange::id).collect()
}

fn stored(change: &RouteChange) -> &Route {
    match change {
        RouteChange::Stored(r) => r,
        RouteChange::Deleted(id) => panic!("{id} came as deleted"),
    }
}

#[tokio::test]
async fn every_write_after_a_snapshot_is_read_back_in_write_order_deletes_included() {
    let db = TempDb::new();
    let store = db.open().await;
    let (no_routes, _) = changes_since(&store, 0).await;
    assert!(no_routes.is_empty());

    let a = app_route_at("a", Some("a"), 0);
    let b = app_route_at("b", Some("b"), 1);
    let c = app_route_at("c", Some("c"), 2);
    for r in [&a, &b, &c] {
        store.create_route(r).await.expect("create");
    }
    let seen = store.each_live_route(&mut |_| {}).await.expect("live");
    assert!(seen >= 3, "three writes, three numbers: {seen}");
    let (none, same) = changes_since(&store, seen).await;
    assert!(none.is_empty(), "nothing written after the snapshot");
    assert_eq!(same, seen);

    let mut moved = a.clone();
    moved.route_host = Some("a2".into());
    assert!(store.update_route(&moved).await.expect("update"));
    assert!(store.delete_route(b.id).await.expect("delete"));
    let mut disabled = c.clone();
    disabled.status = RouteStatus::Disabled;
    assert!(store.update_route(&disabled).await.expect("disable"));

    let (changed, now) = changes_since(&store, seen).await;
    assert_eq!(ids(&changed), [a.id, b.id, c.id], "in write order");
    assert_eq!(stored(&changed[0]).route_host.as_deref(), Some("a2"));
    assert_eq!(
        changed[1],
        RouteChange::Deleted(b.id),
        "a delete is a change"
    );
    assert_eq!(stored(&changed[2]).status, RouteStatus::Disabled);
    assert_eq!(now, seen + 3);

    // Only what came after a given number.
    let (last, _) = changes_since(&store, now - 1).await;
    assert_eq!(ids(&last), [c.id]);
    // A route written twice comes once, as it is now.
    let mut again = moved.clone();
    again.route_host = Some("a3".into());
    assert!(store.update_route(&again).await.expect("update again"));
    let (twice, _) = changes_since(&store, seen).await;
    assert_eq!(ids(&twice), [b.id, c.id, a.id]);
    assert_eq!(stored(&twice[2]).route_host.as_deref(), Some("a3"));
}

#[tokio::test]
async fn more_changes_than_asked_for_say_so_instead_of_reading_them() {
    let db = TempDb::new();
    let store = db.open().await;
    for i in 0..3 {
        let r = app_route_at(&format!("m{i}"), Some(&format!("m{i}")), i);
        store.create_route(&r).await.expect("create");
    }
    assert!(store
        .routes_changed_since(0, 2)
        .await
        .expect("changes")
        .is_none());
    let (all, _) = store
        .routes_changed_since(0, 3)
        .await
        .expect("changes")
        .expect("exactly the limit");
    assert_eq!(all.len(), 3);
}

/// Rows written behind the store's back (an operator's repair, an import)
/// are numbered by the database itself.
#[tokio::test]
async fn a_row_written_by_hand_takes_a_change_number_too() {
    let db = TempDb::new();
    let store = db.open().await;
    let seed = app_route_at("seed", Some("seed"), 0);
    store.create_route(&seed).await.expect("create");
    let seen = store.each_live_route(&mut |_| {}).await.expect("live");
    let raw = db.raw().await;
    sqlx::query("UPDATE platform_proxy_routes SET status = 'disabled' WHERE route_host = 'seed'")
        .execute(&raw)
        .await
        .expect("hand edit");
    let (changed, now) = changes_since(&store, seen).await;
    assert_eq!(ids(&changed), [seed.id]);
    assert_eq!(stored(&changed[0]).status, RouteStatus::Disabled);
    assert!(now > seen);

    // A row restored with an old number of its own is numbered anew.
    sqlx::query("UPDATE platform_proxy_routes SET status = 'active', change_seq = 1")
        .execute(&raw)
        .await
        .expect("restore");
    let (restored, after) = changes_since(&store, now).await;
    assert_eq!(ids(&restored), [seed.id]);
    assert!(after > now);
}

/// Numbers only grow: removing the row that holds the highest one (which
/// the store never does, an operator might) does not hand it out again.
#[tokio::test]
async fn a_number_is_never_handed_out_twice() {
    let db = TempDb::new();
    let store = db.open().await;
    let a = app_route_at("a", Some("a"), 0);
    let b = app_route_at("b", Some("b"), 1);
    store.create_route(&a).await.expect("create");
    store.create_route(&b).await.expect("create");
    let seen = store.each_live_route(&mut |_| {}).await.expect("live");
    let raw = db.raw().await;
    sqlx::query("DELETE FROM platform_proxy_routes WHERE id = ?")
        .bind(b.id.to_string())
        .execute(&raw)
        .await
        .expect("remove outright");
    let c = app_route_at("c", Some("c"), 2);
    store.create_route(&c).await.expect("create");
    let (changed, _) = changes_since(&store, seen).await;
    assert_eq!(ids(&changed), [c.id], "the new write is past the reader");
}

/// A reader ahead of the store (a database restored from an older copy)
/// is told to read everything.
#[tokio::test]
async fn a_reader_ahead_of_the_store_gets_a_full_read() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .create_route(&app_route_at("a", Some("a"), 0))
        .await
        .expect("create");
    let seen = store.each_live_route(&mut |_| {}).await.expect("live");
    assert!(store
        .routes_changed_since(seen + 5, 10)
        .await
        .expect("changes")
        .is_none());
}
