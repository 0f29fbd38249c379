use super::*;

fn base() -> NewRoute {
    NewRoute {
        owner_type: OwnerType::AppInstance,
        owner_id: "a7f9c2".into(),
        endpoint_name: Some("web".into()),
        org_id: Some("acme".into()),
        project_id: Some("ml-dev".into()),
        proxy_pool_id: None,
        route_mode: RouteMode::PathPrefix,
        route_host: None,
        upstream: Upstream {
            targets: vec!["127.0.0.1:8888".into()],
            scheme: UpstreamScheme::Http,
        },
        adapter: None,
        adapter_overrides: AdapterOverrides::default(),
        limits: RouteLimits::default(),
        policy: None,
        status: None,
        auth_bridge: None,
    }
}

fn err_field(n: NewRoute) -> String {
    n.into_route(OffsetDateTime::UNIX_EPOCH)
        .expect_err("must be rejected")
        .field
}

#[test]
fn path_prefix_route_derives_public_path() {
    let r = base()
        .into_route(OffsetDateTime::UNIX_EPOCH)
        .expect("valid");
    assert_eq!(r.public_path, "/w/a7f9c2/web/");
    assert_eq!(r.runtime_prefix(), "/w/a7f9c2/web");
    assert_eq!(r.status, RouteStatus::Pending);
    assert_eq!(r.proxy_pool_id, SHARED_POOL_ID);
}

#[test]
fn platform_service_route_lives_under_p() {
    let mut n = base();
    n.owner_type = OwnerType::PlatformService;
    n.owner_id = "grafana".into();
    n.endpoint_name = None;
    let r = n.into_route(OffsetDateTime::UNIX_EPOCH).expect("valid");
    assert_eq!(r.public_path, "/p/grafana/");
}

#[test]
fn subdomain_route_needs_a_host_and_lowercases_it() {
    let mut n = base();
    n.route_mode = RouteMode::Subdomain;
    assert_eq!(err_field(n.clone()), "route_host");
    n.route_host = Some("Jupyter-A7F9".into());
    let r = n.into_route(OffsetDateTime::UNIX_EPOCH).expect("valid");
    assert_eq!(r.route_host.as_deref(), Some("jupyter-a7f9"));
    assert_eq!(r.public_path, "/");
}

#[test]
fn each_bad_field_is_named() {
    let cases: Vec<(&str, Box<dyn Fn(&mut NewRoute)>)> = vec![
        ("owner_id", Box::new(|n| n.owner_id = "a/b".into())),
        ("owner_id", Box::new(|n| n.owner_id = "..".into())),
        ("owner_id", Box::new(|n| n.owner_id = String::new())),
        ("endpoint_name", Box::new(|n| n.endpoint_name = None)),
        (
            "endpoint_name",
            Box::new(|n| n.endpoint_name = Some("%2e".into())),
        ),
        ("org_id", Box::new(|n| n.org_id = Some("a b".into()))),
        ("route_host", Box::new(|n| n.route_host = Some("x".into()))),
        ("upstream.targets", Box::new(|n| n.upstream.targets.clear())),
        (
            "upstream.targets[0]",
            Box::new(|n| n.upstream.targets[0] = "nohost".into()),
        ),
        (
            "upstream.targets[0]",
            Box::new(|n| n.upstream.targets[0] = "h:0".into()),
        ),
        (
            "upstream.targets[0]",
            Box::new(|n| n.upstream.targets[0] = "h:99999".into()),
        ),
        (
            "upstream.targets[0]",
            Box::new(|n| n.upstream.targets[0] = "a/b:80".into()),
        ),
        ("adapter", Box::new(|n| n.adapter = Some("nope".into()))),
        (
            "upstream.scheme",
            Box::new(|n| n.upstream.scheme = UpstreamScheme::Https),
        ),
        (
            "limits.max_connections",
            Box::new(|n| n.limits.max_connections = Some(0)),
        ),
        (
            "policy",
            Box::new(|n| n.policy = Some(serde_json::json!([1]))),
        ),
        (
            "adapter_overrides.default_open_path",
            Box::new(|n| n.adapter_overrides.default_open_path = Some("//evil".into())),
        ),
    ];
    for (field, mutate) in cases {
        let mut n = base();
        mutate(&mut n);
        assert_eq!(err_field(n), field);
    }
}

#[test]
fn subdomain_host_labels_follow_dns_rules() {
    for bad in ["-a", "a-", "a..b", "a_b", "a/b", &"x".repeat(64)] {
        let mut n = base();
        n.route_mode = RouteMode::Subdomain;
        n.route_host = Some(bad.to_owned());
        assert_eq!(err_field(n), "route_host", "{bad}");
    }
}

#[test]
fn patch_keeps_identity_and_validates_changes() {
    let mut r = base()
        .into_route(OffsetDateTime::UNIX_EPOCH)
        .expect("valid");
    let p = RoutePatch {
        upstream: Some(Upstream {
            targets: vec![],
            scheme: UpstreamScheme::Http,
        }),
        ..RoutePatch::default()
    };
    assert_eq!(
        p.apply(&mut r, OffsetDateTime::UNIX_EPOCH)
            .expect_err("bad")
            .field,
        "upstream.targets"
    );
    let p = RoutePatch {
        status: Some(RouteStatus::Disabled),
        ..RoutePatch::default()
    };
    p.apply(&mut r, OffsetDateTime::now_utc()).expect("valid");
    assert_eq!(r.status, RouteStatus::Disabled);
    assert!(r.updated_at > r.created_at);
}

#[test]
fn split_host_port_handles_v6() {
    assert_eq!(split_host_port("[::1]:80"), Some(("[::1]", "80")));
    assert_eq!(split_host_port("::1:80"), None);
    assert_eq!(split_host_port("a:80"), Some(("a", "80")));
}
