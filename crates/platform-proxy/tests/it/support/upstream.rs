//! Upstream servers for tests, each on 127.0.0.1:0.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{
    Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub struct Upstream {
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Serves HTTP/1.1 with `handler`.
pub async fn serve<F, Fut>(handler: F) -> Upstream
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler: Handler = Arc::new(move |r| Box::pin(handler(r)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let handler = Arc::clone(&handler);
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { addr, connections }
}

/// Answers every request with a JSON description of what it received:
/// method, path (as sent), headers, and the body's length.
pub async fn echo() -> Upstream {
    serve(|req: Request<Incoming>| async move {
        let method = req.method().to_string();
        let target = req.uri().to_string();
        // A repeated field is joined with ", " (RFC 9110 §5.3), so a test
        // sees a header the proxy sent twice.
        let mut headers = serde_json::Map::new();
        for name in req.headers().keys() {
            let joined: Vec<_> = req
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            headers.insert(name.as_str().to_owned(), joined.join(", ").into());
        }
        let mut body = req.into_body();
        let mut len = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                len += d.len();
            }
        }
        let v = serde_json::json!({"method": method, "target": target, "headers": headers, "body_len": len});
        Response::builder()
            .header("content-type", "application/json")
            .body(full(v.to_string()))
            .expect("response")
    })
    .await
}

#[allow(clippy::result_large_err)] // the handshake callback's error is an HTTP response
/// A WebSocket upstream: echoes every message; `"close:CODE"` makes it close
/// with that code; it selects the first subprotocol offered and records it.
pub async fn ws_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let cb = |req: &WsRequest, mut resp: WsResponse| {
                    if let Some(p) = req
                        .headers()
                        .get("sec-websocket-protocol")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split(',').next())
                    {
                        resp.headers_mut()
                            .insert("sec-websocket-protocol", p.trim().parse().expect("header"));
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Text(t) if t.starts_with("close:") => {
                            let code: u16 = t[6..].parse().unwrap_or(1000);
                            let _ = ws
                                .close(Some(CloseFrame {
                                    code: CloseCode::from(code),
                                    reason: "asked to".into(),
                                }))
                                .await;
                        }
                        Message::Text(_) | Message::Binary(_) => {
                            let sent = ws.send(msg).await;
                            if sent.is_err() {
                                return;
                            }
                        }
                        // Keep reading: tungstenite answers the Close and the
                        // stream then ends by itself.
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

/// What a silent upstream ([`silent`]) saw on one of its connections.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// The first bytes of a request came.
    Asked,
    /// The proxy closed the connection.
    Closed,
}

/// An upstream that reads requests and never answers, telling what each
/// of its connections saw: for tests of what the proxy does with an
/// exchange its client has given up on.
pub async fn silent() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                let mut asked = false;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(Seen::Closed);
                            return;
                        }
                        Ok(_) if !asked => {
                            asked = true;
                            let _ = tx.send(Seen::Asked);
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// The next thing a [`silent`] upstream saw, failing the test with `what`
/// when nothing comes `within`.
pub async fn next_seen(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
    within: std::time::Duration,
    what: &str,
) -> Seen {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {within:?}"))
        .expect("upstream alive")
}

/// An address where nothing listens.
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

/// A raw HTTP/1.1 upstream whose answers are written byte for byte as
/// `answer` gives them for each request's target: field names in the case
/// and order an app server picks, which hyper's server would normalise.
/// Keeps each connection for the next request (bodiless requests only).
pub async fn raw_answers(answer: fn(&str) -> String) -> SocketAddr {
    raw_upstream(move |head: &str| answer(head.split(' ').nth(1).unwrap_or("/"))).await
}

/// A raw HTTP/1.1 upstream that answers each request with its own head,
/// byte for byte as it arrived (without the blank line that ends it), as
/// the body: what the proxy wrote, names' case and order included, which
/// hyper's server would normalise.
pub async fn raw_mirror() -> SocketAddr {
    raw_upstream(|head: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{head}",
            head.len()
        )
    })
    .await
}

/// The raw upstream both above are: `answer` gets each request's head.
async fn raw_upstream<F>(answer: F) -> SocketAddr
where
    F: Fn(&str) -> String + Copy + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Bounded: a test opens a handful of connections.
        for _ in 0..32 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                        seen.drain(..end + 4);
                        if s.write_all(answer(&head).as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}
