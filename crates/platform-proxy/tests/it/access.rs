//! Tenant and project authorization through the whole pipeline: a matrix
//! of three orgs by two projects by every role against every route, with
//! real platform JWTs, and the answers an outsider gets.

use serde_json::{json, Value};

use crate::support::identity::Secured;
use crate::support::upstream::echo;

const ORGS: [&str; 3] = ["acme", "globex", "initech"];
const PROJECTS: [&str; 2] = ["dev", "prod"];
const ROLES: [&str; 3] = ["viewer", "member", "admin"];

/// What the rules promise for a membership `org[/project]:role` on a
/// route of `org`/`project` with the given adapter scope: 200, or the
/// refusal (404 for outsiders of the org, 403 for members lacking it).
fn expected(membership: &str, org: &str, project: &str, org_only: bool) -> u16 {
    let (scope, role) = membership.rsplit_once(':').expect("membership");
    let in_org = scope == org || scope.starts_with(&format!("{org}/"));
    if !in_org {
        return 404;
    }
    let ok = if org_only {
        scope == org && role == "admin"
    } else {
        scope == format!("{org}/{project}") || (scope == org && role == "admin")
    };
    if ok {
        200
    } else {
        403
    }
}

#[tokio::test]
async fn every_role_against_every_route_across_three_orgs_and_two_projects() {
    let s = Secured::start().await;
    let up = echo().await;
    // Two routes per (org, project): a project-scoped app and an org-only
    // platform tool (Grafana's adapter).
    let mut routes: Vec<(String, &str, &str, bool)> = Vec::new();
    for org in ORGS {
        for project in PROJECTS {
            for (adapter, org_only) in [("generic", false), ("grafana", true)] {
                let label = format!("{org}-{project}-{adapter}");
                s.route(&label, up.addr, org, project, json!({"adapter": adapter}))
                    .await;
                routes.push((label, org, project, org_only));
            }
        }
    }
    let mut memberships = Vec::new();
    for org in ORGS {
        for role in ROLES {
            memberships.push(format!("{org}:{role}"));
            for project in PROJECTS {
                memberships.push(format!("{org}/{project}:{role}"));
            }
        }
    }
    let port = s.proxy.addr.port();
    let mut checked = 0;
    for m in &memberships {
        let token = s.token("u", &[m.as_str()]);
        for (label, org, project, org_only) in &routes {
            let host = format!("{label}.apps.test:{port}");
            // Grafana wants a trailing-slash root; ask for a page under it.
            let r = s
                .proxy
                .get(&host, "/x/")
                .bearer_auth(&token)
                .send()
                .await
                .expect("send");
            let want = expected(m, org, project, *org_only);
            assert_eq!(r.status().as_u16(), want, "{m} on {label}");
            if want != 200 {
                let v: Value = r.json().await.expect("envelope");
                let code = if want == 404 {
                    "route_not_found"
                } else {
                    "forbidden"
                };
                assert_eq!(v["error"]["code"], code, "{m} on {label}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 27 * 12);
    // A platform admin reaches everything; no token reaches nothing.
    let root = s
        .idp
        .mint(
            json!({"sub": "root", "roles": ["platform-admin"]}),
            std::time::Duration::from_secs(60),
        )
        .expect("token");
    for (label, ..) in &routes {
        let host = format!("{label}.apps.test:{port}");
        let r = s
            .proxy
            .get(&host, "/x/")
            .bearer_auth(&root)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "admin on {label}");
        let r = s.proxy.get(&host, "/x/").send().await.expect("send");
        assert_eq!(r.status(), 401, "anonymous on {label}");
    }
    s.stop().await;
}

#[tokio::test]
async fn an_outsider_cannot_tell_a_foreign_route_from_none() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("secret", up.addr, "acme", "dev", json!({})).await;
    let globex = s.token("eve", &["globex/dev:admin"]);
    let port = s.proxy.addr.port();
    let foreign = s
        .proxy
        .get(&format!("secret.apps.test:{port}"), "/")
        .bearer_auth(&globex)
        .send()
        .await
        .expect("foreign");
    let missing = s
        .proxy
        .get(&format!("nothing.apps.test:{port}"), "/")
        .bearer_auth(&globex)
        .send()
        .await
        .expect("missing");
    assert_eq!(foreign.status(), missing.status());
    let (a, b): (Value, Value) = (
        foreign.json().await.expect("json"),
        missing.json().await.expect("json"),
    );
    assert_eq!(a["error"]["code"], b["error"]["code"]);
    assert_eq!(a["error"]["message"], b["error"]["message"]);
    assert_eq!(up.connections(), 0);
    // The API answers alike too.
    let routes: Value = s
        .proxy
        .req(
            reqwest::Method::GET,
            crate::support::API_HOST,
            "/api/v1/routes",
        )
        .bearer_auth(&globex)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(routes["items"], json!([]), "foreign routes are not listed");
    s.stop().await;
}

#[tokio::test]
async fn tokens_from_another_issuer_or_expired_ones_are_refused() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("tk", up.addr, "acme", "dev", json!({})).await;
    let other = platform_proxy::dev_platform::DevPlatform::start()
        .await
        .expect("issuer");
    let foreign = other
        .user_token(
            "alice",
            &["acme/dev:member"],
            std::time::Duration::from_secs(60),
        )
        .expect("token");
    let expired = s
        .idp
        .mint(
            json!({"sub": "alice", "memberships": ["acme/dev:member"], "exp": 1_000_000}),
            std::time::Duration::from_secs(60),
        )
        .expect("token");
    let good = s.token("alice", &["acme/dev:member"]);
    let mut tampered = good.clone();
    tampered.insert(good.len() / 2, 'x');
    let host = format!("tk.apps.test:{}", s.proxy.addr.port());
    for (name, t, want) in [
        ("other issuer's key", foreign.as_str(), 401),
        ("expired", expired.as_str(), 401),
        ("tampered", tampered.as_str(), 401),
        ("not a JWT", "nonsense", 401),
        ("good", good.as_str(), 200),
    ] {
        let r = s
            .proxy
            .get(&host, "/")
            .bearer_auth(t)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), want, "{name}");
    }
    other.stop();
    s.stop().await;
}

