//! The error contract on the wire: JSON envelope with a correlation id that
//! matches the header, an HTML page with the same facts for navigations, and
//! no input that can take the process down.

use serde_json::{json, Value};

use crate::support::upstream::echo;
use crate::support::*;

#[tokio::test]
async fn api_clients_get_the_json_envelope_with_matching_correlation_id() {
    let p = TestProxy::start().await;
    // An authenticated caller (here the operator) learns that no route is
    // there; an anonymous one could not tell (see access.rs).
    let r = p
        .get("apps.test", "/w/none/web/")
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    let cid = r.headers()["x-correlation-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "route_not_found");
    assert_eq!(v["error"]["correlation_id"], cid.as_str());
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    p.stop().await;
}

#[tokio::test]
async fn browser_navigations_get_an_html_page_with_the_same_facts() {
    let p = TestProxy::start().await;
    let r = p
        .get("apps.test", "/w/none/web/")
        .bearer_auth(TOKEN)
        .header("accept", "text/html,application/xhtml+xml")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let cid = r.headers()["x-correlation-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let html = r.text().await.expect("text");
    assert!(
        html.contains("route_not_found") && html.contains(&cid),
        "{html}"
    );
    p.stop().await;
}

/// Either sign of a navigation alone makes the error a page, over HTTP/1.1
/// where both fields pass to the upstream unmapped (`headers/passed.rs`)
/// and over HTTP/2 where they are in the map; neither makes it JSON.
#[tokio::test]
async fn either_sign_of_a_navigation_alone_gets_the_html_page() {
    let p = TestProxy::start().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    for (name, value, html) in [
        ("accept", "text/html,application/xhtml+xml;q=0.9", true),
        ("sec-fetch-mode", "navigate", true),
        ("accept", "application/json", false),
        ("sec-fetch-mode", "cors", false),
    ] {
        for client in [None, Some(&h2)] {
            let rb = match client {
                None => p.get("apps.test", "/w/none/web/"),
                Some(c) => c
                    .get(format!("http://{}/w/none/web/", p.addr))
                    .header("host", "apps.test"),
            };
            let r = rb
                .bearer_auth(TOKEN)
                .header(name, value)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 404);
            assert_eq!(r.version() == reqwest::Version::HTTP_2, client.is_some());
            let ctype = &r.headers()["content-type"];
            let want = if html {
                "text/html; charset=utf-8"
            } else {
                "application/json"
            };
            assert_eq!(ctype, want, "{name}: {value} over {:?}", r.version());
        }
    }
    p.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_distinct_correlation_id() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("demo", up.addr, json!({})).await;
    let a = p.get("demo.apps.test", "/").send().await.expect("send");
    let b = p.get("demo.apps.test", "/").send().await.expect("send");
    let (a, b) = (
        &a.headers()["x-correlation-id"],
        &b.headers()["x-correlation-id"],
    );
    assert_ne!(a, b);
    p.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_process_keeps_serving() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("demo", up.addr, json!({})).await;
    let hostile = [
        "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: demo.apps.test:99999\r\nConnection: close\r\n\r\n",
        "GET x HTTP/1.1\r\nHost: demo.apps.test\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: demo.apps.test\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello",
        "CONNECT demo.apps.test:443 HTTP/1.1\r\nHost: demo.apps.test\r\nConnection: close\r\n\r\n",
        "\x16\x03\x01\x00\x05hello",
    ];
    for req in hostile {
        let (status, _, _) = raw(p.addr, req).await;
        assert!(status == 400 || status == 0, "{req:?} gave {status}");
    }
    let r = p.get("demo.apps.test", "/").send().await.expect("send");
    assert_eq!(r.status(), 200, "still serving");
    p.stop().await;
}
