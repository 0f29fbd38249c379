//! The HTTP/2 server's own rules, seen from a client that writes frames
//! by hand (`pp-h2`'s writers): the reset budget against rapid reset, a
//! head too large for the pipeline answered `431` by the server itself,
//! `100 Continue` when the body is first read, and the send timeout for a
//! client that reads nothing. The protocol's every rule is tested on
//! `pp_h2::server::Connection` alone; these hold the real server to the
//! ones its driver carries out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pp_h2::frame::{self, flags, Head, Kind, Reason, HEAD_LEN, PREFACE};
use pp_h2::hpack::{encode_field, Decoder};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{upstream, TestProxy};

/// A client connection that writes frames as given and reads them back.
struct Raw {
    s: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl Raw {
    /// Connects and sends the preface and `settings`.
    async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> Self {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut b = PREFACE.to_vec();
        frame::write_settings(&mut b, settings);
        s.write_all(&b).await.expect("preface");
        Self {
            s,
            buf: BytesMut::new(),
            decoder: Decoder::new(4096),
        }
    }

    /// Connects with windows as large as the protocol allows, the
    /// stream's and the connection's: only the socket holds answers back.
    async fn connect_wide(addr: SocketAddr) -> Self {
        let mut c = Self::connect(
            addr,
            &[(frame::SETTING_INITIAL_WINDOW_SIZE, frame::MAX_WINDOW)],
        )
        .await;
        let mut b = Vec::new();
        frame::write_window_update(&mut b, 0, frame::MAX_WINDOW - frame::DEFAULT_WINDOW);
        c.send(&b).await;
        c
    }

    async fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).await.expect("write");
    }

    /// The next frame, or `None` once the server has closed.
    async fn frame(&mut self) -> Option<(Head, Vec<u8>)> {
        loop {
            if let Some(h) = self.buf.first_chunk::<HEAD_LEN>() {
                let head = Head::parse(h);
                let total = HEAD_LEN + head.len as usize;
                if self.buf.len() >= total {
                    self.buf.advance(HEAD_LEN);
                    let payload = self.buf.split_to(head.len as usize).to_vec();
                    return Some((head, payload));
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.s.read_buf(&mut self.buf))
                .await
                .expect("a frame within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Reads frames until one of `kind` on `stream` (0: any stream).
    async fn until(&mut self, kind: Kind, stream: u32) -> (Head, Vec<u8>) {
        loop {
            let (h, p) = self.frame().await.expect("the connection stays open");
            if h.kind == kind.code() && (stream == 0 || h.stream == stream) {
                return (h, p);
            }
        }
    }

    /// Sends `block` as stream `stream`'s `HEADERS`.
    async fn open(&mut self, stream: u32, block: &[u8], end_stream: bool) {
        let mut b = Vec::new();
        frame::write_headers(&mut b, stream, block, end_stream, 16_384);
        self.send(&b).await;
    }

    /// The `:status` of the next `HEADERS` on `stream`.
    async fn status_of(&mut self, stream: u32) -> String {
        let (_, p) = self.until(Kind::Headers, stream).await;
        self.status(&p)
    }

    /// A header block's `:status`.
    fn status(&mut self, block: &[u8]) -> String {
        let mut status = String::new();
        self.decoder
            .decode(block, usize::MAX, |f| {
                if f.name == b":status" {
                    status = String::from_utf8_lossy(f.value).into_owned();
                }
            })
            .expect("a valid block");
        status
    }
}

/// A request's header block, every field a literal.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        encode_field(&mut b, n.as_bytes(), v.as_bytes(), false);
    }
    b
}

/// A proxy with a host route `x.apps.test` to an echo upstream (kept
/// alive by the caller).
async fn echo_proxy() -> (TestProxy, upstream::Upstream) {
    let up = upstream::echo().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("x", up.addr, json!({})).await;
    (proxy, up)
}

fn get(host: &str, path: &str) -> Vec<u8> {
    block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", host),
        (":path", path),
    ])
}

