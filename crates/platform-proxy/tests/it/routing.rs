//! Host dispatch, host and path routes, base-URL strategies, reserved
//! paths, and path normalization: no encoding trick lets a request reach
//! outside the prefix of the route that matched its normalized path.

use serde_json::{json, Value};

use crate::support::upstream::echo;
use crate::support::*;

async fn seen(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "proxied");
    resp.json().await.expect("echo json")
}

#[tokio::test]
async fn host_and_path_routes_reach_their_upstream_with_mapped_paths() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("demo", up.addr, json!({})).await;
    p.path_route("a1", up.addr, json!({})).await;
    let v = seen(
        p.get("demo.apps.test", "/x/y?q=1")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(v["target"], "/x/y?q=1");
    let v = seen(
        p.get("apps.test", "/w/a1/web/x/y?q=1")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        v["target"], "/x/y?q=1",
        "generic adapter strips the public prefix"
    );
    let v = seen(p.get("apps.test", "/w/a1/web").send().await.expect("send")).await;
    assert_eq!(v["target"], "/");
    // Host names are case-insensitive and may carry the port.
    let v = seen(
        p.get("DEMO.Apps.Test:8080", "/")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(v["target"], "/");
    p.stop().await;
}

#[tokio::test]
async fn base_path_aware_apps_keep_the_runtime_prefix() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.path_route("j1", up.addr, json!({"adapter": "jupyterlab"}))
        .await;
    p.host_route("jup", up.addr, json!({"adapter": "jupyterlab"}))
        .await;
    let v = seen(
        p.get("apps.test", "/w/j1/web/lab?x")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(v["target"], "/w/j1/web/lab?x");
    // A host route in front of a base-path app: the app still runs under
    // /w/{owner}/{endpoint}/, the browser sees its own origin's root.
    let v = seen(p.get("jup.apps.test", "/lab").send().await.expect("send")).await;
    assert_eq!(v["target"], "/w/jup/web/lab");
    assert_eq!(v["headers"]["x-forwarded-prefix"], "/");
    p.stop().await;
}

#[tokio::test]
async fn platform_service_routes_live_under_p() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.create_route(json!({
        "owner_type": "platform_service", "owner_id": "grafana", "route_mode": "path_prefix",
        "upstream": {"targets": [up.addr.to_string()]}, "adapter": "grafana",
    }))
    .await;
    let v = seen(
        p.get("apps.test", "/p/grafana/d/abc")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        v["target"], "/p/grafana/d/abc",
        "grafana serves from its sub path natively"
    );
    p.stop().await;
}

#[tokio::test]
async fn hosts_are_dispatched_to_api_apps_or_refused() {
    let p = TestProxy::start().await;
    let r = p.get(API_HOST, "/healthz").send().await.expect("send");
    assert_eq!(r.status(), 200);
    let r = p.get("elsewhere.example", "/").send().await.expect("send");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "unknown_host");
    let r = p
        .get("nothing.apps.test", "/")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "route_not_found");
    // The API host never serves app content, and app hosts never serve the API.
    let r = p
        .get("apps.test", "/api/v1/routes")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    p.stop().await;
}

#[tokio::test]
async fn reserved_paths_never_reach_the_app() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("demo", up.addr, json!({})).await;
    // The proxy answers each itself: nothing there, a launch without a
    // code, a logout without a session.
    for (path, want) in [
        ("/.platform-proxy", 404),
        ("/.platform-proxy/anything", 404),
        ("/.platform-proxy/launch", 403),
        ("/x/../.platform-proxy/logout", 200),
    ] {
        let (status, _, _) = raw_get(p.addr, "demo.apps.test", path).await;
        assert_eq!(status, want, "{path}");
    }
    assert_eq!(up.connections(), 0);
    p.stop().await;
}

#[tokio::test]
async fn disabled_and_deleted_routes_stop_being_served() {
    let p = TestProxy::start().await;
    let up = echo().await;
    let r = p.host_route("demo", up.addr, json!({})).await;
    let id = r["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.get("demo.apps.test", "/")
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    let resp = p
        .api(reqwest::Method::PATCH, &format!("/api/v1/routes/{id}"))
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), 200);
    eventually(std::time::Duration::from_secs(2), || async {
        p.get("demo.apps.test", "/")
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send")
            .status()
            == 404
    })
    .await;
    p.api(reqwest::Method::PATCH, &format!("/api/v1/routes/{id}"))
        .json(&json!({"status": "active"}))
        .send()
        .await
        .expect("patch");
    eventually(std::time::Duration::from_secs(2), || async {
        p.get("demo.apps.test", "/")
            .send()
            .await
            .expect("send")
            .status()
            == 200
    })
    .await;
    let resp = p
        .api(reqwest::Method::DELETE, &format!("/api/v1/routes/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    eventually(std::time::Duration::from_secs(2), || async {
        p.get("demo.apps.test", "/")
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send")
            .status()
            == 404
    })
    .await;
    p.stop().await;
}

/// What a traversal attempt must come to.
enum Expect {
    /// Refused before matching.
    BadRequest,
    /// Served by the route `/w/{owner}/web/` with exactly this upstream target.
    Routed(&'static str, &'static str),
}

