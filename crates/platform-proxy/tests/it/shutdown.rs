//! Graceful shutdown of the real binary on SIGTERM: the listener closes at
//! once, in-flight requests finish, open WebSockets get the grace period and
//! then a Close frame, and the process exits 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::process::ChildProxy;
use crate::support::upstream;

const GRACE: Duration = Duration::from_secs(2);
const SERVER: &str = "shutdown_grace_secs = 2";
/// Logged once the accept loops have returned and the listeners are gone.
const DRAINING: &str = "no longer accepting";

/// No new connection gets an answer: it is refused, or accepted by nobody.
async fn assert_not_served(addr: SocketAddr) {
    let Ok(Ok(mut s)) = timeout(Duration::from_secs(2), TcpStream::connect(addr)).await else {
        return;
    };
    let _ = s
        .write_all(b"GET /fast HTTP/1.1\r\nHost: slow.apps.test\r\nConnection: close\r\n\r\n")
        .await;
    let mut got = Vec::new();
    let _ = timeout(Duration::from_secs(2), s.read_to_end(&mut got)).await;
    assert!(
        got.is_empty(),
        "a connection made after SIGTERM was served: {}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_closes_the_listener_and_exits_0() {
    let started = Arc::new(Notify::new());
    let up = {
        let started = Arc::clone(&started);
        upstream::serve(move |req| {
            let started = Arc::clone(&started);
            async move {
                if req.uri().path() == "/slow" {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Response::new(upstream::full("slow done"));
                }
                Response::new(upstream::full("fast"))
            }
        })
        .await
    };
    let mut proxy = ChildProxy::serve(SERVER).await;
    proxy.host_route("slow", up.addr).await;

    let in_flight = tokio::spawn({
        let client = proxy.client.clone();
        let url = format!("http://{}/slow", proxy.addr);
        async move {
            let resp = client
                .get(url)
                .header("host", "slow.apps.test")
                .send()
                .await
                .expect("in-flight request");
            let status = resp.status();
            (status, resp.text().await.expect("in-flight body"))
        }
    });
    timeout(Duration::from_secs(5), started.notified())
        .await
        .expect("the slow request reached the upstream");

    proxy.sigterm();
    let signalled = Instant::now();
    proxy.wait_log(DRAINING, Duration::from_secs(5)).await;
    assert_not_served(proxy.addr).await;

    let (status, body) = timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("in-flight request finished in time")
        .expect("in-flight task");
    assert_eq!(status, 200);
    assert_eq!(body, "slow done");

    let exit = proxy.wait_exit(GRACE + Duration::from_secs(3)).await;
    assert!(exit.success(), "exit status {exit}");
    assert!(
        signalled.elapsed() < GRACE + Duration::from_secs(3),
        "exit took {:?}",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn sigterm_keeps_websockets_open_for_the_grace_then_closes_them_with_1001() {
    let ws_up = upstream::ws_echo().await;
    let mut proxy = ChildProxy::serve(SERVER).await;
    proxy.host_route("x", ws_up).await;

    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut ws, resp) = timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async("ws://x.apps.test/", tcp),
    )
    .await
    .expect("handshake in time")
    .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    let mut echo = async |text: &str| {
        ws.send(Message::text(text)).await.expect("send");
        match timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), text),
            other => panic!("expected the echo of {text:?}, got {other:?}"),
        }
    };
    echo("before").await;

    proxy.sigterm();
    let signalled = Instant::now();
    proxy.wait_log(DRAINING, Duration::from_secs(5)).await;
    echo("during grace").await;
    assert!(
        signalled.elapsed() < GRACE,
        "the echo came only after the grace"
    );

    let frame = match timeout(GRACE + Duration::from_secs(4), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => frame,
        other => panic!("expected a Close frame, got {other:?}"),
    };
    let closed_after = signalled.elapsed();
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason.as_str(), "proxy shutting down");
    assert!(
        closed_after >= GRACE - Duration::from_millis(300),
        "closed before the grace was over: {closed_after:?}"
    );
    assert!(
        closed_after < GRACE + Duration::from_secs(2),
        "closed late: {closed_after:?}"
    );

    let exit = proxy.wait_exit(Duration::from_secs(5)).await;
    assert!(exit.success(), "exit status {exit}");
}
