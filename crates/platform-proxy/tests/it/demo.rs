//! `platform-proxy demo` end to end: signing in through the launch code,
//! then the demo page, its WebSocket echo and SSE clock through both the
//! host route and the path route, and the same in headless Chromium, which
//! is sent through the dev platform's launch page by the proxy itself.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use platform_proxy::demo::{self, Demo, DemoArgs};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::browser;

async fn start() -> Demo {
    demo::start(DemoArgs {
        port: 0,
        data_dir: None,
    })
    .await
    .expect("demo starts")
}

/// `http://h:port/path` → (`h`, `/path`).
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (auth, path) = rest.split_once('/').expect("path");
    (auth.to_owned(), format!("/{path}"))
}

/// Signs in to the route at `url` the way a platform does: mints a
/// browser session with the demo user's token, redeems the launch code,
/// and returns the session cookie (`name=value`).
async fn sign_in(demo: &Demo, client: &reqwest::Client, url: &str) -> String {
    let addr = demo.running.http_addrs[0];
    let (auth, path) = split(url);
    // Without a session a script gets 401, a browser the platform's login.
    let anon = client
        .get(format!("http://{addr}{path}"))
        .header("host", &auth)
        .send()
        .await
        .expect("anonymous");
    assert_eq!(anon.status(), 401, "{url}");
    let nav = client
        .get(format!("http://{addr}{path}"))
        .header("host", &auth)
        .header("accept", "text/html")
        .send()
        .await
        .expect("navigation");
    assert_eq!(nav.status(), 302);
    let login = nav.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        login.starts_with(&format!("{}/launch?return_to=", demo.platform.issuer())),
        "{login}"
    );

    let routes: serde_json::Value = client
        .get(format!("http://{addr}/api/v1/routes"))
        .header("host", "api.localhost")
        .bearer_auth(&demo.user_token)
        .send()
        .await
        .expect("routes")
        .json()
        .await
        .expect("json");
    let route = routes["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| {
            r["public_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&path) && u.contains(&auth))
        })
        .unwrap_or_else(|| panic!("route for {url} in {routes}"));
    let minted: serde_json::Value = client
        .post(format!(
            "http://{addr}/api/v1/routes/{}/browser-session",
            route["id"].as_str().expect("id")
        ))
        .header("host", "api.localhost")
        .bearer_auth(&demo.user_token)
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let (open_auth, open_path) = split(minted["open_url"].as_str().expect("open_url"));
    assert_eq!(open_auth, auth);
    let launched = client
        .get(format!("http://{addr}{open_path}"))
        .header("host", &auth)
        .send()
        .await
        .expect("launch");
    assert_eq!(launched.status(), 303);
    assert_eq!(
        launched.headers()["location"],
        path.as_str(),
        "lands on the entry"
    );
    let cookie = launched.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    cookie.split(';').next().expect("pair").to_owned()
}

async fn check_route(demo: &Demo, url: &str) {
    let addr = demo.running.http_addrs[0];
    let (auth, path) = split(url);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = sign_in(demo, &client, url).await;
    let page = client
        .get(format!("http://{addr}{path}"))
        .header("host", &auth)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200, "{url}");
    assert!(page
        .text()
        .await
        .expect("text")
        .contains("platform-proxy demo"));

    let redirect = client
        .get(format!("http://{addr}{path}redirect"))
        .header("host", &auth)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("redirect");
    assert_eq!(redirect.status(), 302);
    assert_eq!(
        redirect.headers()["location"],
        path.as_str(),
        "redirect stays under the route"
    );

    let mut sse = client
        .get(format!("http://{addr}{path}events"))
        .header("host", &auth)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("events")
        .bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(3), sse.next())
        .await
        .expect("an event within 3 s")
        .expect("stream item")
        .expect("bytes");
    assert!(String::from_utf8_lossy(&first).contains("data:"));

    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("ws://{auth}{path}ws")
        .into_client_request()
        .expect("ws request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("header value"));
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("ws handshake");
    ws.send(Message::text("hello demo")).await.expect("send");
    let echo = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("echo within 3 s")
        .expect("message")
        .expect("ok");
    assert_eq!(echo, Message::text("hello demo"));
}

#[tokio::test]
async fn demo_serves_page_websocket_and_sse_on_both_routes() {
    let demo = start().await;
    let (host_url, path_url) = (demo.host_route_url.clone(), demo.path_route_url.clone());
    check_route(&demo, &host_url).await;
    check_route(&demo, &path_url).await;
    demo.stop().await;
}

/// Headless Chromium opens the demo through the host route and the path
/// route and must see WebSocket echoes and SSE events arrive. Needs the
/// packages `scripts/install-test-deps.sh` installs.
#[tokio::test]
async fn chromium_sees_websocket_and_sse_through_both_routes() {
    let demo = start().await;
    let run = browser::run("demo.mjs", &[&demo.host_route_url, &demo.path_route_url]).await;
    let stdout = run.stdout;
    demo.stop().await;
    assert!(run.passed, "browser check failed");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("\"wsEchoes\"") && l.contains("\"launched\":true"))
            .count(),
        2,
        "one report per route, each signed in through the launch code"
    );
}
