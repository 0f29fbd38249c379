use super::*;
use crate::adapter::{AdapterOverrides, BaseUrlStrategy};
use crate::route::{NewRoute, OwnerType, RouteLimits, RouteStatus, Upstream, UpstreamScheme};
use time::OffsetDateTime;

fn route(owner: &str, mode: RouteMode, host: Option<&str>, adapter: &str) -> Route {
    NewRoute {
        owner_type: OwnerType::AppInstance,
        owner_id: owner.into(),
        endpoint_name: Some("web".into()),
        org_id: None,
        project_id: None,
        proxy_pool_id: None,
        route_mode: mode,
        route_host: host.map(Into::into),
        upstream: Upstream {
            targets: vec!["127.0.0.1:1".into()],
            scheme: UpstreamScheme::Http,
        },
        adapter: Some(adapter.into()),
        adapter_overrides: AdapterOverrides::default(),
        limits: RouteLimits::default(),
        policy: None,
        status: None,
        auth_bridge: None,
    }
    .into_route(OffsetDateTime::now_utc())
    .expect("valid")
}

fn platform(slug: &str) -> Route {
    let mut r = route(slug, RouteMode::PathPrefix, None, "generic");
    r.owner_type = OwnerType::PlatformService;
    r.public_path = format!("/p/{slug}/");
    r
}

fn table() -> RouteTable {
    RouteTable::build(
        "apps.example.com",
        vec![
            route("a1", RouteMode::PathPrefix, None, "generic"),
            route("j1", RouteMode::PathPrefix, None, "jupyterlab"),
            route("h1", RouteMode::Subdomain, Some("demo"), "generic"),
            route("h2", RouteMode::Subdomain, Some("jup"), "jupyterlab"),
            platform("grafana"),
        ],
    )
    .0
}

#[test]
fn resolves_host_and_path_routes() {
    let t = table();
    let cases = [
        (
            "apps.example.com",
            "/w/a1/web/x/y",
            Some(("a1", "/x/y", false)),
        ),
        ("apps.example.com", "/w/a1/web/", Some(("a1", "/", false))),
        ("apps.example.com", "/w/a1/web", Some(("a1", "/", true))),
        (
            "apps.example.com",
            "/w/j1/web/lab",
            Some(("j1", "/w/j1/web/lab", false)),
        ),
        (
            "apps.example.com",
            "/p/grafana/d/1",
            Some(("grafana", "/d/1", false)),
        ),
        ("apps.example.com", "/w/a1/webx", None),
        ("apps.example.com", "/w/a1", None),
        ("apps.example.com", "/", None),
        ("demo.apps.example.com", "/x?", Some(("h1", "/x?", false))),
        (
            "jup.apps.example.com",
            "/lab",
            Some(("h2", "/w/h2/web/lab", false)),
        ),
        ("nope.apps.example.com", "/", None),
        ("other.com", "/w/a1/web/", None),
    ];
    for (host, path, want) in cases {
        let got = t.resolve(host, path).map(|r| {
            (
                r.route.route.owner_id.clone(),
                r.upstream_path,
                r.bare_prefix,
            )
        });
        let want = want.map(|(o, p, b)| (o.to_owned(), p.to_owned(), b));
        assert_eq!(got, want, "{host}{path}");
    }
}

#[test]
fn apps_host_recognition() {
    let t = table();
    assert!(t.is_apps_host("apps.example.com"));
    assert!(t.is_apps_host("x.apps.example.com"));
    assert!(!t.is_apps_host("xapps.example.com"));
    assert!(!t.is_apps_host("example.com"));
}

#[test]
fn older_route_keeps_a_contested_address_in_either_order() {
    let first = route("c1", RouteMode::Subdomain, Some("same"), "generic");
    let mut second = route("c2", RouteMode::Subdomain, Some("same"), "generic");
    second.created_at = first.created_at + time::Duration::seconds(1);
    for routes in [
        vec![second.clone(), first.clone()],
        vec![first.clone(), second.clone()],
    ] {
        let (t, conflicts) = RouteTable::build("apps.example.com", routes);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].kept, first.id);
        assert_eq!(conflicts[0].dropped, second.id);
        assert_eq!(conflicts[0].address, "same.apps.example.com");
        let r = t.resolve("same.apps.example.com", "/").expect("found");
        assert_eq!(r.route.route.owner_id, "c1");
        assert!(t.get(second.id).is_none(), "the loser is not served by id");
        assert_eq!(t.routes().count(), 1);
    }
}

