use super::*;

const ORGS: [&str; 3] = ["acme", "globex", "initech"];
const PROJECTS: [&str; 2] = ["dev", "prod"];

/// Every principal shape the matrix checks: no grants, each role on each
/// org, each role on each project, and a platform admin.
fn principals() -> Vec<(String, Principal)> {
    let mut out = vec![(
        "nobody".to_owned(),
        Principal::new(PrincipalKind::User, "nobody"),
    )];
    let mut admin = Principal::new(PrincipalKind::User, "root");
    admin.platform_admin = true;
    out.push(("platform_admin".to_owned(), admin));
    for org in ORGS {
        for role in [Role::Viewer, Role::Member, Role::Admin] {
            let mut p = Principal::new(PrincipalKind::User, "u");
            p.grant(Scope::org(org), role);
            out.push((format!("{org}:{}", role.as_str()), p));
            for project in PROJECTS {
                let mut p = Principal::new(PrincipalKind::User, "u");
                p.grant(Scope::project(org, project), role);
                out.push((format!("{org}/{project}:{}", role.as_str()), p));
            }
        }
    }
    out
}

/// What the rules promise, written independently of the implementation:
/// the expected outcome for one principal label against one route.
fn expected_use(label: &str, org: &str, project: &str, strategy: ScopeStrategy) -> bool {
    if label == "platform_admin" {
        return true;
    }
    if label == "nobody" {
        return false;
    }
    let (scope, role) = label.rsplit_once(':').expect("label");
    match strategy {
        ScopeStrategy::OrgOnly => scope == org && role == "admin",
        ScopeStrategy::ProjectRequired => {
            scope == format!("{org}/{project}") || (scope == org && role == "admin")
        }
    }
}

