use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2 as client;
use hyper_util::rt::TokioExecutor;

use super::*;

/// Every poll of an HTTP/2 connection, the graceful drain's included, is a
/// turn: the writes `Coalesce` holds go out on the next one. Its streams
/// run in the connection's own task (`server/streams.rs`).
#[tokio::test]
async fn each_poll_of_an_http2_connection_is_a_turn_the_drains_too() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (running, streams) = Running::new();
    let mut b = http2::Builder::new(streams);
    b.timer(TokioTimer::new());
    let turns = Turns::default();
    let shutdown = CancellationToken::new();
    let ran_in = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran_in);
    let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().expect("ids").push(tokio::task::id());
            Ok::<_, Infallible>(http::Response::new(crate::body::empty()))
        }
    });
    let server = {
        let (turns, shutdown) = (turns.clone(), shutdown.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(Coalesce::new(server_io, turns.clone()));
            serve_conn(&b, running, io, svc, &turns, &shutdown).await;
        })
    };

    let (mut send, conn) = client::handshake(TokioExecutor::new(), TokioIo::new(client_io))
        .await
        .expect("handshake");
    let client = tokio::spawn(conn);
    let req = http::Request::get("http://x/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("answer");
    assert_eq!(resp.status(), 200);
    let served = turns.now();
    assert_eq!(
        *ran_in.lock().expect("ids"),
        [server.id()],
        "the stream ran in the connection's task"
    );
    assert!(served >= 2, "the connection's polls were counted: {served}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the drain ends")
        .expect("server task");
    assert!(turns.now() > served, "the drain's polls were counted too");
    drop(send);
    let _ = client.await;
}
