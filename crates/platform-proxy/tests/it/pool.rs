//! The upstream connection pool: what is reused, what never is, and how a
//! connection the upstream closed while it rested costs the next request
//! nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::upstream::{full, serve};
use crate::support::*;

/// A raw keep-alive upstream: answers each request on a connection with
/// `ok`, then closes the connection after `linger` of silence, as servers
/// with a short keep-alive timeout do. Counts connections accepted and
/// connections it saw closed by the other side.
struct Lingering {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed_by_peer: Arc<AtomicUsize>,
}

async fn lingering(linger: Duration) -> Lingering {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed_by_peer = Arc::new(AtomicUsize::new(0));
    let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed_by_peer));
    tokio::spawn(async move {
        // Bounded: the tests here open a handful of connections.
        for _ in 0..64 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    match tokio::time::timeout(linger, s.read(&mut buf)).await {
                        // Silence: the server's keep-alive timeout.
                        Err(_) => return,
                        Ok(Ok(0) | Err(_)) => {
                            c.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(Ok(n)) => {
                            seen.extend_from_slice(&buf[..n]);
                            while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                                seen.drain(..end + 4);
                                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                                if s.write_all(answer).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    Lingering {
        addr,
        accepted,
        closed_by_peer,
    }
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_costs_the_next_request_nothing() {
    let p = TestProxy::start().await;
    let up = lingering(Duration::from_millis(100)).await;
    p.host_route("linger", up.addr, json!({})).await;
    for round in 0..3 {
        let r = p.get("linger.apps.test", "/").send().await.expect("send");
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(r.text().await.expect("body"), "ok");
        // Long enough for the upstream to close the pooled connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
    p.stop().await;
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_pool_timeout() {
    let p = TestProxy::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\npool_idle_timeout_secs = 1\n",
    )
    .await;
    // The upstream would keep the connection for a minute.
    let up = lingering(Duration::from_secs(60)).await;
    p.host_route("reap", up.addr, json!({})).await;
    let r = p.get("reap.apps.test", "/").send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(up.closed_by_peer.load(Ordering::SeqCst), 0);
    let closed = Arc::clone(&up.closed_by_peer);
    eventually(Duration::from_secs(5), || {
        let closed = Arc::clone(&closed);
        async move { closed.load(Ordering::SeqCst) == 1 }
    })
    .await;
    // And the route still works, on a fresh connection.
    let r = p.get("reap.apps.test", "/").send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    p.stop().await;
}

#[tokio::test]
async fn a_response_with_connection_close_is_never_reused() {
    let p = TestProxy::start().await;
    let up = serve(|_req| async {
        Response::builder()
            .header("connection", "close")
            .body(full("bye"))
            .expect("response")
    })
    .await;
    p.host_route("closing", up.addr, json!({})).await;
    for _ in 0..5 {
        let r = p.get("closing.apps.test", "/").send().await.expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "bye");
    }
    assert_eq!(up.connections(), 5);
    p.stop().await;
}

#[tokio::test]
async fn bodiless_responses_give_their_connection_back() {
    let p = TestProxy::start().await;
    let up = serve(|req: http::Request<hyper::body::Incoming>| async move {
        let status = if req.uri().path() == "/nothing" {
            204
        } else {
            200
        };
        Response::builder()
            .status(status)
            .header("content-length", if status == 204 { "0" } else { "5" })
            .body(full(if status == 204 { "" } else { "hello" }))
            .expect("response")
    })
    .await;
    p.host_route("bodiless", up.addr, json!({})).await;
    for i in 0..12 {
        let r = match i % 3 {
            0 => p.get("bodiless.apps.test", "/nothing").send().await,
            1 => {
                p.req(reqwest::Method::HEAD, "bodiless.apps.test", "/")
                    .send()
                    .await
            }
            _ => p.get("bodiless.apps.test", "/").send().await,
        }
        .expect("send");
        assert!(r.status().is_success(), "{i}: {}", r.status());
        r.bytes().await.expect("body");
    }
    assert!(
        up.connections() <= 2,
        "12 sequential requests used {} upstream connections",
        up.connections()
    );
    p.stop().await;
}

#[tokio::test]
async fn a_body_the_client_abandons_takes_its_connection_with_it() {
    let p = TestProxy::start().await;
    let up = serve(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/small" {
            return Response::new(full("small"));
        }
        // 64 MiB, slowly: the client gives up long before the end.
        let chunks = futures_util::stream::unfold(0u32, |n| async move {
            if n == 1024 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            let frame = hyper::body::Frame::data(Bytes::from(vec![b'x'; 64 * 1024]));
            Some((Ok::<_, std::io::Error>(frame), n + 1))
        });
        Response::new(StreamBody::new(chunks).boxed())
    })
    .await;
    p.host_route("abandon", up.addr, json!({})).await;
    let mut r = p
        .get("abandon.apps.test", "/big")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.expect("chunk").expect("some bytes");
    assert!(!first.is_empty());
    drop(r);
    // The abandoned exchange cannot be finished on its connection; the
    // next request must get its own answer, whole, not the rest of it.
    for _ in 0..3 {
        let r = p
            .get("abandon.apps.test", "/small")
            .send()
            .await
            .expect("send");
        assert_eq!(r.text().await.expect("body"), "small");
    }
    assert!(up.connections() >= 2, "{}", up.connections());
    p.stop().await;
}

#[tokio::test]
async fn concurrent_requests_each_get_a_connection_and_then_share_them() {
    let p = Arc::new(TestProxy::start().await);
    let up = serve(|_req| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Response::new(full("done"))
    })
    .await;
    p.host_route("burst", up.addr, json!({})).await;
    for _ in 0..2 {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let p = Arc::clone(&p);
            tasks.push(tokio::spawn(async move {
                let r = p.get("burst.apps.test", "/").send().await.expect("send");
                r.text().await.expect("body")
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), "done");
        }
    }
    // Both bursts fit on the connections the first one opened (reqwest
    // may open a few more of its own, so the bound is loose).
    assert!(
        up.connections() <= 20,
        "two bursts of 16 used {} upstream connections",
        up.connections()
    );
    match Arc::try_unwrap(p) {
        Ok(p) => p.stop().await,
        Err(_) => panic!("proxy still shared"),
    }
}

/// An upstream that answers as soon as it has read the request head, then
/// reads and discards the body (nginx's `return 200` does this). Counts
/// the body bytes it discarded.
async fn answers_before_the_body() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let discarded = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&discarded);
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let d = Arc::clone(&d);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending = Vec::new();
                loop {
                    // Read a head.
                    let end = loop {
                        if let Some(e) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break e + 4;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                    let mut left: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    pending.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    // Then discard the body.
                    let have = pending.len().min(left);
                    pending.drain(..have);
                    left -= have;
                    d.fetch_add(have, Ordering::SeqCst);
                    while left > 0 {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                let used = n.min(left);
                                left -= used;
                                d.fetch_add(used, Ordering::SeqCst);
                                pending.extend_from_slice(&buf[used..n]);
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, discarded)
}

#[tokio::test]
async fn an_upload_answered_before_it_is_read_still_goes_through_whole() {
    let p = TestProxy::start().await;
    let (addr, discarded) = answers_before_the_body().await;
    p.host_route("early", addr, json!({})).await;
    const LEN: usize = 16 * 1024 * 1024;
    for round in 1..=2 {
        let r = p
            .req(reqwest::Method::PUT, "early.apps.test", "/sink")
            .body(vec![b'u'; LEN])
            .send()
            .await
            .expect("the upload is not cut off");
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(r.text().await.expect("body"), "ok\n");
        let d = Arc::clone(&discarded);
        eventually(Duration::from_secs(10), || {
            let d = Arc::clone(&d);
            async move { d.load(Ordering::SeqCst) == round * LEN }
        })
        .await;
    }
    // The connection went back to the pool once the upload was sent.
    let r = p.get("early.apps.test", "/").send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), "ok\n");
    p.stop().await;
}

/// A raw upstream that answers the first request on each connection and,
/// on reading a second one, closes the connection without answering: the
/// race of a keep-alive timeout that fires as the proxy reuses the socket.
async fn closes_on_the_second_request() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&accepted);
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                let mut answered = false;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        if answered {
                            return;
                        }
                        seen.drain(..end + 4);
                        answered = true;
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_connection_closed_as_it_is_reused_resends_only_what_is_safe_to() {
    let p = TestProxy::start().await;
    let (addr, accepted) = closes_on_the_second_request().await;
    p.host_route("race", addr, json!({})).await;
    let r = p.get("race.apps.test", "/").send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), "ok");
    // The pooled connection is closed under this GET: it goes again, on
    // a fresh connection, and the client never sees the race.
    let r = p.get("race.apps.test", "/").send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A POST may have been acted on: it is not sent twice.
    let r = p
        .req(reqwest::Method::POST, "race.apps.test", "/")
        .body("once")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "no second connection for the POST"
    );
    p.stop().await;
}
