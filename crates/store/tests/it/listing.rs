//! `list_routes` filters and keyset paging, and `live_routes`.

use std::collections::HashSet;

use pp_model::{OwnerType, Route, RouteStatus};
use pp_store::{RouteFilter, SqliteStore, Store};
use uuid::Uuid;

use crate::support::{app_route_at, live_routes, TempDb};

/// Every page of `filter` from the start, as (pages, all items).
async fn all_pages(store: &SqliteStore, filter: &RouteFilter) -> (usize, Vec<Route>) {
    let mut filter = filter.clone();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_routes(&filter).await.expect("list");
        pages += 1;
        assert!(pages < 1000, "paging does not terminate");
        if let Some(next) = page.next {
            assert_eq!(
                page.items.last().map(|r| r.id),
                Some(next),
                "cursor is the last item"
            );
        }
        items.extend(page.items);
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return (pages, items),
        }
    }
}

fn ids(routes: &[Route]) -> Vec<Uuid> {
    routes.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn pages_return_every_route_once_in_creation_order() {
    let db = TempDb::new();
    let store = db.open().await;
    // Inserted out of creation order, with ties in created_at that the id
    // must break.
    let mut routes: Vec<Route> = (0..23)
        .map(|i| app_route_at(&format!("owner-{i}"), None, (i * 7) % 10))
        .collect();
    for route in &routes {
        store.create_route(route).await.expect("create");
    }
    routes.sort_by_key(|r| (r.created_at, r.id));

    let (pages, listed) = all_pages(
        &store,
        &RouteFilter {
            limit: 5,
            ..RouteFilter::default()
        },
    )
    .await;

    assert_eq!(pages, 5);
    assert_eq!(ids(&listed), ids(&routes));
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<HashSet<_>>().len(),
        23
    );
}

