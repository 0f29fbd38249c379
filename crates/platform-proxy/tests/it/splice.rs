//! Large `Content-Length` bodies on plain connections, which the proxy
//! splices socket to socket rather than copying, both ways: byte for
//! byte, with the bytes it had already read ahead of the splice, the
//! connections serving on afterwards, a client that leaves half-way, an
//! upstream that cuts its answer short, and an answer that streams while
//! its upload is still being sent. Then the client's idle timers on the
//! same transfers: a request body that stalls (HTTP/1.1 copied or spliced,
//! and HTTP/2) and a client that stops reading its answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

mod setting;

/// FNV-1a over a body: any byte lost, doubled or out of place shows.
fn digest(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// What the digest upstream answers to an upload of `body`: `LEN DIGEST`.
fn digest_answer(body: &[u8]) -> String {
    format!("{} {:016x}", body.len(), digest(body, FNV_START))
}

/// The `i`th byte of a test body: no run repeats within 251 bytes.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

/// What the digest upstream saw.
#[derive(Default)]
struct Seen {
    /// Body bytes read by requests whose body ended early.
    cut_bytes: AtomicU64,
    /// Requests whose body ended before its length.
    cut: AtomicUsize,
    /// Requests answered.
    answered: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Body bytes read after an early answer (`/early/N`).
    after_answer: AtomicU64,
    /// Answers whose writing failed (the proxy let go of the connection).
    send_failed: AtomicUsize,
}

/// A raw keep-alive upstream: reads each request's head and
/// `Content-Length` body and answers `LEN DIGEST`. `/bytes/N` answers N
/// bytes of [`pattern`] (`/chunked/N` in 64 KiB chunks); `/short/N`
/// declares N and closes after N/4;
/// `/early/N` answers N bytes before it reads the request's body.
async fn digest_upstream() -> (SocketAddr, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let s2 = Arc::clone(&seen);
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((s, _)) = l.accept().await else {
                return;
            };
            s2.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_digests(s, Arc::clone(&s2)));
        }
    });
    (addr, seen)
}

