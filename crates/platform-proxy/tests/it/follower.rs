//! The change feed's follower against a real SQLite file: the cases where
//! applying just the changed routes is not enough and it must read every
//! route instead.

use serde_json::json;

use crate::support::upstream::echo;
use crate::support::*;

/// A plain connection to the proxy's own database file, for writing
/// behind the store's back (the feed does not hear these writes).
async fn raw(p: &TestProxy) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}/pp.db", p.dir.0.display()))
        .await
        .expect("raw connect")
}

async fn status(p: &TestProxy, host: &str) -> u16 {
    p.get(host, "/")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// More routes changed than the follower applies one by one (1,000): the
/// next write makes it read every route, and all of them are served.
#[tokio::test]
async fn more_changes_than_it_applies_one_by_one_are_read_in_full() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("seed", up.addr, json!({})).await;
    let db = raw(&p).await;
    sqlx::query(
        "WITH RECURSIVE seq(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM seq WHERE k < 1200) \
         INSERT INTO platform_proxy_routes (id, owner_type, owner_id, endpoint_name, org_id, \
           project_id, proxy_pool_id, route_mode, route_host, public_path, upstream, adapter, \
           adapter_overrides, limits, policy, status, failure_reason, created_at, updated_at, \
           deleted_at, auth_bridge) \
         SELECT printf('%08x-0000-4000-8000-%012x', k, k), owner_type, 'bulk' || k, \
           endpoint_name, org_id, project_id, proxy_pool_id, route_mode, 'bulk' || k, \
           public_path, upstream, adapter, adapter_overrides, limits, policy, status, \
           failure_reason, created_at, updated_at, deleted_at, auth_bridge \
         FROM platform_proxy_routes, seq WHERE route_host = 'seed'",
    )
    .execute(&db)
    .await
    .expect("1,200 routes behind the store's back");
    assert_eq!(status(&p, "bulk7.apps.test").await, 404, "not heard yet");

    p.host_route("trigger", up.addr, json!({})).await;
    for host in ["bulk1.apps.test", "bulk600.apps.test", "bulk1200.apps.test"] {
        assert_eq!(status(&p, host).await, 200, "{host}");
    }
    assert_eq!(status(&p, "trigger.apps.test").await, 200);
    p.stop().await;
}

/// A changed row that does not decode (here a deleted route whose id was
/// spoiled by hand) fails the incremental read; the follower reads every
/// live route instead, which skips deleted rows, and goes on serving
/// changes.
#[tokio::test]
async fn a_change_that_does_not_decode_is_read_around_in_full() {
    let p = TestProxy::start().await;
    let up = echo().await;
    let gone = p.host_route("gone", up.addr, json!({})).await;
    let id = gone["id"].as_str().expect("id").to_owned();
    let resp = p
        .api(reqwest::Method::DELETE, &format!("/api/v1/routes/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    p.running().routes_applied().await;
    let db = raw(&p).await;
    sqlx::query("UPDATE platform_proxy_routes SET id = 'not-a-uuid' WHERE id = ?")
        .bind(&id)
        .execute(&db)
        .await
        .expect("spoil the deleted row");

    // Well inside the 30 s resync, whose full build would heal it anyway.
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        p.host_route("after", up.addr, json!({})),
    )
    .await
    .expect("applied without waiting for the resync");
    assert_eq!(status(&p, "after.apps.test").await, 200);
    assert_eq!(status(&p, "gone.apps.test").await, 404);
    p.host_route("later", up.addr, json!({})).await;
    assert_eq!(
        status(&p, "later.apps.test").await,
        200,
        "changes still apply"
    );
    p.stop().await;
}

/// While no route read succeeds (a live row spoiled by hand), the routes
/// served stay as they were, and the identity directory still follows the
/// store: a revoked service token stops working at once.
#[tokio::test]
async fn a_failing_route_read_does_not_hold_back_a_revocation() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route(
        "svc",
        up.addr,
        json!({"org_id": "acme", "project_id": "dev"}),
    )
    .await;
    p.host_route("spoiled", up.addr, json!({})).await;
    let created: serde_json::Value = p
        .api(reqwest::Method::POST, "/api/v1/service-tokens")
        .json(&json!({"name": "ci", "org_id": "acme", "project_id": "dev", "role": "member"}))
        .send()
        .await
        .expect("create token")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    p.running().routes_applied().await;
    let with_token = || p.get("svc.apps.test", "/").bearer_auth(&token).send();
    assert_eq!(with_token().await.expect("send").status(), 200);

    let db = raw(&p).await;
    sqlx::query("UPDATE platform_proxy_routes SET policy = '{' WHERE route_host = 'spoiled'")
        .execute(&db)
        .await
        .expect("spoil a live row");
    let revoke = p
        .api(
            reqwest::Method::DELETE,
            &format!(
                "/api/v1/service-tokens/{}",
                created["id"].as_str().expect("id")
            ),
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 204);
    eventually(std::time::Duration::from_secs(5), || async {
        with_token().await.expect("send").status() == 401
    })
    .await;
    assert_eq!(
        status(&p, "spoiled.apps.test").await,
        200,
        "the old table stays"
    );
    p.stop().await;
}