#[tokio::test]
async fn resets_of_streams_being_answered_past_the_budget_end_the_connection() {
    let (proxy, _up) = echo_proxy().await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    // Each stream opened and reset in the same write: every reset finds
    // its stream still being answered.
    let request = get("x.apps.test", "/");
    let mut b = Vec::new();
    for i in 0..300u32 {
        let stream = 1 + 2 * i;
        frame::write_headers(&mut b, stream, &request, true, 16_384);
        frame::write_rst_stream(&mut b, stream, Reason::CANCEL);
    }
    c.send(&b).await;
    let (h, p) = c.until(Kind::GoAway, 0).await;
    let g = frame::go_away(&h, &p).expect("a GOAWAY");
    assert_eq!(g.reason, Reason::ENHANCE_YOUR_CALM);
    assert!(
        g.last_stream > 2 * 256,
        "the budget of 256 was spent first: {}",
        g.last_stream
    );
    // The proxy goes on serving others.
    let mut c = Raw::connect(proxy.addr, &[]).await;
    c.open(1, &request, true).await;
    assert_eq!(c.status_of(1).await, "200");
}

#[tokio::test]
async fn a_head_past_twice_the_limit_is_answered_431_and_the_connection_goes_on() {
    let (proxy, _up) = echo_proxy().await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    // 130 KiB: past twice `max_header_bytes` (64 KiB), so past the
    // server's SETTINGS_MAX_HEADER_LIST_SIZE; in CONTINUATIONs.
    let big = "v".repeat(130 * 1024);
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "x.apps.test"),
        (":path", "/"),
    ];
    fields.push(("x-big", &big));
    let mut b = Vec::new();
    frame::write_headers(&mut b, 1, &block(&fields), true, 16_384);
    c.send(&b).await;
    let (h, p) = c.until(Kind::Headers, 1).await;
    assert_eq!(c.status(&p), "431");
    assert!(h.has(flags::END_STREAM));
    let mut b = Vec::new();
    frame::write_headers(&mut b, 3, &get("x.apps.test", "/after"), true, 16_384);
    c.send(&b).await;
    let (_, p) = c.until(Kind::Headers, 3).await;
    assert_eq!(c.status(&p), "200");
}

#[tokio::test]
async fn a_request_expecting_100_continue_gets_it_when_its_body_is_first_read() {
    let (proxy, _up) = echo_proxy().await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    let head = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "x.apps.test"),
        (":path", "/up"),
        ("expect", "100-continue"),
        ("content-length", "5"),
    ]);
    let mut b = Vec::new();
    frame::write_headers(&mut b, 1, &head, false, 16_384);
    c.send(&b).await;
    let (h, p) = c.until(Kind::Headers, 1).await;
    assert_eq!(c.status(&p), "100");
    assert!(!h.has(flags::END_STREAM), "the final answer follows");
    let mut b = Vec::new();
    frame::write_data_head(&mut b, 1, 5, true);
    b.extend_from_slice(b"hello");
    c.send(&b).await;
    let (_, p) = c.until(Kind::Headers, 1).await;
    assert_eq!(c.status(&p), "200");
    let (_, body) = c.until(Kind::Data, 1).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(v["body_len"], 5);
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_closed_after_the_send_timeout() {
    let up = upstream::serve(|_req: http::Request<hyper::body::Incoming>| async move {
        http::Response::new(upstream::full(vec![7u8; 32 << 20]))
    })
    .await;
    let proxy =
        TestProxy::start_with("[server]\nlisten = [\"127.0.0.1:0\"]\nsend_timeout_secs = 1\n")
            .await;
    proxy.host_route("x", up.addr, json!({})).await;
    let mut c = Raw::connect_wide(proxy.addr).await;
    c.open(1, &get("x.apps.test", "/big"), true).await;
    let started = Instant::now();
    // Read nothing for 3 s, then everything: the proxy closed the
    // connection after a second without progress, so what comes is what
    // the sockets held, then the end, far short of 32 MiB.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the connection is still open after {:?}", started.elapsed()),
        }
    }
    assert!(got < 32 << 20, "{got} bytes came: the whole answer");
}

/// An idle connection lets its buffers go after a second
/// (`server/h2.rs`, `IDLE_SHRINK`) and makes them again for its next
/// stream: it serves as before, its HPACK table intact.
#[tokio::test]
async fn a_connection_idle_past_a_second_serves_its_next_stream_as_before() {
    let (proxy, _up) = echo_proxy().await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    // Literal with incremental indexing: the name and value enter the
    // server's table, and the second request names them by index (62).
    let mut first = get("x.apps.test", "/one");
    first.extend_from_slice(&[0x40, 4]);
    first.extend_from_slice(b"x-id");
    first.extend_from_slice(&[5]);
    first.extend_from_slice(b"kept1");
    c.open(1, &first, true).await;
    assert_eq!(c.status_of(1).await, "200");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut second = get("x.apps.test", "/two");
    second.push(0x80 | 62);
    c.open(3, &second, true).await;
    assert_eq!(c.status_of(3).await, "200");
    let (_, body) = c.until(Kind::Data, 3).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(v["headers"]["x-id"], "kept1");
    assert_eq!(v["target"], "/two");
}

