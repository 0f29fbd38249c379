//! HTTP/2 on the plain listener (h2c, prior knowledge): many streams on
//! one connection, large uploads and downloads, a stream its client gives
//! up on, and the drain at shutdown. The server is the proxy's own
//! (`server/h2.rs` driving `pp-h2`): a connection's streams run in its
//! own task and each turn's output leaves in one write; these tests hold
//! it to what a client (reqwest, on hyper and `h2`) sees.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Version;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::support::streams::patterned;
use crate::support::{upstream, TestProxy};

const FIVE_S: Duration = Duration::from_secs(5);

#[tokio::test]
async fn h2c_prior_knowledge_is_proxied_over_http2() {
    let up = upstream::echo().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("x", up.addr, json!({})).await;
    let client = h2c_client("x.apps.test", proxy.addr);
    let port = proxy.addr.port();
    let resp = client
        .get(format!("http://x.apps.test:{port}/h2c?q=1"))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("echo json");
    assert_eq!(v["target"], "/h2c?q=1");
    assert_eq!(v["headers"]["x-forwarded-proto"], "http");
    // HTTP/2 has no Host field: the upstream's Host and X-Forwarded-Host
    // are both made from `:authority`.
    let authority = format!("x.apps.test:{port}");
    assert_eq!(v["headers"]["host"], authority.as_str());
    assert_eq!(v["headers"]["x-forwarded-host"], authority.as_str());
}

/// The header steps run on what one pass over the head found, over
/// HTTP/2 as over HTTP/1.1 (`forwarding.rs` has the HTTP/1.1 twin): each
/// field sent alone is still dropped or replaced.
#[tokio::test]
async fn each_spoofed_field_alone_is_dropped_over_http2() {
    let up = upstream::echo().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("x", up.addr, json!({})).await;
    let client = h2c_client("x.apps.test", proxy.addr);
    let port = proxy.addr.port();
    for (name, value) in [
        ("forwarded", "for=6.6.6.6"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-user", "admin"),
        ("x-platform-proxy-assertion", "forged"),
        ("authorization", "Bearer forged"),
        ("x-correlation-id", "forged"),
        ("te", "trailers"),
    ] {
        let resp = client
            .get(format!("http://x.apps.test:{port}/f"))
            .header(name, value)
            .send()
            .await
            .expect("h2c request");
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.status(), 200, "{name}");
        let v: Value = resp.json().await.expect("echo json");
        let seen = v["headers"][name].as_str().unwrap_or_default();
        assert!(!seen.contains(value), "{name} reached the upstream: {seen}");
    }
}

/// An upstream answering `/size/N` with [`patterned`]`(N)`, after
/// `delay`.
async fn sized_upstream(delay: Duration) -> upstream::Upstream {
    upstream::serve(
        move |req: http::Request<hyper::body::Incoming>| async move {
            let n: usize = req
                .uri()
                .path()
                .strip_prefix("/size/")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            tokio::time::sleep(delay).await;
            http::Response::new(upstream::full(patterned(n)))
        },
    )
    .await
}