#[test]
fn three_claimants_arriving_newest_first_all_lose_to_the_oldest() {
    let oldest = route("t1", RouteMode::Subdomain, Some("three"), "generic");
    let mut middle = route("t2", RouteMode::Subdomain, Some("three"), "generic");
    middle.created_at = oldest.created_at + time::Duration::seconds(1);
    let mut newest = route("t3", RouteMode::Subdomain, Some("three"), "generic");
    newest.created_at = oldest.created_at + time::Duration::seconds(2);
    let (t, conflicts) = RouteTable::build(
        "apps.example.com",
        vec![newest.clone(), middle.clone(), oldest.clone()],
    );
    assert_eq!(conflicts.len(), 2);
    assert!(
        conflicts.iter().all(|c| c.kept == oldest.id),
        "every report names the served route as kept: {conflicts:?}"
    );
    let mut dropped: Vec<_> = conflicts.iter().map(|c| c.dropped).collect();
    dropped.sort();
    let mut want = vec![middle.id, newest.id];
    want.sort();
    assert_eq!(dropped, want);
    assert_eq!(t.routes().count(), 1);
}

#[test]
fn same_age_contest_is_decided_by_id() {
    let a = route("c1", RouteMode::PathPrefix, None, "generic");
    let mut b = route("c2", RouteMode::PathPrefix, None, "generic");
    b.public_path.clone_from(&a.public_path);
    b.created_at = a.created_at;
    let lower = a.id.min(b.id);
    for routes in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        let (t, conflicts) = RouteTable::build("apps.example.com", routes);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].kept, lower);
        assert!(t.get(lower).is_some());
    }
}

#[test]
fn table_keeps_public_but_not_the_policy_map() {
    let mut open = route("p1", RouteMode::Subdomain, Some("open"), "generic");
    open.policy = serde_json::json!({ "public": true, "note": "docs" });
    let closed = route("p2", RouteMode::Subdomain, Some("closed"), "generic");
    let (t, _) = RouteTable::build("apps.example.com", vec![open.clone(), closed.clone()]);
    let served = t.get(open.id).expect("served");
    assert!(served.public);
    assert_eq!(served.route.policy, serde_json::Value::Null);
    assert!(!t.get(closed.id).expect("served").public);
}

#[test]
fn routes_without_overrides_share_their_preset() {
    let a = route("s1", RouteMode::Subdomain, Some("s1"), "jupyterlab");
    let b = route("s2", RouteMode::Subdomain, Some("s2"), "jupyterlab");
    let mut c = route("s3", RouteMode::Subdomain, Some("s3"), "jupyterlab");
    c.adapter_overrides.default_open_path = Some("/tree".into());
    let (t, _) = RouteTable::build("apps.example.com", vec![a.clone(), b.clone(), c.clone()]);
    let (ta, tb, tc) = (
        t.get(a.id).expect("a"),
        t.get(b.id).expect("b"),
        t.get(c.id).expect("c"),
    );
    assert!(Arc::ptr_eq(&ta.adapter, &tb.adapter));
    assert!(!Arc::ptr_eq(&ta.adapter, &tc.adapter));
    assert_eq!(*ta.adapter, a.effective_adapter());
    assert_eq!(tc.adapter.default_open_path, "/tree");
}

#[test]
fn unserved_routes_are_left_out() {
    let mut disabled = route("d1", RouteMode::PathPrefix, None, "generic");
    disabled.status = RouteStatus::Disabled;
    let mut deleted = route("d2", RouteMode::PathPrefix, None, "generic");
    deleted.deleted_at = Some(OffsetDateTime::now_utc());
    let (t, _) = RouteTable::build("apps.example.com", vec![disabled, deleted]);
    assert!(t.is_empty());
    assert!(t.resolve("apps.example.com", "/w/d1/web/").is_none());
}

#[test]
fn strategy_decides_upstream_prefix() {
    let t = table();
    let j = t.resolve("apps.example.com", "/w/j1/web/").expect("found");
    assert_eq!(
        j.route.adapter.base_url_strategy,
        BaseUrlStrategy::PlatformPath
    );
    assert_eq!(j.route.upstream_prefix, "/w/j1/web");
    assert_eq!(j.route.public_prefix, "/w/j1/web");
}

