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