#[tokio::test]
async fn pushed_grants_open_and_removed_grants_close_a_route() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("gr", up.addr, "acme", "dev", json!({})).await;
    let bob = s.token("bob", &[]);
    let host = format!("gr.apps.test:{}", s.proxy.addr.port());
    let get = || s.proxy.get(&host, "/").bearer_auth(&bob).send();
    assert_eq!(get().await.expect("send").status(), 404);
    let g = s
        .operator(
            reqwest::Method::POST,
            "/api/v1/grants",
            json!({"subject": "bob", "org_id": "acme", "project_id": "dev", "role": "member"}),
        )
        .await;
    assert_eq!(get().await.expect("send").status(), 200);
    let del = s
        .proxy
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/grants/{}", g["id"].as_str().expect("id")),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 204);
    s.proxy.running().routes_applied().await;
    assert_eq!(get().await.expect("send").status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn service_tokens_authenticate_until_revoked() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("svc", up.addr, "acme", "dev", json!({})).await;
    let created = s
        .proxy
        .api(reqwest::Method::POST, "/api/v1/service-tokens")
        .json(&json!({"name": "ci", "org_id": "acme", "project_id": "dev", "role": "member"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let v: Value = created.json().await.expect("json");
    let token = v["token"].as_str().expect("token shown once").to_owned();
    assert!(token.starts_with("ppst_"));
    assert!(v.get("token_hash").is_none(), "the hash is never shown");
    s.proxy.running().routes_applied().await;
    let host = format!("svc.apps.test:{}", s.proxy.addr.port());
    let r = s
        .proxy
        .get(&host, "/")
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.expect("echo");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the token stays at the proxy"
    );
    let listed: Value = s
        .proxy
        .api(reqwest::Method::GET, "/api/v1/service-tokens?org_id=acme")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        !listed.to_string().contains(&token),
        "listing never shows the token"
    );
    let revoke = s
        .proxy
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/service-tokens/{}", v["id"].as_str().expect("id")),
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 204);
    s.proxy.running().routes_applied().await;
    let r = s
        .proxy
        .get(&host, "/")
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn anonymous_callers_get_the_same_answers_whether_a_route_exists_or_not() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("real", up.addr, "acme", "dev", json!({})).await;
    let port = s.proxy.addr.port();
    let (real, none) = (
        format!("real.apps.test:{port}"),
        format!("none.apps.test:{port}"),
    );
    let answer =
        |host: &str, method: reqwest::Method, path: &str, nav: bool, bearer: Option<&str>| {
            let mut rb = s.proxy.req(method, host, path);
            if nav {
                rb = rb.header("accept", "text/html");
            }
            if let Some(b) = bearer {
                rb = rb.bearer_auth(b);
            }
            async move {
                let r = rb.send().await.expect("send");
                let status = r.status().as_u16();
                assert!(
                    r.headers().get("set-cookie").is_none(),
                    "no cookie names a route"
                );
                let location = r.headers().get("location").map(|l| {
                    l.to_str()
                        .expect("ascii")
                        .replace("real", "X")
                        .replace("none", "X")
                });
                let body = r.text().await.expect("text");
                // Correlation ids differ per request; compare the rest.
                let body = body
                    .split("orrelation")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                (status, location, body)
            }
        };
    use reqwest::Method;
    for (method, path, nav, bearer) in [
        (Method::GET, "/", false, None),
        (Method::GET, "/page", true, None),
        (Method::GET, "/", false, Some("not-a-token")),
        (Method::GET, "/.platform-proxy/launch?code=x", true, None),
        (Method::GET, "/.platform-proxy/logout", true, None),
        (Method::POST, "/.platform-proxy/logout", false, None),
        (Method::GET, "/.platform-proxy/other", false, None),
    ] {
        let a = answer(&real, method.clone(), path, nav, bearer).await;
        let b = answer(&none, method.clone(), path, nav, bearer).await;
        assert_eq!(a, b, "{method} {path} nav={nav} bearer={bearer:?}");
    }
    assert_eq!(up.connections(), 0);
    s.stop().await;
}
