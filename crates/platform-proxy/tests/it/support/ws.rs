//! WebSocket helpers: a tungstenite client that dials the proxy with any
//! Host, a raw handshake for header-level checks, and a raw upstream that
//! answers the upgrade itself (RFC 6455 §4.2.2) and records what it got.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// Upper bound for any single wait in the WebSocket tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Opens a WebSocket to `url` (its authority is the Host the proxy routes
/// on) over a TCP connection to the proxy at `proxy`.
pub async fn connect(
    proxy: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Response), WsError> {
    let mut req = url.into_client_request().expect("websocket request");
    for (k, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    let tcp = TcpStream::connect(proxy).await.expect("connect to proxy");
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("websocket handshake timed out")
}

/// Like [`connect`] but the handshake must succeed.
pub async fn open(proxy: SocketAddr, url: &str) -> Ws {
    connect(proxy, url, &[])
        .await
        .expect("websocket handshake")
        .0
}

/// The next message, which must arrive within [`WAIT`].
pub async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("no websocket message within the wait")
        .expect("websocket stream ended")
        .expect("websocket error")
}

/// What a raw upgrade request got back.
pub struct RawAnswer {
    pub status: u16,
    /// The response head, without the final blank line.
    pub head: String,
    /// Bytes after the head: the body for a refusal (read up to its
    /// Content-Length), the first frame bytes after a 101.
    pub rest: Vec<u8>,
    pub stream: TcpStream,
}

impl RawAnswer {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&self.head, name)
    }
}

/// The first value of header `name` in a raw message head.
pub fn header_of(head: &str, name: &str) -> Option<String> {
    header_values(head, name).into_iter().next()
}

/// Every value of header `name` in a raw message head, in order.
pub fn header_values(head: &str, name: &str) -> Vec<String> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// Reads from `s` until a blank line ends the head; returns (head, rest).
pub async fn read_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            return (head, buf[i + 4..].to_vec());
        }
        assert!(buf.len() < 64 * 1024, "message head too large");
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("head not received within the wait")
            .expect("read head");
        assert!(
            n > 0,
            "connection closed before the head ended: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends a WebSocket upgrade for `path` on `host` by hand, with `extra`
/// header lines, and reads the answer head (and a refusal's body).
pub async fn raw_upgrade(
    addr: SocketAddr,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> RawAnswer {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(req.as_bytes())
        .await
        .expect("write upgrade");
    let (head, mut rest) = read_head(&mut stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        let len: usize = header_of(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut chunk = [0u8; 4096];
        while rest.len() < len {
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("body not received within the wait")
                .expect("read body");
            assert!(n > 0, "connection closed mid-body");
            rest.extend_from_slice(&chunk[..n]);
        }
    }
    RawAnswer {
        status,
        head,
        rest,
        stream,
    }
}

/// A raw WebSocket upstream: it answers every upgrade with 101 plus
/// `extra_headers` (full `Name: value\r\n` lines), records each request
/// head, then echoes bytes back verbatim.
pub struct RawWsUpstream {
    pub addr: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl RawWsUpstream {
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads lock").clone()
    }
}

pub async fn raw_ws_upstream(extra_headers: &'static str) -> RawWsUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let (head, rest) = read_head(&mut s).await;
                let key = header_of(&head, "sec-websocket-key").unwrap_or_default();
                record.lock().expect("heads lock").push(head);
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: {}\r\n{extra_headers}\r\n",
                    derive_accept_key(key.as_bytes())
                );
                if s.write_all(answer.as_bytes()).await.is_err()
                    || s.write_all(&rest).await.is_err()
                {
                    return;
                }
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    RawWsUpstream { addr, heads }
}