#[tokio::test]
async fn a_page_that_ends_exactly_at_the_last_route_has_no_next() {
    let db = TempDb::new();
    let store = db.open().await;
    for i in 0..4 {
        store
            .create_route(&app_route_at(&format!("o{i}"), None, i))
            .await
            .expect("create");
    }
    let page = store
        .list_routes(&RouteFilter {
            limit: 4,
            ..RouteFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn limit_is_clamped_to_one_through_five_hundred() {
    let db = TempDb::new();
    let store = db.open().await;
    for i in 0..501 {
        store
            .create_route(&app_route_at(&format!("o{i}"), None, i))
            .await
            .expect("create");
    }
    let cases = [(0, 1), (1, 1), (500, 500), (501, 500), (u32::MAX, 500)];
    for (limit, want) in cases {
        let page = store
            .list_routes(&RouteFilter {
                limit,
                ..RouteFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(page.items.len(), want, "limit {limit}");
        assert!(page.next.is_some(), "limit {limit}: more remain");
    }
}

#[tokio::test]
async fn filters_narrow_the_listing() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut a = app_route_at("alpha", None, 1);
    a.status = RouteStatus::Active;
    let mut b = app_route_at("beta", None, 2);
    b.org_id = Some("globex".to_owned());
    b.project_id = None;
    let mut c = app_route_at("netdata", None, 3);
    c.owner_type = OwnerType::PlatformService;
    c.public_path = "/p/netdata/".to_owned();
    c.project_id = Some("ops".to_owned());
    let d = app_route_at("deleted", None, 4);
    for route in [&a, &b, &c, &d] {
        store.create_route(route).await.expect("create");
    }
    assert!(store.delete_route(d.id).await.expect("delete"));

    let base = RouteFilter {
        limit: 100,
        ..RouteFilter::default()
    };
    let cases: Vec<(&str, RouteFilter, Vec<Uuid>)> = vec![
        ("no filter", base.clone(), vec![a.id, b.id, c.id]),
        (
            "include deleted",
            RouteFilter {
                include_deleted: true,
                ..base.clone()
            },
            vec![a.id, b.id, c.id, d.id],
        ),
        (
            "owner type",
            RouteFilter {
                owner_type: Some(OwnerType::PlatformService),
                ..base.clone()
            },
            vec![c.id],
        ),
        (
            "owner id",
            RouteFilter {
                owner_id: Some("beta".to_owned()),
                ..base.clone()
            },
            vec![b.id],
        ),
        (
            "org",
            RouteFilter {
                org_id: Some("acme".to_owned()),
                ..base.clone()
            },
            vec![a.id, c.id],
        ),
        (
            "project",
            RouteFilter {
                project_id: Some("ml-dev".to_owned()),
                ..base.clone()
            },
            vec![a.id],
        ),
        (
            "status",
            RouteFilter {
                status: Some(RouteStatus::Pending),
                ..base.clone()
            },
            vec![b.id, c.id],
        ),
        (
            "combined",
            RouteFilter {
                owner_type: Some(OwnerType::AppInstance),
                org_id: Some("acme".to_owned()),
                status: Some(RouteStatus::Active),
                ..base.clone()
            },
            vec![a.id],
        ),
        (
            "deleted owner, default",
            RouteFilter {
                owner_id: Some("deleted".to_owned()),
                ..base.clone()
            },
            vec![],
        ),
    ];
    for (name, filter, want) in cases {
        let page = store.list_routes(&filter).await.expect("list");
        assert_eq!(ids(&page.items), want, "{name}");
        assert_eq!(page.next, None, "{name}");
    }
}

#[tokio::test]
async fn filtered_paging_skips_non_matching_routes_without_losing_any() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut want = Vec::new();
    for i in 0..12 {
        let mut route = app_route_at(&format!("o{i}"), None, i);
        if i % 3 == 0 {
            route.status = RouteStatus::Active;
            want.push(route.id);
        }
        store.create_route(&route).await.expect("create");
    }
    let (_, listed) = all_pages(
        &store,
        &RouteFilter {
            status: Some(RouteStatus::Active),
            limit: 1,
            ..RouteFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&listed), want);
}

#[tokio::test]
async fn paging_continues_after_the_cursor_route_is_deleted() {
    let db = TempDb::new();
    let store = db.open().await;
    let routes: Vec<Route> = (0..6)
        .map(|i| app_route_at(&format!("o{i}"), None, i))
        .collect();
    for route in &routes {
        store.create_route(route).await.expect("create");
    }
    let mut filter = RouteFilter {
        limit: 3,
        ..RouteFilter::default()
    };
    let first = store.list_routes(&filter).await.expect("first page");
    let cursor = first.next.expect("more");
    assert!(store
        .delete_route(cursor)
        .await
        .expect("delete cursor route"));

    filter.after = Some(cursor);
    let second = store.list_routes(&filter).await.expect("second page");
    assert_eq!(ids(&second.items), ids(&routes[3..]));
}

#[tokio::test]
async fn an_unknown_cursor_yields_an_empty_page() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .create_route(&app_route_at("o1", None, 0))
        .await
        .expect("create");
    let page = store
        .list_routes(&RouteFilter {
            after: Some(Uuid::new_v4()),
            limit: 10,
            ..RouteFilter::default()
        })
        .await
        .expect("list");
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn live_routes_returns_every_undeleted_route_in_creation_order() {
    let db = TempDb::new();
    let store = db.open().await;
    let routes: Vec<Route> = (0..5)
        .map(|i| app_route_at(&format!("o{i}"), None, 10 - i))
        .collect();
    for route in &routes {
        store.create_route(route).await.expect("create");
    }
    assert!(store.delete_route(routes[2].id).await.expect("delete"));

    let live = live_routes(&store).await.expect("live");
    let want: Vec<Uuid> = [4, 3, 1, 0].iter().map(|&i| routes[i].id).collect();
    assert_eq!(ids(&live), want);
}

/// The bulk read comes in chunks of a thousand routes: a set that spans
/// several, with whole runs of equal `created_at` across the chunk
/// boundaries (so only the id decides the order there), comes back whole,
/// once each, in the order an independent query gives.
#[tokio::test]
async fn live_routes_span_chunks_with_ties_at_their_boundaries() {
    let db = TempDb::new();
    let store = db.open().await;
    let seed = app_route_at("seed", Some("seed"), 0);
    store.create_route(&seed).await.expect("create");
    let raw = db.raw().await;
    // 2,499 copies of the seed: every third an hour earlier, the rest at
    // the seed's instant; ids in no relation to that order.
    sqlx::query(
        "WITH RECURSIVE seq(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM seq WHERE k < 2499) \
         INSERT INTO platform_proxy_routes SELECT \
           printf('%08x-0000-4000-8000-%012x', (k * 7919) % 100003, k), owner_type, \
           'o' || k, endpoint_name, org_id, project_id, proxy_pool_id, route_mode, 'h' || k, \
           public_path, upstream, adapter, adapter_overrides, limits, policy, status, \
           failure_reason, \
           CASE WHEN k % 3 = 0 THEN replace(created_at, 'T12:', 'T11:') ELSE created_at END, \
           updated_at, deleted_at, auth_bridge, 0 \
         FROM platform_proxy_routes, seq WHERE route_host = 'seed'",
    )
    .execute(&raw)
    .await
    .expect("copy the seed");
    sqlx::query(
        "UPDATE platform_proxy_routes SET deleted_at = updated_at \
         WHERE owner_id IN ('o5', 'o1000', 'o2001')",
    )
    .execute(&raw)
    .await
    .expect("delete three");
    let want: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM platform_proxy_routes WHERE deleted_at IS NULL ORDER BY created_at, id",
    )
    .fetch_all(&raw)
    .await
    .expect("independent order");
    assert_eq!(want.len(), 2497);
    let instants: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT created_at) FROM platform_proxy_routes WHERE deleted_at IS NULL",
    )
    .fetch_one(&raw)
    .await
    .expect("instants");
    assert_eq!(instants, 2, "two runs of ties");

    let live = live_routes(&store).await.expect("live");
    let got: Vec<String> = live.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(got, want);
    let hosts: HashSet<&str> = live
        .iter()
        .filter_map(|r| r.route_host.as_deref())
        .collect();
    assert_eq!(hosts.len(), 2497, "every route once");
    let copy = live
        .iter()
        .find(|r| r.owner_id == "o7")
        .expect("a copy is read");
    assert_eq!(copy.policy, seed.policy);
    assert_eq!(copy.adapter_overrides, seed.adapter_overrides);
}

/// The bulk read needs SQLite 3.44 or later (`ORDER BY` inside
/// `json_group_array`, JSON kept through it): the library the store runs
/// on is checked, so a build against an older system SQLite fails here and
/// not at a replica's start.
#[tokio::test]
async fn the_sqlite_the_store_runs_on_can_fold_ordered_chunks() {
    let db = TempDb::new();
    let _store = db.open().await;
    let raw = db.raw().await;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&raw)
        .await
        .expect("version");
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    assert!(
        parts.as_slice() >= [3, 44].as_slice(),
        "SQLite {version} is older than 3.44"
    );
    let folded: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(k, 'x') ORDER BY k DESC) \
         FROM (SELECT 1 AS k UNION ALL SELECT 2)",
    )
    .fetch_one(&raw)
    .await
    .expect("fold");
    assert_eq!(folded, r#"[[2,"x"],[1,"x"]]"#);
}
