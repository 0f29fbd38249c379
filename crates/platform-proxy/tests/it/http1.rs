//! The proxy's own HTTP/1.1 server, byte for byte: keep-alive and
//! pipelining, HTTP/1.0 clients, HEAD, `Expect: 100-continue`, the head
//! limits, and the framing it refuses so that no request hides in
//! another's body.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::upstream::echo;
use crate::support::*;

/// Everything the proxy sends on a connection after `request`, until it
/// closes the connection or goes quiet for `quiet`.
async fn exchange(p: &TestProxy, request: &[u8], quiet: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout(quiet, s.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

const QUIET: Duration = Duration::from_millis(700);

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("e", up.addr, json!({})).await;
    let req = "GET /one HTTP/1.1\r\nHost: e.apps.test\r\n\r\n\
               \r\n\
               GET /two HTTP/1.1\r\nHost: e.apps.test\r\n\r\n\
               GET /three HTTP/1.1\r\nHost: e.apps.test\r\nConnection: close\r\n\r\n";
    let (text, closed) = exchange(&p, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(closed, "closed after the request that asked for it");
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{text}");
    let at = |t: &str| text.find(&format!("\"target\":\"{t}\"")).expect(t);
    assert!(
        at("/one") < at("/two") && at("/two") < at("/three"),
        "{text}"
    );
    let last = text.rsplit("HTTP/1.1 200").next().expect("last answer");
    assert!(last.contains("connection: close"), "{last}");
    p.stop().await;
}

#[tokio::test]
async fn ambiguous_framing_is_refused_before_anything_reaches_the_upstream() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("f", up.addr, json!({})).await;
    let heads = [
        "POST / HTTP/1.1\r\nHost: f.apps.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: f.apps.test\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: f.apps.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: f.apps.test\r\nContent-Length: 4x\r\n\r\nbody",
        "POST / HTTP/1.1\r\nHost: f.apps.test\r\nContent-Length: 3, 4\r\n\r\nbody",
        "GET / HTTP/1.1\r\nHost: f.apps.test\r\nBad Name: 1\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: f.apps.test\r\n\r\n",
    ];
    for head in heads {
        let (text, closed) = exchange(&p, head.as_bytes(), Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 400 "), "{head:?}: {text}");
        assert!(closed, "{head:?}: the connection is closed");
    }
    assert_eq!(up.connections(), 0, "none of them reached the upstream");
    // A malformed chunk in a body already forwarded ends that request and
    // the connection; the answer never carries on into the next request.
    let req =
        "POST / HTTP/1.1\r\nHost: f.apps.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n\
               GET /after HTTP/1.1\r\nHost: f.apps.test\r\n\r\n";
    let (text, closed) = exchange(&p, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(closed, "{text}");
    assert!(!text.contains("/after"), "{text}");
    p.stop().await;
}

#[tokio::test]
async fn an_unread_body_is_never_read_as_the_next_request() {
    let p = TestProxy::start().await;
    // No route at this host: the 404 is answered without the body.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x.apps.test\r\n\r\n";
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: nowhere.apps.test\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let (text, closed) = exchange(&p, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "one answer only: {text}"
    );
    assert!(closed, "{text}");
    p.stop().await;
}

#[tokio::test]
async fn http_1_0_clients_keep_the_connection_only_when_they_ask() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("old", up.addr, json!({})).await;
    let (text, closed) =
        exchange(&p, b"GET /a HTTP/1.0\r\nHost: old.apps.test\r\n\r\n", QUIET).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        closed,
        "an HTTP/1.0 client without keep-alive is answered, then closed"
    );
    let two = "GET /a HTTP/1.0\r\nHost: old.apps.test\r\nConnection: keep-alive\r\n\r\n\
               GET /b HTTP/1.0\r\nHost: old.apps.test\r\n\r\n";
    let (text, closed) = exchange(&p, two.as_bytes(), QUIET).await;
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    assert!(closed);
    p.stop().await;
}

#[tokio::test]
async fn head_answers_carry_their_length_but_no_body() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("h", up.addr, json!({})).await;
    let req = "HEAD /x HTTP/1.1\r\nHost: h.apps.test\r\n\r\n\
               GET /y HTTP/1.1\r\nHost: h.apps.test\r\nConnection: close\r\n\r\n";
    let (text, _) = exchange(&p, req.as_bytes(), Duration::from_secs(5)).await;
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    // The length the GET's answer would have (RFC 9110 §9.3.2).
    assert!(head.contains("content-length: "), "{head}");
    assert!(
        rest.starts_with("HTTP/1.1 200 OK"),
        "no body after HEAD's answer: {rest}"
    );
    p.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("c", up.addr, json!({})).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(
        b"PUT /c HTTP/1.1\r\nHost: c.apps.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("head");
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut interim))
        .await
        .expect("an interim answer in time")
        .expect("read");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.expect("body");
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut rest))
        .await
        .expect("the answer in time")
        .expect("read");
    assert!(rest.starts_with("HTTP/1.1 200 OK"), "{rest}");
    assert!(rest.contains("\"body_len\":5"), "{rest}");
    p.stop().await;
}

