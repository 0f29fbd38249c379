//! `platform-proxy demo` end to end: the demo page, its WebSocket echo and
//! SSE clock through both the host route and the path route, and the same
//! page in headless Chromium.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use platform_proxy::demo::{self, Demo, DemoArgs};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

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

async fn check_route(demo: &Demo, url: &str) {
    let addr = demo.running.http_addrs[0];
    let (auth, path) = split(url);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(format!("http://{addr}{path}"))
        .header("host", &auth)
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
    let req = format!("ws://{auth}{path}ws")
        .into_client_request()
        .expect("ws request");
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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/browser/demo.mjs");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists()
            && root
                .join("tests/browser/node_modules/playwright-core")
                .exists(),
        "headless Chromium and playwright-core are needed: run scripts/install-test-deps.sh"
    );
    let demo = start().await;
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&demo.host_route_url)
        .arg(&demo.path_route_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("browser run finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    demo.stop().await;
    assert!(out.status.success(), "browser check failed");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("\"wsEchoes\""))
            .count(),
        2,
        "one report per route"
    );
}
