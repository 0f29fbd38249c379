use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2;

use super::*;

/// Every poll of an HTTP/2 connection, the graceful drain's included, is a
/// turn: the writes `Coalesce` holds go out on the next one.
#[tokio::test]
async fn each_poll_of_an_http2_connection_is_a_turn_the_drains_too() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let mut b = auto::Builder::new(TokioExecutor::new()).http2_only();
    b.http2().timer(TokioTimer::new());
    let turns = Turns::default();
    let shutdown = CancellationToken::new();
    let svc = service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(crate::body::empty()))
    });
    let server = {
        let (turns, shutdown) = (turns.clone(), shutdown.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(Coalesce::new(server_io, turns.clone()));
            serve_conn(&b, io, svc, &turns, &shutdown).await;
        })
    };

    let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(client_io))
        .await
        .expect("handshake");
    let client = tokio::spawn(conn);
    let req = http::Request::get("http://x/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("answer");
    assert_eq!(resp.status(), 200);
    let served = turns.now();
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