/// An answer of 100,000 one-byte chunks: the upstream client reads many
/// at once and the body has thousands of frames ready in a row. The
/// server sends them in a loop bounded by its output (`pump`), one `DATA`
/// frame each, and the client gets every byte.
#[tokio::test]
async fn an_answer_of_many_small_ready_frames_comes_through_whole() {
    const CHUNKS: usize = 100_000;
    let up = upstream::raw_answers(|_| {
        let mut a = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for i in 0..CHUNKS {
            a.push_str("1\r\n");
            a.push(char::from(b'a' + (i % 26) as u8));
            a.push_str("\r\n");
        }
        a.push_str("0\r\n\r\n");
        a
    })
    .await;
    let proxy = TestProxy::start().await;
    proxy.host_route("x", up, json!({})).await;
    let mut c = Raw::connect_wide(proxy.addr).await;
    c.open(1, &get("x.apps.test", "/many"), true).await;
    let (_, p) = c.until(Kind::Headers, 1).await;
    assert_eq!(c.status(&p), "200");
    let mut body = Vec::new();
    loop {
        let (h, p) = c.until(Kind::Data, 1).await;
        body.extend_from_slice(&p);
        if h.has(flags::END_STREAM) {
            break;
        }
    }
    assert_eq!(body.len(), CHUNKS);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));
}

/// A connection's 257th open stream, past `SETTINGS_MAX_CONCURRENT_STREAMS`
/// (256), is refused with `REFUSED_STREAM`; the ones open go on waiting
/// for their (silent) upstream.
#[tokio::test]
async fn a_stream_past_256_open_ones_is_refused() {
    let (up, _seen) = upstream::silent().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("x", up, json!({})).await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    let request = get("x.apps.test", "/wait");
    let mut b = Vec::new();
    for i in 0..257u32 {
        frame::write_headers(&mut b, 1 + 2 * i, &request, true, 16_384);
    }
    c.send(&b).await;
    let (h, p) = c.until(Kind::RstStream, 0).await;
    assert_eq!(h.stream, 1 + 2 * 256, "only the one past the limit");
    assert_eq!(frame::rst_stream(&h, &p), Ok(Reason::REFUSED_STREAM));
}

/// A header block spread over `CONTINUATION`s past twice the header list
/// limit (4× `max_header_bytes`, 256 KiB) ends the connection with
/// `ENHANCE_YOUR_CALM` before it is decoded.
#[tokio::test]
async fn a_header_block_flooding_continuations_ends_the_connection() {
    let (proxy, _up) = echo_proxy().await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    let mut b = Vec::new();
    Head::new(Kind::Headers, 0, 1, 0).write(&mut b);
    for _ in 0..20 {
        Head::new(Kind::Continuation, 0, 1, 16_384).write(&mut b);
        b.extend_from_slice(&[0x82; 16_384]);
    }
    c.send(&b).await;
    let (h, p) = c.until(Kind::GoAway, 0).await;
    assert_eq!(
        frame::go_away(&h, &p).expect("a GOAWAY").reason,
        Reason::ENHANCE_YOUR_CALM
    );
}

/// Empty `DATA` frames without `END_STREAM` carry nothing and cost work:
/// past 1,024 on a connection it is closed with `ENHANCE_YOUR_CALM`.
#[tokio::test]
async fn a_flood_of_empty_data_frames_ends_the_connection() {
    let (up, _seen) = upstream::silent().await;
    let proxy = TestProxy::start().await;
    proxy.host_route("x", up, json!({})).await;
    let mut c = Raw::connect(proxy.addr, &[]).await;
    let post = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "x.apps.test"),
        (":path", "/up"),
    ]);
    c.open(1, &post, false).await;
    let mut b = Vec::new();
    for _ in 0..1_025 {
        frame::write_data_head(&mut b, 1, 0, false);
    }
    c.send(&b).await;
    let (h, p) = c.until(Kind::GoAway, 0).await;
    assert_eq!(
        frame::go_away(&h, &p).expect("a GOAWAY").reason,
        Reason::ENHANCE_YOUR_CALM
    );
}
