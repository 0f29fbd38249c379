//! `list_routes` filters and keyset paging, and `live_routes`.

use std::collections::HashSet;

use pp_model::{OwnerType, Route, RouteStatus};
use pp_store::{RouteFilter, SqliteStore, Store};
use uuid::Uuid;

use crate::support::{app_route_at, TempDb};

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

    let live = store.live_routes().await.expect("live");
    let want: Vec<Uuid> = [4, 3, 1, 0].iter().map(|&i| routes[i].id).collect();
    assert_eq!(ids(&live), want);
}