/// Two path routes, `a` and `b`, each with its own upstream; `b` is the
/// one an attacker coming through `a`'s prefix wants to reach.
async fn traversal(target: &str, expect: Expect) {
    let p = TestProxy::start().await;
    let up_a = echo().await;
    let up_b = echo().await;
    p.path_route("a", up_a.addr, json!({})).await;
    p.path_route("b", up_b.addr, json!({})).await;
    let (status, _, body) = raw_get(p.addr, APPS, target).await;
    match expect {
        Expect::BadRequest => {
            assert_eq!(status, 400, "{target}: {body}");
            assert_eq!(
                up_a.connections() + up_b.connections(),
                0,
                "{target} reached an upstream"
            );
        }
        Expect::Routed(owner, want) => {
            assert_eq!(status, 200, "{target}: {body}");
            let v: Value = serde_json::from_str(&body).expect("echo json");
            assert_eq!(
                v["headers"]["x-forwarded-prefix"],
                format!("/w/{owner}/web"),
                "{target}"
            );
            assert_eq!(v["target"], want, "{target}");
            let (hit, miss) = if owner == "a" {
                (&up_a, &up_b)
            } else {
                (&up_b, &up_a)
            };
            assert_eq!(hit.connections(), 1);
            assert_eq!(miss.connections(), 0);
        }
    }
    p.stop().await;
}

macro_rules! trick {
    ($name:ident, $target:expr, $expect:expr) => {
        #[tokio::test]
        async fn $name() {
            traversal($target, $expect).await;
        }
    };
}

// Dot segments are resolved before matching, like a browser would: the
// request is then matched (and later authorized) as the route it names,
// and the upstream sees a clean path.
trick!(
    dot_dot_resolves_before_matching,
    "/w/a/web/../../b/web/secret",
    Expect::Routed("b", "/secret")
);
trick!(
    encoded_dot_dot_resolves_like_plain,
    "/w/a/web/%2e%2e/%2e%2e/b/web/secret",
    Expect::Routed("b", "/secret")
);
trick!(
    mixed_case_and_half_encoded_dots,
    "/w/a/web/%2E./.%2e/b/web/s",
    Expect::Routed("b", "/s")
);
trick!(
    single_dots_vanish,
    "/w/a/./web/./x",
    Expect::Routed("a", "/x")
);
trick!(
    double_slashes_merge,
    "//w//a//web//x",
    Expect::Routed("a", "/x")
);
trick!(
    tomcat_dot_dot_semicolon,
    "/w/a/web/..;/..;/b/web/x",
    Expect::Routed("b", "/x")
);
trick!(
    encoded_unreserved_letters_match,
    "/w/%61/web/x",
    Expect::Routed("a", "/x")
);
trick!(
    double_encoding_stays_opaque,
    "/w/a/web/%252e%252e/%252e%252e/b",
    Expect::Routed("a", "/%252e%252e/%252e%252e/b")
);
trick!(
    encoded_slash_name_passes_inside_route,
    "/w/a/web/dir%2Ffile",
    Expect::Routed("a", "/dir%2Ffile")
);
// Refused outright.
trick!(
    climbing_above_root,
    "/w/a/web/../../../../etc/passwd",
    Expect::BadRequest
);
trick!(
    encoded_slash_hiding_dot_dot,
    "/w/a/web/..%2f..%2fb%2fweb%2fsecret",
    Expect::BadRequest
);
trick!(
    encoded_uppercase_slash_hiding_dot_dot,
    "/w/a/web/%2e%2e%2F%2e%2e%2Fb",
    Expect::BadRequest
);
trick!(
    encoded_backslash_hiding_dot_dot,
    "/w/a/web/..%5c..%5cb%5cweb",
    Expect::BadRequest
);
trick!(nul_byte, "/w/a/web/x%00.html", Expect::BadRequest);
trick!(malformed_escape, "/w/a/web/%zz", Expect::BadRequest);

#[tokio::test]
async fn raw_backslash_in_the_target_is_refused() {
    // Not a valid URI character: refused at parse time, before routing.
    traversal("/w/a/web/..\\..\\b\\web", Expect::BadRequest).await;
}

/// A route moved to another host is served there and no longer at the old
/// one once the follower has applied the write (it applies just the
/// changed route to the table), and the other routes stay.
#[tokio::test]
async fn a_moved_route_is_served_at_its_new_host_only_once_applied() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("stays", up.addr, json!({})).await;
    let r = p.host_route("before", up.addr, json!({})).await;
    let id = r["id"].as_str().expect("id").to_owned();
    let resp = p
        .api(reqwest::Method::PATCH, &format!("/api/v1/routes/{id}"))
        .json(&json!({"route_host": "after"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), 200);
    p.running().routes_applied().await;
    let status = |host: &'static str| {
        let req = p.get(host, "/").bearer_auth(TOKEN);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(
        status("after.apps.test").await,
        200,
        "served at the new host"
    );
    assert_eq!(
        status("before.apps.test").await,
        404,
        "gone from the old one"
    );
    assert_eq!(status("stays.apps.test").await, 200, "the others untouched");
    p.stop().await;
}