#[test]
fn changes_move_remove_and_add_routes_and_share_the_rest() {
    let keep = route("k1", RouteMode::Subdomain, Some("keep"), "generic");
    let moves = route("m1", RouteMode::Subdomain, Some("before"), "generic");
    let goes = route("g1", RouteMode::PathPrefix, None, "generic");
    let off = route("d1", RouteMode::Subdomain, Some("off"), "generic");
    let (t, _) = RouteTable::build(
        "apps.example.com",
        vec![keep.clone(), moves.clone(), goes.clone(), off.clone()],
    );

    let mut moved = moves.clone();
    moved.route_host = Some("after".into());
    let mut deleted = goes.clone();
    deleted.deleted_at = Some(OffsetDateTime::now_utc());
    let mut disabled = off.clone();
    disabled.status = RouteStatus::Disabled;
    let added = route("n1", RouteMode::PathPrefix, None, "jupyterlab");
    let (u, conflicts) = t.with_changes(
        vec![
            RouteChange::stored(moved),
            RouteChange::Deleted(deleted.id),
            RouteChange::stored(disabled),
            RouteChange::stored(added.clone()),
        ],
        &|_| None,
    );
    assert!(conflicts.is_empty());
    assert!(
        u.resolve("before.apps.example.com", "/").is_none(),
        "old address freed"
    );
    assert_eq!(
        u.resolve("after.apps.example.com", "/")
            .expect("moved")
            .route
            .route
            .id,
        moves.id
    );
    assert!(u.resolve("apps.example.com", "/w/g1/web/").is_none());
    assert!(u.get(goes.id).is_none());
    assert!(u.resolve("off.apps.example.com", "/").is_none());
    assert!(u.get(off.id).is_none());
    assert_eq!(
        u.resolve("apps.example.com", "/w/n1/web/lab")
            .expect("added")
            .route
            .route
            .id,
        added.id
    );
    assert!(
        Arc::ptr_eq(t.get(keep.id).expect("kept"), u.get(keep.id).expect("kept")),
        "an unchanged route is shared, not rebuilt"
    );
    assert_eq!(u.len(), 3);
    // The table it came from is untouched: requests in flight keep it.
    assert_eq!(t.len(), 4);
    assert!(t.resolve("before.apps.example.com", "/").is_some());
}

#[test]
fn a_change_that_claims_a_held_address_follows_the_build_rule() {
    let older = route("o1", RouteMode::Subdomain, Some("held"), "generic");
    let mut newer = route("n1", RouteMode::Subdomain, Some("free"), "generic");
    newer.created_at = older.created_at + time::Duration::seconds(1);
    let (t, _) = RouteTable::build("apps.example.com", vec![older.clone(), newer.clone()]);
    let mut grab = newer.clone();
    grab.route_host = Some("held".into());
    let (u, conflicts) = t.with_changes(vec![RouteChange::stored(grab)], &|_| None);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0].kept, conflicts[0].dropped),
        (older.id, newer.id)
    );
    assert_eq!(
        u.resolve("held.apps.example.com", "/")
            .expect("held")
            .route
            .route
            .id,
        older.id
    );
    assert!(
        u.resolve("free.apps.example.com", "/").is_none(),
        "its old address is gone"
    );
    assert!(u.get(newer.id).is_none());
}

/// A batch holds only each route's final state: route Y moved from A to B,
/// then a newer route X took A. X comes first in the batch; Y must have
/// left A before X is placed, or X would lose A to the stale Y.
#[test]
fn a_batch_that_moves_one_route_off_an_address_and_gives_it_to_another() {
    let y = route("y1", RouteMode::Subdomain, Some("a"), "generic");
    let (t, _) = RouteTable::build("apps.example.com", vec![y.clone()]);
    let mut x = route("x1", RouteMode::Subdomain, Some("a"), "generic");
    x.created_at = y.created_at + time::Duration::seconds(1);
    let mut y_moved = y.clone();
    y_moved.route_host = Some("b".into());
    let (u, conflicts) = t.with_changes(
        vec![RouteChange::stored(x.clone()), RouteChange::stored(y_moved)],
        &|_| None,
    );
    assert!(conflicts.is_empty(), "{conflicts:?}");
    assert_eq!(
        u.resolve("a.apps.example.com", "/")
            .expect("a")
            .route
            .route
            .id,
        x.id
    );
    assert_eq!(
        u.resolve("b.apps.example.com", "/")
            .expect("b")
            .route
            .route
            .id,
        y.id
    );
    assert_eq!(u.len(), 2);
}

#[test]
fn a_route_that_changes_mode_leaves_its_old_map() {
    let r = route("mm", RouteMode::Subdomain, Some("mode"), "generic");
    let (t, _) = RouteTable::build("apps.example.com", vec![r.clone()]);
    let mut as_path = r.clone();
    as_path.route_mode = RouteMode::PathPrefix;
    as_path.route_host = None;
    as_path.public_path = "/w/mm/web/".into();
    let (u, _) = t.with_changes(vec![RouteChange::stored(as_path)], &|_| None);
    assert!(u.resolve("mode.apps.example.com", "/").is_none());
    assert_eq!(
        u.resolve("apps.example.com", "/w/mm/web/x")
            .expect("path")
            .route
            .route
            .id,
        r.id
    );
    assert_eq!(u.len(), 1);
}