#[tokio::test]
async fn a_head_past_the_read_limit_gets_a_bare_431_and_the_proxy_keeps_serving() {
    // max_header_bytes 2048: heads up to 16 KiB are read and get the
    // envelope; past that the head is not parsed at all.
    let p =
        TestProxy::start_with("[server]\nlisten = [\"127.0.0.1:0\"]\nmax_header_bytes = 2048\n")
            .await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x.apps.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let (text, closed) = exchange(&p, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert!(
        !text.contains("headers_too_large"),
        "bare, not the envelope: {text}"
    );
    assert!(closed);
    let (text, _) = exchange(
        &p,
        b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n",
        QUIET,
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 "), "still serving: {text}");
    p.stop().await;
}

#[tokio::test]
async fn answers_the_proxy_makes_carry_a_date() {
    let p = TestProxy::start().await;
    let (text, _) = exchange(
        &p,
        b"GET / HTTP/1.1\r\nHost: nowhere.apps.test\r\nConnection: close\r\n\r\n",
        QUIET,
    )
    .await;
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let date = head
        .lines()
        .find_map(|l| l.strip_prefix("date: "))
        .expect("a date field");
    assert!(date.ends_with(" GMT"), "{date}");
    p.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_takes_its_pending_upstream_exchange_with_it() {
    let p = TestProxy::start().await;
    let (addr, mut seen) = crate::support::upstream::silent().await;
    p.host_route("slow", addr, json!({})).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(b"GET /wait HTTP/1.1\r\nHost: slow.apps.test\r\n\r\n")
        .await
        .expect("write");
    let asked = crate::support::upstream::next_seen(&mut seen, Duration::from_secs(3), "request");
    assert_eq!(asked.await, crate::support::upstream::Seen::Asked);
    drop(s);
    let gone = crate::support::upstream::next_seen(
        &mut seen,
        Duration::from_secs(3),
        "the upstream connection is closed once the client has gone",
    );
    assert_eq!(gone.await, crate::support::upstream::Seen::Closed);
    p.stop().await;
}

#[tokio::test]
async fn bytes_sent_right_behind_an_upgrade_request_reach_the_upstream() {
    let p = TestProxy::start().await;
    let up = crate::support::ws::raw_ws_upstream("").await;
    p.host_route("early", up.addr, json!({})).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    // The head and the first bytes of the new protocol in one write: the
    // server has read them with the head, and must relay them first.
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: early.apps.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nearly-bytes",
    )
    .await
    .expect("write");
    let (head, mut rest) = crate::support::ws::read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    while rest.len() < b"early-bytes".len() {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the echo in time")
            .expect("read");
        assert!(n > 0, "closed before the echo");
        rest.extend_from_slice(&buf[..n]);
    }
    assert_eq!(rest, b"early-bytes");
    // Closed first: an open tunnel would hold the stop for its grace.
    drop(s);
    p.stop().await;
}