/// A client speaking h2c (prior knowledge) to `proxy` for `host`; its
/// requests share one connection.
fn h2c_client(host: &str, proxy: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve(host, proxy)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// `GET /size/{n}` on `host` through the proxy at `port`, answered 200.
async fn get_sized(client: &reqwest::Client, host: &str, port: u16, n: usize) -> reqwest::Response {
    let resp = client
        .get(format!("http://{host}:{port}/size/{n}"))
        .send()
        .await
        .expect("h2 request");
    assert_eq!(resp.status(), 200);
    resp
}

fn assert_patterned(n: usize, body: &[u8]) {
    assert!(body == patterned(n), "{n} bytes asked, {} came", body.len());
}

/// The answers of many streams on one connection go out gathered, a
/// turn's frames in one write, large ones split by the client's windows
/// and frame size. Each stream must still get exactly its own bytes and
/// its own correlation id.
#[tokio::test]
async fn concurrent_http2_streams_on_one_connection_each_get_their_own_answer() {
    let up = sized_upstream(Duration::ZERO).await;
    let proxy = TestProxy::start().await;
    proxy.host_route("many", up.addr, json!({})).await;
    let client = h2c_client("many.apps.test", proxy.addr);
    let port = proxy.addr.port();
    let sizes = [
        0, 1, 300, 1024, 1500, 16_383, 16_384, 16_385, 70_000, 200_000,
    ];
    let mut calls = Vec::new();
    for i in 0..120 {
        let n = sizes[i % sizes.len()];
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let resp = get_sized(&client, "many.apps.test", port, n).await;
            assert_eq!(resp.version(), Version::HTTP_2);
            let cid = resp.headers()["x-correlation-id"]
                .to_str()
                .expect("text")
                .to_owned();
            assert_patterned(n, &resp.bytes().await.expect("body"));
            cid
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for c in calls {
        ids.insert(c.await.expect("stream task"));
    }
    assert_eq!(
        ids.len(),
        120,
        "a correlation id of its own on every answer"
    );
}

/// A connection's streams share its task (`server/h2.rs`): a large
/// download its client has stopped reading, held by flow control with
/// its upstream still sending, must not hold back the connection's other
/// streams, and must come through whole once it is read again.
#[tokio::test]
async fn a_stalled_http2_download_does_not_hold_back_its_connections_other_streams() {
    const BIG: usize = 16 * 1024 * 1024;
    let up = sized_upstream(Duration::ZERO).await;
    let proxy = TestProxy::start().await;
    proxy.host_route("big", up.addr, json!({})).await;
    let client = h2c_client("big.apps.test", proxy.addr);
    let port = proxy.addr.port();

    let mut big = get_sized(&client, "big.apps.test", port, BIG).await;
    let first = big.chunk().await.expect("body").expect("a first chunk");
    // Unread, the download stops at the stream's window; the small ones
    // on the same connection still come, each whole.
    for n in [0, 1024, 70_000] {
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            get_sized(&client, "big.apps.test", port, n),
        )
        .await
        .expect("a small answer beside the stalled download");
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_patterned(n, &resp.bytes().await.expect("body"));
    }
    let mut body = first.to_vec();
    while let Some(chunk) = big.chunk().await.expect("body") {
        body.extend_from_slice(&chunk);
    }
    assert_patterned(BIG, &body);
}

/// Uploads over HTTP/2 are read by streams in the connection's task, the
/// connection reading their DATA frames: several large ones at once on
/// one connection each reach the upstream whole.
#[tokio::test]
async fn concurrent_large_http2_uploads_each_reach_the_upstream_whole() {
    let up = upstream::echo().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("up", up.addr, json!({})).await;
    let client = h2c_client("up.apps.test", proxy.addr);
    let port = proxy.addr.port();
    let mut calls = Vec::new();
    for i in 1..=4usize {
        let client = client.clone();
        let n = i * 3 * 1024 * 1024 + i;
        calls.push(tokio::spawn(async move {
            let resp = client
                .post(format!("http://up.apps.test:{port}/upload/{i}"))
                .body(vec![b'u'; n])
                .send()
                .await
                .expect("h2 upload");
            assert_eq!(resp.version(), Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            let v: Value = resp.json().await.expect("echo json");
            assert_eq!(v["body_len"], n, "upload {i}");
        }));
    }
    for c in calls {
        c.await.expect("upload task");
    }
}

/// Stopping the proxy drains an HTTP/2 connection: answers still in
/// flight are written out before it closes, gathered or not.
#[tokio::test]
async fn stopping_the_proxy_lets_in_flight_http2_answers_out() {
    let up = sized_upstream(Duration::from_millis(400)).await;
    let proxy = TestProxy::start().await;
    proxy.host_route("drain", up.addr, json!({})).await;
    let client = h2c_client("drain.apps.test", proxy.addr);
    let port = proxy.addr.port();
    let mut calls = Vec::new();
    for n in [10, 1024, 40_000] {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let resp = get_sized(&client, "drain.apps.test", port, n).await;
            (n, resp.bytes().await.expect("body"))
        }));
    }
    // The requests reach the upstream, which holds them; then the stop.
    tokio::time::sleep(Duration::from_millis(150)).await;
    tokio::time::timeout(Duration::from_secs(10), proxy.stop())
        .await
        .expect("the drain ends");
    for c in calls {
        let (n, body) = c.await.expect("stream task");
        assert_patterned(n, &body);
    }
}

