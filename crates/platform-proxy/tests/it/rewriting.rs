//! Response header rewriting against real upstreams: Location in every
//! form, Set-Cookie Path and Domain, and adapter-driven trailing-slash
//! redirects. The pure rules have table tests in pp-model; these check the
//! wiring on the wire.

use http::Response;
use serde_json::json;

use crate::support::upstream::{full, serve, Upstream};
use crate::support::*;

/// An upstream that answers `/r?to=X` with `302 Location: X` and `/c?v=X`
/// with `Set-Cookie: X`, and echoes its own address for absolute URLs.
async fn redirector() -> Upstream {
    serve(|req: http::Request<hyper::body::Incoming>| async move {
        let q = req.uri().query().unwrap_or_default().to_owned();
        let value = q
            .split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let value = percent_decode(&value);
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let value = value.replace("{host}", &host);
        let mut b = Response::builder();
        if req.uri().path().ends_with("/r") {
            b = b.status(302).header("location", value);
        } else {
            b = b
                .header("set-cookie", value)
                .header("set-cookie", "plain=1");
        }
        b.body(full("x")).expect("response")
    })
    .await
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn location_is_mapped_onto_the_public_prefix_and_origin() {
    let p = TestProxy::start().await;
    let up = redirector().await;
    p.path_route("a", up.addr, json!({})).await;
    p.path_route("j", up.addr, json!({"adapter": "jupyterlab"}))
        .await;
    let upstream = up.addr.to_string();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "a",
            "/login?next=/x".into(),
            "/w/a/web/login?next=/x".into(),
        ),
        ("a", "/w/a/web/lab".into(), "/w/a/web/lab".into()),
        (
            "a",
            format!("http://{upstream}/tree"),
            "http://apps.test/w/a/web/tree".into(),
        ),
        (
            "a",
            "https://idp.example.org/auth".into(),
            "https://idp.example.org/auth".into(),
        ),
        ("a", "lab/tree".into(), "lab/tree".into()),
        ("j", "/w/j/web/lab".into(), "/w/j/web/lab".into()),
        (
            "j",
            "http://{host}/w/j/web/lab".into(),
            "http://apps.test/w/j/web/lab".into(),
        ),
    ];
    for (owner, location, want) in cases {
        let path = format!("/w/{owner}/web/r?to={}", enc(&location));
        let r = p.get("apps.test", &path).send().await.expect("send");
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()["location"],
            want.as_str(),
            "{owner}: {location}"
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn host_route_fronting_a_base_path_app_drops_the_runtime_prefix() {
    let p = TestProxy::start().await;
    let up = redirector().await;
    p.host_route("jup", up.addr, json!({"adapter": "jupyterlab"}))
        .await;
    let r = p
        .get("jup.apps.test", &format!("/r?to={}", enc("/w/jup/web/lab")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["location"], "/lab");
    let r = p
        .get(
            "jup.apps.test",
            &format!("/c?v={}", enc("_xsrf=t; Path=/w/jup/web/")),
        )
        .send()
        .await
        .expect("send");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["_xsrf=t; Path=/", "plain=1"]);
    p.stop().await;
}

#[tokio::test]
async fn set_cookie_path_is_scoped_and_domain_dropped() {
    let p = TestProxy::start().await;
    let up = redirector().await;
    p.path_route("a", up.addr, json!({})).await;
    let r = p
        .get(
            "apps.test",
            &format!(
                "/w/a/web/c?v={}",
                enc("sid=1; Path=/; Domain=.apps.test; HttpOnly")
            ),
        )
        .send()
        .await
        .expect("send");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["sid=1; Path=/w/a/web/; HttpOnly", "plain=1"]);
    p.stop().await;
}

#[tokio::test]
async fn adapter_requiring_a_trailing_slash_gets_a_redirect_not_the_upstream() {
    let p = TestProxy::start().await;
    let up = redirector().await;
    p.create_route(json!({
        "owner_type": "platform_service", "owner_id": "grafana", "route_mode": "path_prefix",
        "upstream": {"targets": [up.addr.to_string()]}, "adapter": "grafana",
    }))
    .await;
    p.path_route("plain", up.addr, json!({})).await;
    let r = p
        .get("apps.test", "/p/grafana?orgId=1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/p/grafana/?orgId=1");
    assert_eq!(up.connections(), 0, "answered by the proxy");
    // Without the adapter flag the bare prefix is forwarded as the root.
    let r = p
        .get("apps.test", "/w/plain/web")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    p.stop().await;
}