async fn serve_digests(mut s: TcpStream, seen: Arc<Seen>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
        pending.drain(..end + 4);
        let len: u64 = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
        if let Some(n) = target.strip_prefix("/chunked/") {
            let body = pattern(0, n.parse().expect("a length"));
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in body.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            if s.write_all(&out).await.is_err() {
                seen.send_failed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            seen.answered.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if let Some(n) = target.strip_prefix("/short/") {
            let n: usize = n.parse().expect("a length");
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&pattern(0, n / 4)).await;
            return;
        }
        let early = target
            .strip_prefix("/early/")
            .map(|n| n.parse::<usize>().expect("a length"));
        if let Some(n) = early {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            if s.write_all(head.as_bytes()).await.is_err()
                || s.write_all(&pattern(0, n)).await.is_err()
            {
                return;
            }
        }
        let mut h = FNV_START;
        let mut got = 0u64;
        while got < len {
            if pending.is_empty() {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        seen.cut_bytes.fetch_add(got, Ordering::SeqCst);
                        seen.cut.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
            let take = pending.len().min(usize::try_from(len - got).expect("fits"));
            h = digest(&pending[..take], h);
            got += take as u64;
            pending.drain(..take);
            if early.is_some() {
                seen.after_answer.fetch_add(take as u64, Ordering::SeqCst);
            }
        }
        if early.is_some() {
            continue;
        }
        let body = match target.strip_prefix("/bytes/") {
            Some(n) => pattern(0, n.parse().expect("a length")),
            None => format!("{got} {h:016x}").into_bytes(),
        };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        if s.write_all(head.as_bytes()).await.is_err() || s.write_all(&body).await.is_err() {
            seen.send_failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        seen.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// A proxy (with `server` TOML, or the default listener) and a route
/// `label` to a fresh digest upstream.
async fn proxy_to_digest(label: &str, server: Option<&str>) -> (TestProxy, Arc<Seen>) {
    let p = match server {
        Some(extra) => TestProxy::start_with(extra).await,
        None => TestProxy::start().await,
    };
    let (addr, seen) = digest_upstream().await;
    p.host_route(label, addr, json!({})).await;
    (p, seen)
}

/// Reads one answer with a `Content-Length` body off `s`: (head, body).
async fn read_answer(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("an answer within 30 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let len: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    let mut body = got.split_off(end + 4);
    while body.len() < len {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("the body within 30 s")
            .expect("read");
        assert!(n > 0, "closed after {} of {len} body bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(body.len(), len, "no bytes past the body");
    (head, body)
}

#[tokio::test]
async fn a_large_upload_arrives_byte_exact_and_its_connection_serves_on() {
    let (p, seen) = proxy_to_digest("up", None).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    for round in 0..2 {
        // 12 MiB + 7: not a multiple of any buffer or pipe size.
        let len = 12 * 1024 * 1024 + 7;
        let body = pattern(round, len);
        let head =
            format!("PUT /sink HTTP/1.1\r\nHost: up.apps.test\r\nContent-Length: {len}\r\n\r\n");
        // The head and the body's first bytes in one write: the proxy
        // reads some of the body with the head, and those go first.
        let mut first = head.into_bytes();
        first.extend_from_slice(&body[..100_000]);
        s.write_all(&first).await.expect("write");
        let mut at = 100_000;
        let mut step = 1;
        while at < len {
            // Uneven writes, from a few bytes to a few hundred KiB.
            let n = (step * 7919 % 300_000 + 1).min(len - at);
            s.write_all(&body[at..at + n]).await.expect("write");
            at += n;
            step += 1;
        }
        let (head, answer) = read_answer(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let want = digest_answer(&body);
        assert_eq!(String::from_utf8_lossy(&answer), want, "round {round}");
    }
    // The same connection carries an ordinary request after them.
    s.write_all(b"GET /bytes/5 HTTP/1.1\r\nHost: up.apps.test\r\n\r\n")
        .await
        .expect("write");
    let (head, answer) = read_answer(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(answer, pattern(0, 5));
    assert_eq!(seen.answered.load(Ordering::SeqCst), 3);
    p.stop().await;
}

#[tokio::test]
async fn a_client_leaving_half_way_through_a_large_upload_cuts_only_that_upload() {
    let (p, seen) = proxy_to_digest("cut", None).await;
    let len = 8 * 1024 * 1024;
    let sent = 3 * 1024 * 1024;
    {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        let head =
            format!("PUT /sink HTTP/1.1\r\nHost: cut.apps.test\r\nContent-Length: {len}\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(&pattern(0, sent)).await.expect("write");
        // Gone, with 5 MiB of the body never sent.
    }
    let seen2 = Arc::clone(&seen);
    eventually(Duration::from_secs(10), || {
        let seen = Arc::clone(&seen2);
        async move { seen.cut.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let got = seen.cut_bytes.load(Ordering::SeqCst);
    assert!(
        got <= sent as u64,
        "the upstream got {got} bytes of {sent} sent"
    );
    assert_eq!(seen.answered.load(Ordering::SeqCst), 0);
    // The proxy serves on, and uploads on new connections go through.
    let body = pattern(3, 1024 * 1024);
    let r = p
        .req(reqwest::Method::PUT, "cut.apps.test", "/sink")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let want = digest_answer(&body);
    assert_eq!(r.text().await.expect("body"), want);
    p.stop().await;
}

#[tokio::test]
async fn a_large_download_arrives_byte_exact_on_pooled_connections() {
    let (p, seen) = proxy_to_digest("down", None).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let len = 12 * 1024 * 1024 + 3;
    for _ in 0..3 {
        let req = format!("GET /bytes/{len} HTTP/1.1\r\nHost: down.apps.test\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let (head, body) = read_answer(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == pattern(0, len), "the body arrives as sent");
    }
    // Through another client as well, and the upstream connection went
    // back to the pool after each body.
    let r = p
        .get("down.apps.test", &format!("/bytes/{len}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.expect("body");
    assert!(body.as_ref() == pattern(0, len).as_slice());
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection served all four"
    );
    p.stop().await;
}

#[tokio::test]
async fn a_download_the_upstream_cuts_short_closes_the_client_connection() {
    let (p, seen) = proxy_to_digest("short", None).await;
    let len = 4 * 1024 * 1024;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let req = format!("GET /short/{len} HTTP/1.1\r\nHost: short.apps.test\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the proxy closes the connection within 10 s")
        .expect("read");
    let text_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let body = &got[text_end..];
    assert_eq!(body.len(), len / 4, "what the upstream sent, and no more");
    assert!(body == pattern(0, len / 4).as_slice());
    // The proxy serves on, on a new upstream connection.
    let r = p
        .get("short.apps.test", "/bytes/10")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        pattern(0, 10).as_slice()
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    p.stop().await;
}

#[tokio::test]
async fn a_client_leaving_a_large_download_takes_only_its_upstream_connection() {
    let (p, seen) = proxy_to_digest("leave", None).await;
    {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        let req = "GET /bytes/67108864 HTTP/1.1\r\nHost: leave.apps.test\r\n\r\n";
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 1024 * 1024];
        s.read_exact(&mut buf).await.expect("the first MiB");
        // Gone, with 63 MiB unread.
    }
    let r = p
        .get("leave.apps.test", "/bytes/1000")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        pattern(0, 1000).as_slice()
    );
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        2,
        "the cut connection was not reused"
    );
    p.stop().await;
}

#[tokio::test]
async fn a_large_answer_sent_before_a_large_upload_is_read_lets_both_through() {
    let (p, seen) = proxy_to_digest("both", None).await;
    let up_len = 8 * 1024 * 1024;
    let down_len = 6 * 1024 * 1024;
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    let head = format!(
        "PUT /early/{down_len} HTTP/1.1\r\nHost: both.apps.test\r\nContent-Length: {up_len}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        w.write_all(head.as_bytes()).await.expect("write");
        w.write_all(&pattern(0, up_len))
            .await
            .expect("the whole upload goes out");
        w
    });
    // The answer streams while the upload is still being sent: neither
    // waits for the other.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let want = down_len + 40;
    while got.len() < want {
        let n = tokio::time::timeout(Duration::from_secs(30), r.read(&mut buf))
            .await
            .expect("the answer flows within 30 s")
            .expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() - end - 4 == down_len {
                break;
            }
        }
    }
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(
        got[end..] == pattern(0, down_len),
        "the answer arrives whole"
    );
    let _w = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the upload is sent within 30 s")
        .expect("writer");
    let seen2 = Arc::clone(&seen);
    eventually(Duration::from_secs(10), || {
        let seen = Arc::clone(&seen2);
        async move { seen.after_answer.load(Ordering::SeqCst) == up_len as u64 }
    })
    .await;
    p.stop().await;
}

/// Sends `head` and `sent` body bytes of a longer body, then stalls: the
/// proxy must answer 408 `body_timeout` once the body-read timeout (1 s
/// here) has passed, and close the connection.
async fn stall_after(p: &TestProxy, host: &str, len: usize, sent: usize) -> (String, Duration) {
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let head = format!("PUT /sink HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len}\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&pattern(0, sent)).await.expect("write");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the proxy gives up on the body within 10 s")
        .expect("read");
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_after_the_body_read_timeout_copied_or_spliced() {
    let server = "[server]\nlisten = [\"127.0.0.1:0\"]\nbody_read_timeout_secs = 1\n";
    let (p, seen) = proxy_to_digest("stall", Some(server)).await;
    // A small body (copied) and a large one (spliced), each stopping short.
    for (len, sent) in [(1000, 10), (4 * 1024 * 1024, 300 * 1024)] {
        let (answer, took) = stall_after(&p, "stall.apps.test", len, sent).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{len}: {answer}");
        assert!(answer.contains("\"body_timeout\""), "{len}: {answer}");
        assert!(took >= Duration::from_millis(900), "{len}: after {took:?}");
    }
    // Neither reached the upstream whole.
    eventually(Duration::from_secs(5), || {
        let seen = Arc::clone(&seen);
        async move { seen.cut.load(Ordering::SeqCst) == 2 }
    })
    .await;
    assert_eq!(seen.answered.load(Ordering::SeqCst), 0);
    p.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_let_go_after_the_send_timeout_copied_or_spliced() {
    let (p, seen) = proxy_to_digest(
        "deaf",
        Some("[server]\nlisten = [\"127.0.0.1:0\"]\nsend_timeout_secs = 1\n"),
    )
    .await;
    // 64 MiB answers, far more than the sockets between hold: a spliced
    // one (Content-Length) and a copied one (chunked).
    let mut held = Vec::new();
    for target in ["/bytes/67108864", "/chunked/67108864"] {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        let req = format!("GET {target} HTTP/1.1\r\nHost: deaf.apps.test\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        // Never read.
        held.push(s);
    }
    let started = std::time::Instant::now();
    let seen2 = Arc::clone(&seen);
    eventually(Duration::from_secs(15), || {
        let seen = Arc::clone(&seen2);
        async move { seen.send_failed.load(Ordering::SeqCst) == 2 }
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "after {:?}",
        started.elapsed()
    );
    assert_eq!(seen.answered.load(Ordering::SeqCst), 0);
    // The clients' connections were closed: what is buffered, then the end.
    for mut s in held {
        let mut buf = vec![0u8; 1024 * 1024];
        let mut got = 0usize;
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the connection ends");
        assert!(got < 67_108_864, "cut off after {got} bytes");
    }
    p.stop().await;
}

#[tokio::test]
async fn a_stalled_http2_request_body_gets_408_after_the_body_read_timeout() {
    let (p, seen) = proxy_to_digest(
        "stall2",
        Some("[server]\nlisten = [\"127.0.0.1:0\"]\nbody_read_timeout_secs = 1\n"),
    )
    .await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve("stall2.apps.test", p.addr)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    // Ten bytes of a declared thousand, then nothing (the stream stays
    // open: the client neither sends nor ends it).
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(pattern(0, 10))]);
    let body = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    let started = std::time::Instant::now();
    let r = client
        .put(format!("http://stall2.apps.test:{}/sink", p.addr.port()))
        .header("content-length", "1000")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 408);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let text = r.text().await.expect("body");
    assert!(text.contains("\"body_timeout\""), "{text}");
    assert_eq!(seen.answered.load(Ordering::SeqCst), 0);
    // Only that stream ended: the connection carries the next request.
    let r = client
        .get(format!("http://stall2.apps.test:{}/bytes/3", p.addr.port()))
        .send()
        .await
        .expect("the next request");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        pattern(0, 3).as_slice()
    );
    p.stop().await;
}

/// A fixed-seed xorshift: the same mix of requests on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).expect("fits")
    }
}

#[tokio::test]
async fn spliced_and_copied_bodies_mixed_on_one_connection_all_arrive_whole() {
    let (p, seen) = proxy_to_digest("mix", None).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let threshold = 256 * 1024;
    for round in 0..24 {
        // Lengths on both sides of the splice threshold, and far over it.
        let len = match rng.below(4) {
            0 => rng.below(threshold),
            1 => threshold - 2 + rng.below(4),
            _ => threshold + rng.below(3 * 1024 * 1024),
        };
        match rng.below(3) {
            0 => {
                let body = pattern(round, len);
                let head = format!(
                    "PUT /sink HTTP/1.1\r\nHost: mix.apps.test\r\nContent-Length: {len}\r\n\r\n"
                );
                let mut at = rng.below(len.min(64 * 1024) + 1);
                let mut first = head.into_bytes();
                first.extend_from_slice(&body[..at]);
                s.write_all(&first).await.expect("write");
                while at < len {
                    let n = (1 + rng.below(200_000)).min(len - at);
                    s.write_all(&body[at..at + n]).await.expect("write");
                    at += n;
                }
                let (head, answer) = read_answer(&mut s).await;
                assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
                let want = digest_answer(&body);
                assert_eq!(
                    String::from_utf8_lossy(&answer),
                    want,
                    "round {round}: PUT {len}"
                );
            }
            1 => {
                let req = format!("GET /bytes/{len} HTTP/1.1\r\nHost: mix.apps.test\r\n\r\n");
                s.write_all(req.as_bytes()).await.expect("write");
                let (head, body) = read_answer(&mut s).await;
                assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
                assert!(body == pattern(0, len), "round {round}: GET {len}");
            }
            _ => {
                let r = p
                    .get("mix.apps.test", &format!("/chunked/{len}"))
                    .send()
                    .await
                    .expect("send");
                let body = r.bytes().await.expect("body");
                assert!(
                    body.as_ref() == pattern(0, len).as_slice(),
                    "round {round}: chunked {len}"
                );
            }
        }
    }
    assert_eq!(seen.cut.load(Ordering::SeqCst), 0);
    assert_eq!(seen.send_failed.load(Ordering::SeqCst), 0);
    p.stop().await;
}

#[tokio::test]
async fn a_stalled_api_request_body_gets_the_apis_400_after_the_body_read_timeout() {
    let server = "[server]\nlisten = [\"127.0.0.1:0\"]\nbody_read_timeout_secs = 1\n";
    let p = TestProxy::start_with(server).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/routes HTTP/1.1\r\nHost: {API_HOST}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"owner"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the API gives up on the body within 10 s")
        .expect("read");
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("\"bad_request\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    p.stop().await;
}
