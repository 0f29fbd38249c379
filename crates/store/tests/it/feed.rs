//! The change feed the data plane follows.

use std::time::Duration;

use pp_model::records::RevocationTarget;
use pp_model::{Role, RouteStatus};
use pp_store::Store;
use uuid::Uuid;

use crate::support::{
    app_route, at, audit_entry, grant, live_routes, revocation, service_token, session, TempDb,
};

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
    assert_eq!(live_routes(&store).await.expect("live"), [route]);
}

#[tokio::test]
async fn grants_tokens_and_revocations_bump_the_feed_sessions_audit_and_secrets_do_not() {
    let db = TempDb::new();
    let store = db.open().await;
    let rx = store.subscribe();
    let rev = || *rx.borrow();

    let g = grant("alice", "acme", None, Role::Viewer, 0);
    let token = service_token("ci", "acme", None, 0);
    let s = session(Uuid::new_v4(), "alice", None, 0);

    let before = rev();
    store.create_grant(&g).await.expect("create grant");
    assert_eq!(rev(), before + 1, "create grant");

    let before = rev();
    store
        .create_grant(&grant("alice", "acme", None, Role::Admin, 1))
        .await
        .expect_err("grant exists");
    assert!(!store
        .delete_grant(Uuid::new_v4())
        .await
        .expect("delete unknown"));
    assert_eq!(rev(), before, "refused or empty grant writes");

    let before = rev();
    assert!(store.delete_grant(g.id).await.expect("delete grant"));
    assert_eq!(rev(), before + 1, "delete grant");

    let before = rev();
    store
        .create_service_token(&token)
        .await
        .expect("create token");
    assert_eq!(rev(), before + 1, "create token");

    let before = rev();
    assert!(store
        .revoke_service_token(token.id, at(1))
        .await
        .expect("revoke token"));
    assert_eq!(rev(), before + 1, "revoke token");

    let before = rev();
    assert!(!store
        .revoke_service_token(token.id, at(2))
        .await
        .expect("revoke again"));
    assert_eq!(rev(), before, "revoking a revoked token");

    let before = rev();
    store.create_session(&s).await.expect("create session");
    store
        .redeem_launch_code(&s.launch_code_hash, s.route_id, at(1))
        .await
        .expect("redeem")
        .expect("redeemed");
    store
        .append_audit(&[audit_entry("launch.redeemed", 1)])
        .await
        .expect("audit");
    store
        .get_or_create_secret("cookie-key", "v")
        .await
        .expect("secret");
    assert_eq!(rev(), before, "sessions, audit and secrets");

    let before = rev();
    store
        .revoke(&revocation(RevocationTarget::Session(s.id), 2))
        .await
        .expect("revoke");
    assert_eq!(rev(), before + 1, "revocation");
}
