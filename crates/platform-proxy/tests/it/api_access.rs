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
        "upstream": {"targets": ["127.0.0.1:9"]},
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