/// The streams of an HTTP/2 connection run in the connection's task
/// (`server/h2.rs`). A request its client gives up on, by resetting
/// the stream or by closing the whole connection, must still end there:
/// the upstream exchange it waits on is dropped (the upstream's connection
/// closes) long before the 60 s response timeout.
#[tokio::test]
async fn an_http2_request_its_client_gives_up_on_lets_its_upstream_exchange_go() {
    let (up, mut seen) = upstream::silent().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("gone", up, json!({})).await;
    let port = proxy.addr.port();

    // The stream reset (RST_STREAM), the connection kept.
    let client = h2c_client("gone.apps.test", proxy.addr);
    let call = tokio::spawn(async move {
        client
            .get(format!("http://gone.apps.test:{port}/slow"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
    });
    assert_eq!(
        upstream::next_seen(&mut seen, FIVE_S, "reset: request").await,
        upstream::Seen::Asked
    );
    assert!(call.await.expect("call").is_err(), "the client gave up");
    assert_eq!(
        upstream::next_seen(&mut seen, FIVE_S, "reset: exchange dropped").await,
        upstream::Seen::Closed
    );

    // The whole connection closed (`h2`'s client: its connection is a
    // future of the test's own, so ending it closes the socket).
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut send = send.ready().await.expect("ready");
    let req = http::Request::get(format!("http://gone.apps.test:{port}/slow"))
        .body(())
        .expect("request");
    let (answer, _) = send.send_request(req, true).expect("sent");
    assert_eq!(
        upstream::next_seen(&mut seen, FIVE_S, "close: request").await,
        upstream::Seen::Asked
    );
    conn.abort();
    let _ = conn.await;
    assert!(answer.await.is_err(), "no answer came");
    assert_eq!(
        upstream::next_seen(&mut seen, FIVE_S, "close: exchange dropped").await,
        upstream::Seen::Closed
    );
}

/// An HTTP/2 client gets an upstream answer's fields from a map, never as
/// the lines an HTTP/1.1 client is passed (`forwarding.rs` has the
/// HTTP/1.1 twin): every field arrives, the connection's fields do not,
/// and the upstream's `Date` and the proxy's correlation id come once.
#[tokio::test]
async fn an_answer_over_http2_carries_the_upstreams_fields() {
    let up = upstream::raw_answers(crate::forwarding::app_answer).await;
    let proxy = TestProxy::start().await;
    proxy.host_route("raw", up, json!({})).await;
    let client = h2c_client("raw.apps.test", proxy.addr);
    let port = proxy.addr.port();
    for path in ["/x", "/cid"] {
        let resp = client
            .get(format!("http://raw.apps.test:{port}{path}"))
            .send()
            .await
            .expect("h2c request");
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        let all = |name: &str| -> Vec<&str> {
            h.get_all(name)
                .iter()
                .map(|v| v.to_str().expect("text"))
                .collect()
        };
        assert_eq!(all("date"), ["Mon, 07 Dec 2026 07:00:00 GMT"], "{h:?}");
        assert_eq!(all("x-mixed-case"), ["One"], "{h:?}");
        assert_eq!(all("x-repeat"), ["a", "b"], "{h:?}");
        assert_eq!(all("server"), ["app"], "{h:?}");
        assert!(all("keep-alive").is_empty(), "{h:?}");
        let ids = all("x-correlation-id");
        assert_eq!(ids.len(), 1, "{h:?}");
        assert_eq!(ids[0].len(), 32, "{h:?}");
        assert_eq!(resp.bytes().await.expect("body").as_ref(), b"ok");
    }
}
