//! Who may do what through the control-plane API: platform admins
//! everything, org and project admins their scope, members only minting
//! and reading; no escalation; outsiders learn nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::identity::Secured;
use crate::support::upstream::echo;
use crate::support::API_HOST;

fn route_body(label: &str, org: Option<&str>, project: Option<&str>) -> Value {
    json!({
        "owner_type": "app_instance", "owner_id": label, "endpoint_name": "web",
        "org_id": org, "project_id": project,
        "route_mode": "subdomain", "route_host": label,
        "upstream": {"targets": ["10.0.0.9:9"]},
    })
}

async fn call(
    s: &Secured,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.proxy.req(method, API_HOST, path).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.expect("text");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn route_management_follows_admin_roles() {
    let s = Secured::start().await;
    let member = s.token("m", &["acme/dev:member"]);
    let project_admin = s.token("pa", &["acme/dev:admin"]);
    let org_admin = s.token("oa", &["acme:admin"]);
    let cases = [
        (&member, route_body("r1", Some("acme"), Some("dev")), 403),
        (
            &project_admin,
            route_body("r2", Some("acme"), Some("prod")),
            403,
        ),
        (&project_admin, route_body("r3", Some("acme"), None), 403),
        (&project_admin, route_body("r4", None, None), 403),
        (
            &org_admin,
            route_body("r5", Some("globex"), Some("dev")),
            403,
        ),
        (
            &project_admin,
            route_body("ok1", Some("acme"), Some("dev")),
            201,
        ),
        (
            &org_admin,
            route_body("ok2", Some("acme"), Some("prod")),
            201,
        ),
        (&org_admin, route_body("ok3", Some("acme"), None), 201),
    ];
    for (token, body, want) in cases {
        let (status, v) = call(
            &s,
            token,
            Method::POST,
            "/api/v1/routes",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, want, "{body} -> {v}");
    }
    // A member sees the project's route, may not change it; an outsider
    // cannot even see it.
    let (_, list) = call(&s, &member, Method::GET, "/api/v1/routes", None).await;
    let hosts: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["route_host"].as_str())
        .collect();
    assert_eq!(
        hosts,
        vec!["ok1"],
        "only the routes of the member's project"
    );
    let id = list["items"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/routes/{id}");
    let patch = json!({"status": "disabled"});
    assert_eq!(
        call(&s, &member, Method::PATCH, &path, Some(patch.clone()))
            .await
            .0,
        403
    );
    assert_eq!(call(&s, &member, Method::DELETE, &path, None).await.0, 403);
    let outsider = s.token("x", &["globex:admin"]);
    assert_eq!(call(&s, &outsider, Method::GET, &path, None).await.0, 404);
    assert_eq!(
        call(&s, &outsider, Method::PATCH, &path, Some(patch.clone()))
            .await
            .0,
        404
    );
    assert_eq!(
        call(&s, &project_admin, Method::PATCH, &path, Some(patch))
            .await
            .0,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn grants_and_tokens_cannot_escalate() {
    let s = Secured::start().await;
    let project_admin = s.token("pa", &["acme/dev:admin"]);
    let member = s.token("m", &["acme/dev:member"]);
    let grant = |subject: &str, org: &str, project: Option<&str>, role: &str| json!({"subject": subject, "org_id": org, "project_id": project, "role": role});
    let cases = [
        (
            &project_admin,
            grant("bob", "acme", Some("dev"), "admin"),
            201,
        ),
        (&project_admin, grant("carol", "acme", None, "admin"), 403),
        (
            &project_admin,
            grant("dave", "acme", Some("prod"), "viewer"),
            403,
        ),
        (&member, grant("erin", "acme", Some("dev"), "viewer"), 403),
        (
            &project_admin,
            grant("bob", "acme", Some("dev"), "member"),
            409,
        ),
        (
            &project_admin,
            grant("bad id!", "acme", Some("dev"), "member"),
            422,
        ),
    ];
    for (token, body, want) in cases {
        let (status, v) = call(
            &s,
            token,
            Method::POST,
            "/api/v1/grants",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, want, "{body} -> {v}");
    }
    let token = |role: &str, project: Option<&str>| json!({"name": "ci", "org_id": "acme", "project_id": project, "role": role});
    for (who, body, want) in [
        (&member, token("viewer", Some("dev")), 403),
        (&project_admin, token("admin", None), 403),
        (&project_admin, token("member", Some("dev")), 201),
    ] {
        let (status, v) = call(
            &s,
            who,
            Method::POST,
            "/api/v1/service-tokens",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, want, "{body} -> {v}");
    }
    let (status, v) = call(
        &s,
        &project_admin,
        Method::POST,
        "/api/v1/service-tokens",
        Some(json!({"name": "x", "org_id": "acme", "project_id": "dev", "role": "member", "expires_in_secs": 0})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(v["error"]["field"], "expires_in_secs");
    s.stop().await;
}

#[tokio::test]
async fn audit_and_sessions_are_read_only_within_your_scope() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("sc", up.addr, "acme", "dev", json!({})).await;
    let member = s.token("m", &["acme/dev:member"]);
    let org_admin = s.token("oa", &["acme:admin"]);
    s.launch(&route, &member).await;
    assert_eq!(
        call(&s, &member, Method::GET, "/api/v1/audit", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&s, &member, Method::GET, "/api/v1/audit?org_id=acme", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(
            &s,
            &org_admin,
            Method::GET,
            "/api/v1/audit?org_id=globex",
            None
        )
        .await
        .0,
        403
    );
    let (status, v) = call(
        &s,
        &org_admin,
        Method::GET,
        "/api/v1/audit?org_id=acme",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!v["items"].as_array().expect("items").is_empty());
    let bad = call(
        &s,
        &org_admin,
        Method::GET,
        "/api/v1/audit?org_id=acme&since=yesterday",
        None,
    )
    .await;
    assert_eq!(bad.0, 400);
    assert_eq!(bad.1["error"]["field"], "since");
    // Own sessions yes, someone else's no; a route admin sees the route's.
    let (status, mine) = call(&s, &member, Method::GET, "/api/v1/sessions?user_id=m", None).await;
    assert_eq!(status, 200);
    assert_eq!(mine["items"].as_array().expect("items").len(), 1);
    assert!(
        mine.to_string().find("launch_code").is_none(),
        "no code hash in listings"
    );
    assert_eq!(
        call(
            &s,
            &member,
            Method::GET,
            "/api/v1/sessions?user_id=oa",
            None
        )
        .await
        .0,
        403
    );
    let rid = route["id"].as_str().expect("id");
    let by_route = call(
        &s,
        &org_admin,
        Method::GET,
        &format!("/api/v1/sessions?route_id={rid}"),
        None,
    )
    .await;
    assert_eq!(by_route.0, 200);
    // Revoking everyone's sessions needs a platform admin.
    let r = call(
        &s,
        &org_admin,
        Method::POST,
        "/api/v1/sessions/revoke",
        Some(json!({"user_id": "m"})),
    )
    .await;
    assert_eq!(r.0, 403);
    let r = call(
        &s,
        &member,
        Method::POST,
        "/api/v1/sessions/revoke",
        Some(json!({"user_id": "m"})),
    )
    .await;
    assert_eq!(r.0, 200, "signing yourself out everywhere");
    s.proxy.running().routes_applied().await;
    // ... which also ends the token it was done with.
    assert_eq!(
        call(&s, &member, Method::GET, "/api/v1/me", None).await.0,
        401
    );
    let r = call(
        &s,
        &org_admin,
        Method::POST,
        "/api/v1/sessions/revoke",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.0, 422);
    s.stop().await;
}

#[tokio::test]
async fn me_reports_the_merged_identity() {
    let s = Secured::start().await;
    let t = s.token("alice", &["acme/dev:member", "globex:viewer"]);
    let (status, v) = call(&s, &t, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["id"], "alice");
    assert_eq!(v["kind"], "user");
    assert_eq!(v["via"], "jwt");
    assert_eq!(v["roles"], json!(["acme/dev:member", "globex:viewer"]));
    let (status, _) = call(&s, "garbage", Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn only_platform_admins_place_routes_on_the_shared_origin_or_open_them() {
    let s = Secured::start().await;
    let org_admin = s.token("oa", &["acme:admin"]);
    let mut path = route_body("p1", Some("acme"), Some("dev"));
    path["route_mode"] = json!("path_prefix");
    path["route_host"] = Value::Null;
    let mut service = path.clone();
    service["owner_type"] = json!("platform_service");
    let mut public = route_body("p2", Some("acme"), Some("dev"));
    public["policy"] = json!({"public": true});
    let mut passthrough = route_body("p3", Some("acme"), Some("dev"));
    passthrough["adapter_overrides"] = json!({"auth_strategy": "bearer_passthrough"});
    let mut metadata = route_body("p4", Some("acme"), Some("dev"));
    metadata["upstream"] = json!({"targets": ["169.254.169.254:80"]});
    for body in [&path, &service, &public, &passthrough, &metadata] {
        let (status, v) = call(
            &s,
            &org_admin,
            Method::POST,
            "/api/v1/routes",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 403, "{body} -> {v}");
    }
    for body in [&path, &public] {
        let (status, v) = call(
            &s,
            crate::support::TOKEN,
            Method::POST,
            "/api/v1/routes",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 201, "operator: {body} -> {v}");
    }
    // A tenant admin cannot widen a route of theirs into one of those
    // either, nor take over an org-only route through its project.
    let (_, mine) = call(
        &s,
        &org_admin,
        Method::POST,
        "/api/v1/routes",
        Some(route_body("p5", Some("acme"), Some("dev"))),
    )
    .await;
    let p5 = format!("/api/v1/routes/{}", mine["id"].as_str().expect("id"));
    let (status, _) = call(
        &s,
        &org_admin,
        Method::PATCH,
        &p5,
        Some(json!({"policy": {"public": true}})),
    )
    .await;
    assert_eq!(status, 403);
    let project_admin = s.token("pa", &["acme/dev:admin"]);
    let mut grafana = route_body("graf", Some("acme"), Some("dev"));
    grafana["adapter"] = json!("grafana");
    let (status, g) = call(
        &s,
        &org_admin,
        Method::POST,
        "/api/v1/routes",
        Some(grafana),
    )
    .await;
    assert_eq!(status, 201);
    let gpath = format!("/api/v1/routes/{}", g["id"].as_str().expect("id"));
    let widen = json!({"adapter_overrides": {"scope_strategy": "project_required"}});
    let (status, v) = call(&s, &project_admin, Method::PATCH, &gpath, Some(widen)).await;
    assert_eq!(status, 403, "{v}");
    // A route's address conflict tells a tenant only that it is taken.
    let (status, v) = call(
        &s,
        &org_admin,
        Method::POST,
        "/api/v1/routes",
        Some(route_body("p5", Some("acme"), Some("dev"))),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        !v.to_string().contains(mine["id"].as_str().expect("id")),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_bridged_route_keeps_its_secret_where_it_was_sent() {
    let s = Secured::start().await;
    let org_admin = s.token("oa", &["acme:admin"]);
    let mut body = route_body("br", Some("acme"), Some("dev"));
    body["auth_bridge"] =
        json!({"mode": "authorization_header", "scheme": "token", "secret": "s3cr3t-app-token"});
    let (status, v) = call(&s, &org_admin, Method::POST, "/api/v1/routes", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    assert!(!v.to_string().contains("s3cr3t"));
    let path = format!("/api/v1/routes/{}", v["id"].as_str().expect("id"));
    // Re-pointing the upstream without restating the bridge is refused.
    let moved = json!({"upstream": {"targets": ["10.9.9.9:80"]}});
    let (status, v) = call(&s, &org_admin, Method::PATCH, &path, Some(moved)).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["field"], "auth_bridge");
    let moved_clean = json!({"upstream": {"targets": ["10.9.9.9:80"]}, "auth_bridge": null});
    let (status, _) = call(&s, &org_admin, Method::PATCH, &path, Some(moved_clean)).await;
    assert_eq!(status, 200);
    // A public route with a bridge would hand the app's credential to anyone.
    let mut open = route_body("pb", Some("acme"), Some("dev"));
    open["policy"] = json!({"public": true});
    open["auth_bridge"] = json!({"mode": "authorization_header", "secret": "x-token"});
    let (status, v) = call(
        &s,
        crate::support::TOKEN,
        Method::POST,
        "/api/v1/routes",
        Some(open),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn service_tokens_cannot_mint_service_tokens() {
    let s = Secured::start().await;
    let (_, t) = call(
        &s,
        crate::support::TOKEN,
        Method::POST,
        "/api/v1/service-tokens",
        Some(json!({"name": "auto", "org_id": "acme", "role": "admin"})),
    )
    .await;
    let token = t["token"].as_str().expect("token").to_owned();
    s.proxy.running().routes_applied().await;
    let (status, v) = call(
        &s,
        &token,
        Method::POST,
        "/api/v1/service-tokens",
        Some(json!({"name": "child", "org_id": "acme", "role": "viewer", "expires_in_secs": 31_000_000})),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn identity_inputs_past_their_limits_are_refused_naming_the_field() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("lim", up.addr, "acme", "dev", json!({})).await;
    let member = s.token("m", &["acme/dev:member"]);
    let rid = route["id"].as_str().expect("id");
    let mint = format!("/api/v1/routes/{rid}/browser-session");
    let long_next = format!("/{}", "a".repeat(2048));
    let cases: Vec<(&str, Method, String, Value, &str)> = vec![
        (
            member.as_str(),
            Method::POST,
            mint.clone(),
            json!({"next": long_next}),
            "next",
        ),
        (
            member.as_str(),
            Method::POST,
            mint.clone(),
            json!({"next": "//evil.example/"}),
            "next",
        ),
        (
            member.as_str(),
            Method::POST,
            "/api/v1/sessions/revoke".into(),
            json!({"user_id": "m", "reason": "r".repeat(513)}),
            "reason",
        ),
        (
            crate::support::TOKEN,
            Method::POST,
            "/api/v1/service-tokens".into(),
            json!({"name": "n".repeat(129), "org_id": "acme", "role": "viewer"}),
            "name",
        ),
        (
            crate::support::TOKEN,
            Method::POST,
            "/api/v1/service-tokens".into(),
            json!({"name": "ok", "org_id": "acme", "role": "viewer", "expires_in_secs": 400 * 24 * 3600}),
            "expires_in_secs",
        ),
        (
            crate::support::TOKEN,
            Method::POST,
            "/api/v1/grants".into(),
            json!({"subject": "x".repeat(129), "org_id": "acme", "role": "viewer"}),
            "subject",
        ),
        (
            crate::support::TOKEN,
            Method::POST,
            "/api/v1/routes".into(),
            {
                let mut b = route_body("wsl", Some("acme"), Some("dev"));
                b["limits"] = json!({"websocket_max_lifetime_secs": 18_446_744_073_709_551_615u64});
                b
            },
            "limits.websocket_max_lifetime_secs",
        ),
        (
            crate::support::TOKEN,
            Method::POST,
            "/api/v1/routes".into(),
            {
                let mut b = route_body("abh", Some("acme"), Some("dev"));
                b["auth_bridge"] =
                    json!({"mode": "header", "header": "x-forwarded-user", "secret": "s"});
                b
            },
            "auth_bridge.header",
        ),
    ];
    for (token, method, path, body, field) in cases {
        let (status, v) = call(&s, token, method, &path, Some(body)).await;
        assert_eq!(status, 422, "{path} {field}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    s.stop().await;
}