#[test]
fn route_access_matrix_denies_cross_tenant_and_cross_project() {
    let mut checked = 0;
    for (label, p) in principals() {
        for org in ORGS {
            for project in PROJECTS {
                for strategy in [ScopeStrategy::ProjectRequired, ScopeStrategy::OrgOnly] {
                    let route = RouteScope {
                        org_id: Some(org),
                        project_id: Some(project),
                        strategy,
                    };
                    let want = expected_use(&label, org, project, strategy);
                    let got = may_use_route(&p, route);
                    assert_eq!(
                        got.is_ok(),
                        want,
                        "{label} on {org}/{project} ({strategy:?}): {got:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    // 2 + 3 orgs x 3 roles x (1 + 2 projects) principals, 12 routes each.
    assert_eq!(checked, (2 + 3 * 3 * 3) * 3 * 2 * 2);
}

#[test]
fn denial_reasons_name_the_rule() {
    let mut p = Principal::new(PrincipalKind::User, "u");
    p.grant(Scope::project("acme", "dev"), Role::Member);
    let route = |org, project, strategy| RouteScope {
        org_id: org,
        project_id: project,
        strategy,
    };
    let cases = [
        (
            route(None, None, ScopeStrategy::ProjectRequired),
            Denial::RouteHasNoOrg,
        ),
        (
            route(Some("globex"), Some("dev"), ScopeStrategy::ProjectRequired),
            Denial::CrossTenant,
        ),
        (
            route(Some("acme"), Some("prod"), ScopeStrategy::ProjectRequired),
            Denial::NotProjectMember,
        ),
        (
            route(Some("acme"), None, ScopeStrategy::ProjectRequired),
            Denial::RouteHasNoProject,
        ),
        (
            route(Some("acme"), None, ScopeStrategy::OrgOnly),
            Denial::NeedsOrgAdmin,
        ),
    ];
    for (r, want) in cases {
        assert_eq!(may_use_route(&p, r), Err(want), "{r:?}");
    }
}

#[test]
fn management_follows_admin_roles_only() {
    let mut org_admin = Principal::new(PrincipalKind::User, "a");
    org_admin.grant(Scope::org("acme"), Role::Admin);
    let mut project_admin = Principal::new(PrincipalKind::User, "b");
    project_admin.grant(Scope::project("acme", "dev"), Role::Admin);
    let mut member = Principal::new(PrincipalKind::User, "c");
    member.grant(Scope::project("acme", "dev"), Role::Member);
    let operator = Principal::operator();
    let cases = [
        (&org_admin, Some("acme"), Some("dev"), true),
        (&org_admin, Some("acme"), None, true),
        (&org_admin, Some("globex"), Some("dev"), false),
        (&project_admin, Some("acme"), Some("dev"), true),
        (&project_admin, Some("acme"), Some("prod"), false),
        (&project_admin, Some("acme"), None, false),
        (&member, Some("acme"), Some("dev"), false),
        (&org_admin, None, None, false),
        (&operator, None, None, true),
        (&operator, Some("globex"), Some("prod"), true),
    ];
    for (p, org, project, want) in cases {
        assert_eq!(
            may_manage_route(p, org, project),
            want,
            "{} on {org:?}/{project:?}",
            p.id
        );
    }
}

#[test]
fn grant_keeps_the_stronger_role_and_org_restriction_drops_others() {
    let mut p = Principal::new(PrincipalKind::User, "u");
    p.grant(Scope::project("acme", "dev"), Role::Admin);
    p.grant(Scope::project("acme", "dev"), Role::Viewer);
    p.grant(Scope::org("globex"), Role::Member);
    assert_eq!(p.project_role("acme", "dev"), Some(Role::Admin));
    let r = p.restricted_to_org(Some("acme"));
    assert_eq!(r.role_strings(), vec!["acme/dev:admin".to_owned()]);
    assert!(p.restricted_to_org(None).roles.is_empty());
}

#[test]
fn principal_round_trips_through_json_with_roles_as_a_list() {
    let mut p = Principal::new(PrincipalKind::User, "u");
    p.grant(Scope::org("acme"), Role::Admin);
    p.grant(Scope::project("acme", "dev"), Role::Viewer);
    let json = serde_json::to_value(&p).expect("serialize");
    assert_eq!(
        json["roles"],
        serde_json::json!([
            {"org_id": "acme", "role": "admin"},
            {"org_id": "acme", "project_id": "dev", "role": "viewer"}
        ])
    );
    let back: Principal = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, p);
}

fn route_json(extra: serde_json::Value) -> crate::Route {
    let mut v = serde_json::json!({
        "owner_type": "app_instance", "owner_id": "a1", "endpoint_name": "web",
        "org_id": "acme", "project_id": "dev",
        "route_mode": "subdomain", "route_host": "a1",
        "upstream": {"targets": ["10.0.3.7:8888"]},
    });
    if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    let new: crate::NewRoute = serde_json::from_value(v).expect("route");
    new.into_route(time::OffsetDateTime::UNIX_EPOCH)
        .expect("valid")
}

#[test]
fn tenant_admins_hold_only_routes_that_stay_inside_the_tenant() {
    use serde_json::json;
    let mut project_admin = Principal::new(PrincipalKind::User, "pa");
    project_admin.grant(Scope::project("acme", "dev"), Role::Admin);
    let mut org_admin = Principal::new(PrincipalKind::User, "oa");
    org_admin.grant(Scope::org("acme"), Role::Admin);
    let operator = Principal::operator();
    let cases = [
        (json!({}), true, true),
        (json!({"adapter": "grafana"}), false, true),
        (
            json!({"adapter_overrides": {"scope_strategy": "org_only"}}),
            false,
            true,
        ),
        (
            json!({"route_mode": "path_prefix", "route_host": null}),
            false,
            false,
        ),
        (
            json!({"owner_type": "platform_service", "route_mode": "path_prefix", "route_host": null}),
            false,
            false,
        ),
        (json!({"policy": {"public": true}}), false, false),
        (
            json!({"adapter_overrides": {"auth_strategy": "bearer_passthrough"}}),
            false,
            false,
        ),
        (
            json!({"upstream": {"targets": ["169.254.169.254:80"]}}),
            false,
            false,
        ),
        (
            json!({"upstream": {"targets": ["127.0.0.1:22"]}}),
            false,
            false,
        ),
        (json!({"upstream": {"targets": ["[::1]:22"]}}), false, false),
        (
            json!({"upstream": {"targets": ["[fe80::1]:80"]}}),
            false,
            false,
        ),
        (
            json!({"upstream": {"targets": ["0.0.0.0:80"]}}),
            false,
            false,
        ),
        (
            json!({"upstream": {"targets": ["localhost:80"]}}),
            false,
            false,
        ),
        (
            json!({"upstream": {"targets": ["jupyter.internal:8888"]}}),
            true,
            true,
        ),
    ];
    for (extra, project_ok, org_ok) in cases {
        let r = route_json(extra.clone());
        assert_eq!(
            may_hold_route(&project_admin, &r).is_ok(),
            project_ok,
            "project admin: {extra}"
        );
        assert_eq!(
            may_hold_route(&org_admin, &r).is_ok(),
            org_ok,
            "org admin: {extra}"
        );
        assert!(may_hold_route(&operator, &r).is_ok(), "operator: {extra}");
    }
}

#[test]
fn role_header_lists_the_org_roles_in_order_and_platform_admin_first() {
    let mut p = Principal::new(PrincipalKind::User, "u");
    p.grant(Scope::project("acme", "prod"), Role::Viewer);
    p.grant(Scope::org("acme"), Role::Member);
    p.grant(Scope::org("globex"), Role::Admin);
    p.grant(Scope::project("acme", "dev"), Role::Admin);
    assert_eq!(
        p.role_header(Some("acme"), false),
        "acme:member,acme/dev:admin,acme/prod:viewer"
    );
    assert_eq!(p.role_header(Some("globex"), true), "globex:admin");
    assert_eq!(p.role_header(Some("initech"), false), "");
    assert_eq!(p.role_header(None, false), "");
    assert_eq!(
        p.role_header(None, true),
        "acme:member,acme/dev:admin,acme/prod:viewer,globex:admin"
    );
    // The same order as the sorted role strings.
    assert_eq!(p.role_header(None, true), p.role_strings().join(","));
    p.platform_admin = true;
    assert_eq!(
        p.role_header(Some("globex"), false),
        "platform:admin,globex:admin"
    );
    let mut root = Principal::new(PrincipalKind::User, "root");
    root.platform_admin = true;
    assert_eq!(root.role_header(Some("acme"), false), "platform:admin");
}

#[test]
fn role_lookups_agree_for_short_and_long_role_lists() {
    for extra in [0usize, 40] {
        let mut p = Principal::new(PrincipalKind::User, "u");
        for i in 0..extra {
            p.grant(Scope::project("filler", &format!("p{i}")), Role::Viewer);
        }
        p.grant(Scope::org("acme"), Role::Admin);
        p.grant(Scope::project("globex", "dev"), Role::Member);
        assert_eq!(p.org_role("acme"), Some(Role::Admin), "{extra}");
        assert_eq!(p.org_role("globex"), None, "{extra}");
        assert_eq!(p.project_role("acme", "any"), Some(Role::Admin), "{extra}");
        assert_eq!(
            p.project_role("globex", "dev"),
            Some(Role::Member),
            "{extra}"
        );
        assert_eq!(p.project_role("globex", "prod"), None, "{extra}");
    }
}
