use super::*;
use tokio::io::AsyncReadExt;
use tokio::io::{duplex, DuplexStream};
use tokio::task::JoinHandle;

fn limits(idle_ms: u64, life_ms: u64) -> TunnelLimits {
    TunnelLimits {
        idle: Duration::from_millis(idle_ms),
        max_lifetime: Duration::from_millis(life_ms),
    }
}

/// A relay between two in-memory pipes of `pipe` bytes each, never
/// revoked: the browser's end, the app's end and the relay's task.
fn tunnel(
    pipe: usize,
    limits: TunnelLimits,
    drain: CancellationToken,
) -> (DuplexStream, DuplexStream, JoinHandle<TunnelStats>) {
    tunnel_revoked(pipe, limits, drain, std::future::pending())
}

/// [`tunnel`], ended by `revoked` when it resolves.
fn tunnel_revoked(
    pipe: usize,
    limits: TunnelLimits,
    drain: CancellationToken,
    revoked: impl std::future::Future<Output = &'static str> + Send + 'static,
) -> (DuplexStream, DuplexStream, JoinHandle<TunnelStats>) {
    let (client, browser) = duplex(pipe);
    let (upstream, app) = duplex(pipe);
    let task = tokio::spawn(relay(
        End::stream(client),
        End::stream(upstream),
        limits,
        drain,
        revoked,
    ));
    (browser, app, task)
}

/// A masked text frame as a browser sends it.
fn client_text(s: &str) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | u8::try_from(s.len()).expect("short")];
    f.extend_from_slice(&mask);
    f.extend(s.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

fn server_binary(n: usize) -> Vec<u8> {
    let mut f = vec![0x82, 127];
    f.extend_from_slice(&(n as u64).to_be_bytes());
    f.extend(std::iter::repeat_n(7u8, n));
    f
}

#[tokio::test]
async fn frames_pass_byte_for_byte_both_ways() {
    let (mut browser, mut app, task) =
        tunnel(1 << 20, limits(5000, 60_000), CancellationToken::new());
    let hello = client_text("hello");
    browser.write_all(&hello).await.expect("write");
    let mut got = vec![0u8; hello.len()];
    app.read_exact(&mut got).await.expect("read");
    assert_eq!(got, hello);
    let big = server_binary(200_000);
    app.write_all(&big).await.expect("write");
    let mut got = vec![0u8; big.len()];
    browser.read_exact(&mut got).await.expect("read");
    assert_eq!(got, big);
    drop(browser);
    drop(app);
    let stats = task.await.expect("join");
    assert_eq!(stats.frames_to_upstream, 1);
    assert_eq!(stats.frames_to_client, 1);
    assert!(stats.closed_by_proxy.is_none());
}

async fn read_close(r: &mut (impl AsyncRead + Unpin), masked: bool) -> (u16, String) {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await.expect("head");
    assert_eq!(h[0], 0x88, "a final close frame");
    assert_eq!(h[1] & 0x80 != 0, masked);
    let len = usize::from(h[1] & 0x7f);
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await.expect("mask");
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p).await.expect("payload");
    if masked {
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    (
        u16::from_be_bytes([p[0], p[1]]),
        String::from_utf8_lossy(&p[2..]).into_owned(),
    )
}

#[tokio::test]
async fn idle_tunnel_is_closed_with_1001_on_both_sides() {
    let (mut browser, mut app, task) = tunnel(4096, limits(200, 60_000), CancellationToken::new());
    assert_eq!(
        read_close(&mut browser, false).await,
        (1001, "idle timeout".into())
    );
    assert_eq!(
        read_close(&mut app, true).await,
        (1001, "idle timeout".into())
    );
    drop(browser);
    drop(app);
    let stats = task.await.expect("join");
    assert_eq!(stats.closed_by_proxy, Some(CloseReason::Idle));
}

#[tokio::test]
async fn busy_tunnel_still_ends_at_its_lifetime() {
    let (mut browser, mut app, task) =
        tunnel(1 << 16, limits(10_000, 400), CancellationToken::new());
    let sender = tokio::spawn(async move {
        for _ in 0..40 {
            if browser.write_all(&client_text("x")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        browser
    });
    let mut frame = vec![0u8; client_text("x").len()];
    // Frames flow until the lifetime ends; then the close frame arrives.
    loop {
        let mut h = [0u8; 1];
        app.read_exact(&mut h).await.expect("byte");
        if h[0] == 0x88 {
            break;
        }
        app.read_exact(&mut frame[1..]).await.expect("rest");
    }
    let browser = sender.await.expect("join");
    drop(browser);
    drop(app);
    assert_eq!(
        task.await.expect("join").closed_by_proxy,
        Some(CloseReason::Lifetime)
    );
}

#[tokio::test]
async fn drain_closes_with_shutdown_reason() {
    let drain = CancellationToken::new();
    let (mut browser, _app, task) = tunnel(4096, limits(10_000, 60_000), drain.clone());
    drain.cancel();
    assert_eq!(
        read_close(&mut browser, false).await,
        (1001, "proxy shutting down".into())
    );
    drop(browser);
    drop(_app);
    assert_eq!(
        task.await.expect("join").closed_by_proxy,
        Some(CloseReason::Shutdown)
    );
}

#[tokio::test]
async fn revocation_closes_both_sides_with_1008_and_the_reason() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (mut browser, mut app, task) = tunnel_revoked(
        4096,
        limits(10_000, 60_000),
        CancellationToken::new(),
        async move {
            let _ = rx.await;
            "user signed out"
        },
    );
    tx.send(()).expect("relay alive");
    assert_eq!(
        read_close(&mut browser, false).await,
        (1008, "user signed out".into())
    );
    assert_eq!(
        read_close(&mut app, true).await,
        (1008, "user signed out".into())
    );
    drop(browser);
    drop(app);
    assert_eq!(
        task.await.expect("join").closed_by_proxy,
        Some(CloseReason::Revoked("user signed out"))
    );
}

#[tokio::test]
async fn upstream_vanishing_gives_the_browser_1014() {
    let (mut browser, app, task) = tunnel(4096, limits(10_000, 60_000), CancellationToken::new());
    drop(app);
    assert_eq!(read_close(&mut browser, false).await.0, 1014);
    drop(browser);
    task.await.expect("join");
}

#[test]
fn masked_close_frame_round_trips() {
    let f = close_frame(Dir::ToUpstream, 1001, "bye");
    assert_eq!(f[0], 0x88);
    assert_eq!(f[1], 0x80 | 5);
    let mask = &f[2..6];
    let p: Vec<u8> = f[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    assert_eq!(p, [0x03, 0xe9, b'b', b'y', b'e']);
}

/// A close frame as the upstream sends it (unmasked).
fn server_close(code: u16) -> Vec<u8> {
    let mut f = vec![0x88, 2];
    f.extend_from_slice(&code.to_be_bytes());
    f
}

#[test]
fn frame_boundaries_are_found_however_the_bytes_are_cut() {
    // Every header shape: 7-bit masked, 16-bit, 64-bit, empty, Close.
    let mut stream = client_text("hello");
    let mut mid = vec![0x82, 126];
    mid.extend_from_slice(&300u16.to_be_bytes());
    mid.extend(std::iter::repeat_n(1u8, 300));
    stream.extend_from_slice(&mid);
    stream.extend_from_slice(&server_binary(70_000));
    stream.extend_from_slice(&[0x89, 0]);
    stream.extend_from_slice(&server_close(1000));
    for cut in [1, 2, 3, 5, 13, 14, 4096, stream.len()] {
        let mut f = Frames::default();
        let mut boundaries = 0;
        for chunk in stream.chunks(cut) {
            let mut at = 0;
            while at < chunk.len() {
                at += f.step(&chunk[at..]).expect("valid frames");
                if f.at_boundary() {
                    boundaries += 1;
                }
            }
        }
        assert_eq!(f.frames, 5, "cut into {cut}-byte pieces");
        assert_eq!(boundaries, 5, "cut into {cut}-byte pieces");
        assert!(f.closed && f.at_boundary());
    }
    let mut half = Frames::default();
    half.step(&stream[..4]).expect("valid");
    assert!(!half.at_boundary() && !half.closed);
}

#[test]
fn a_frame_length_with_its_top_bit_set_is_refused() {
    let mut f = Frames::default();
    let mut head = vec![0x82, 127];
    head.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert!(f.step(&head).is_err());
    // The same header arriving a byte at a time.
    let mut f = Frames::default();
    let mut refused = false;
    for b in &head {
        match f.step(std::slice::from_ref(b)) {
            Ok(n) => assert_eq!(n, 1),
            Err(_) => refused = true,
        }
    }
    assert!(refused, "the length's top bit refused however it arrives");
}

#[test]
fn random_frames_cut_at_random_end_where_they_were_written() {
    let mut rng = pp_testkit::Rng(0x5eed_f4a3);
    for round in 0..200 {
        // A stream of frames of every header shape, and where each ends.
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..1 + rng.below(12) {
            let len = match rng.below(4) {
                0 => rng.below(126),
                1 => 126 + rng.below(1000),
                2 => 65_536 + rng.below(3000),
                _ => 0,
            };
            let masked = rng.below(2) == 1;
            stream.push(0x80 | [OP_CLOSE, 0x1, 0x2, 0x9][rng.below(4)]);
            let mask_bit = if masked { 0x80 } else { 0 };
            if len < 126 {
                stream.push(mask_bit | u8::try_from(len).expect("short"));
            } else if len < 65_536 {
                stream.push(mask_bit | 126);
                stream.extend_from_slice(&u16::try_from(len).expect("mid").to_be_bytes());
            } else {
                stream.push(mask_bit | 127);
                stream.extend_from_slice(&(len as u64).to_be_bytes());
            }
            if masked {
                stream.extend_from_slice(&rng.bytes(4));
            }
            stream.extend_from_slice(&rng.bytes(len));
            ends.push(stream.len());
        }
        let mut f = Frames::default();
        let mut seen = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let cut = (at + 1 + rng.below(200)).min(stream.len());
            let chunk = &stream[at..cut];
            let mut used = 0;
            while used < chunk.len() {
                let n = f.step(&chunk[used..]).expect("valid frames");
                assert!(n > 0, "round {round}: no progress");
                used += n;
                if f.at_boundary() {
                    seen.push(at + used);
                }
            }
            at = cut;
        }
        assert_eq!(seen, ends, "round {round}");
        assert_eq!(f.frames, ends.len() as u64, "round {round}");
    }
}

#[tokio::test]
async fn frames_arriving_together_are_counted_and_forwarded_together() {
    let (mut browser, mut app, task) =
        tunnel(1 << 16, limits(5000, 60_000), CancellationToken::new());
    let mut burst = Vec::new();
    for s in ["a", "bb", "ccc"] {
        burst.extend_from_slice(&client_text(s));
    }
    browser.write_all(&burst).await.expect("write");
    let mut got = vec![0u8; burst.len()];
    app.read_exact(&mut got).await.expect("read");
    assert_eq!(got, burst);
    app.write_all(&server_close(1000)).await.expect("write");
    let mut close = [0u8; 4];
    browser.read_exact(&mut close).await.expect("close");
    assert_eq!(close.to_vec(), server_close(1000));
    drop(browser);
    drop(app);
    let stats = task.await.expect("join");
    assert_eq!(stats.frames_to_upstream, 3);
    assert_eq!(stats.frames_to_client, 1);
    assert_eq!(stats.bytes_to_upstream, burst.len() as u64);
}

#[tokio::test]
async fn a_drain_mid_frame_finishes_that_frame_and_then_closes() {
    let drain = CancellationToken::new();
    let (mut browser, mut app, task) = tunnel(1 << 20, limits(10_000, 60_000), drain.clone());
    let big = server_binary(100_000);
    let (first, rest) = big.split_at(40_000);
    app.write_all(first).await.expect("write");
    let mut got = vec![0u8; first.len()];
    browser.read_exact(&mut got).await.expect("first part");
    drain.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The rest of the frame and a frame after it, in one write: only the
    // rest passes, then the proxy's Close.
    let mut tail = rest.to_vec();
    tail.extend_from_slice(&server_binary(10));
    app.write_all(&tail).await.expect("write");
    let mut got = vec![0u8; rest.len()];
    browser
        .read_exact(&mut got)
        .await
        .expect("rest of the frame");
    assert_eq!(got, rest);
    assert_eq!(
        read_close(&mut browser, false).await,
        (1001, "proxy shutting down".into())
    );
    drop(browser);
    drop(app);
    let stats = task.await.expect("join");
    assert_eq!(stats.frames_to_client, 1);
    assert_eq!(stats.closed_by_proxy, Some(CloseReason::Shutdown));
}

#[tokio::test]
async fn a_slow_reader_gets_every_byte_in_order() {
    // 1 KiB pipes: nearly every read outruns the writer, so bytes wait in
    // the pump's backlog and the reader pauses until they are written.
    let (mut browser, mut app, task) = tunnel(1024, limits(5000, 60_000), CancellationToken::new());
    let mut big = server_binary(300_000);
    for (i, b) in big.iter_mut().enumerate().skip(10) {
        *b = (i % 251) as u8;
    }
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        app.write_all(&sent).await.expect("write");
        app
    });
    let mut got = Vec::with_capacity(big.len());
    let mut chunk = [0u8; 700];
    while got.len() < big.len() {
        let n = browser.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the relay ended early");
        got.extend_from_slice(&chunk[..n]);
        tokio::task::yield_now().await;
    }
    assert_eq!(got, big);
    let app = writer.await.expect("join");
    drop(browser);
    drop(app);
    let stats = task.await.expect("join");
    assert_eq!(stats.frames_to_client, 1);
    assert_eq!(stats.bytes_to_client, big.len() as u64);
}

#[tokio::test]
async fn a_drain_after_one_side_left_still_closes_the_other_properly() {
    let drain = CancellationToken::new();
    let (mut browser, mut app, task) = tunnel(4096, limits(10_000, 60_000), drain.clone());
    // The browser stops sending (its write side closes): the upstream is
    // told, and the other direction stays open within its grace.
    browser.shutdown().await.expect("half close");
    assert_eq!(read_close(&mut app, true).await.0, 1001);
    drain.cancel();
    assert_eq!(
        read_close(&mut browser, false).await,
        (1001, "proxy shutting down".into())
    );
    drop(browser);
    drop(app);
    assert_eq!(
        task.await.expect("join").closed_by_proxy,
        Some(CloseReason::Shutdown)
    );
}

#[tokio::test]
async fn a_tunnel_in_use_outlives_its_idle_time_and_closes_once_quiet() {
    let (mut browser, mut app, task) =
        tunnel(1 << 16, limits(200, 60_000), CancellationToken::new());
    let frame = client_text("x");
    let mut got = vec![0u8; frame.len()];
    // Four idle times' worth of traffic, a frame every 40 ms.
    for i in 0..20 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        browser.write_all(&frame).await.expect("write");
        app.read_exact(&mut got)
            .await
            .expect("forwarded, not closed");
        assert_eq!(got, frame);
    }
    // The last frame bytes have been relayed.
    let quiet = Instant::now();
    assert_eq!(
        read_close(&mut browser, false).await,
        (1001, "idle timeout".into())
    );
    let waited = quiet.elapsed();
    // Never before the idle time; within two ticks (50 ms each here) of
    // it, with room for a loaded machine.
    assert!(
        waited >= Duration::from_millis(200),
        "closed early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(700),
        "closed late: {waited:?}"
    );
    drop(browser);
    drop(app);
    let stats = task.await.expect("join");
    assert_eq!(stats.closed_by_proxy, Some(CloseReason::Idle));
    assert_eq!(stats.frames_to_upstream, 20);
}

/// Answers one request on `server` with a `101` and `early` in the same
/// write, then sends `late` once it has read `ping`; returns what hyper's
/// client made of the switch, and the peer's task.
async fn switched_by_hyper<S, P>(io: S, mut server: P) -> (End, JoinHandle<P>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = tokio::spawn(async move {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            server.read_exact(&mut b).await.expect("request head");
            head.push(b[0]);
        }
        server
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nearly")
            .await
            .expect("answer");
        let mut ping = [0u8; 4];
        server.read_exact(&mut ping).await.expect("ping");
        assert_eq!(&ping, b"ping");
        server.write_all(b"late").await.expect("late");
        server
    });
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("handshake");
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::get("/ws")
        .header("host", "app")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("101");
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let end = End::from_hyper(hyper::upgrade::on(resp).await.expect("upgraded"));
    (end, peer)
}

/// Reads `end` until `want` bytes came.
async fn read_end(end: &mut End, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < want {
        let n = end.read.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// The peer's bytes both ways through `end`, which is the socket itself
/// when `tcp`: `early` (read past the `101`) in, `ping` out, `late` in.
async fn exchange_through<P>(mut end: End, peer: JoinHandle<P>, tcp: bool) {
    assert_eq!(end.write.tcp().is_some(), tcp, "{end:?}");
    assert_eq!(read_end(&mut end, 5).await, b"early");
    end.write.write_all(b"ping").await.expect("write");
    assert_eq!(read_end(&mut end, 4).await, b"late");
    peer.await.expect("peer");
}

#[tokio::test]
async fn an_upstream_switched_over_tcp_is_its_socket_with_the_bytes_hyper_read_first() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = tokio::spawn(async move { listener.accept().await.expect("accept").0 });
    let io = TcpStream::connect(addr).await.expect("connect");
    let server = accepted.await.expect("join");
    let (end, peer) = switched_by_hyper(io, server).await;
    exchange_through(end, peer, true).await;
}

#[tokio::test]
async fn an_upstream_switched_over_another_stream_is_read_through_hyper() {
    let (io, server) = duplex(4096);
    let (end, peer) = switched_by_hyper(io, server).await;
    exchange_through(end, peer, false).await;
}

#[tokio::test]
async fn an_end_lets_go_of_the_read_buffer_its_prefix_came_from() {
    // Nothing read past the switch: the empty slice does not keep the
    // buffer (8 KiB an idle tunnel, were it kept).
    let buffer = bytes::Bytes::from(vec![7u8; 8192]);
    let mut empty = buffer.clone();
    empty.advance(8192);
    let end = End::new(
        crate::server::h1::socket::Reader::Stream(Box::new(tokio::io::empty())),
        empty,
        crate::server::h1::socket::WriteHalf::Stream(Box::new(tokio::io::sink())),
    );
    assert!(buffer.is_unique(), "the end holds the read buffer");
    drop(end);
    // Bytes read past it: held until read, then let go.
    let (mut app, far) = duplex(64);
    let mut end = End::stream(far);
    end.read.prefix = Incoming::held(buffer.slice(8000..));
    assert!(!buffer.is_unique());
    app.write_all(b"after").await.expect("write");
    let got = read_end(&mut end, 192 + 5).await;
    assert_eq!(&got[..192], &[7u8; 192][..]);
    assert_eq!(&got[192..], b"after");
    assert!(buffer.is_unique(), "the prefix read, the buffer is let go");
}

#[test]
fn the_idle_check_is_an_eighth_of_the_timeout_within_its_bounds() {
    let tick = |ms| idle_tick(Duration::from_millis(ms));
    assert_eq!(tick(200), Duration::from_millis(50), "at least 50 ms");
    assert_eq!(tick(8_000), Duration::from_secs(1));
    assert_eq!(tick(120_000), Duration::from_secs(15));
    // The default 15 minutes: closed within a minute past them.
    assert_eq!(tick(900_000), MAX_IDLE_TICK);
    assert_eq!(tick(u64::MAX / 1_000), MAX_IDLE_TICK);
}

/// Both directions at once on a runtime of several threads, where a
/// pump's waker can fire on one thread while the relay runs on another:
/// no wake is lost (the test would hang) and every byte arrives in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn both_directions_at_once_lose_no_wake_across_threads() {
    let (browser, app, task) = tunnel(512, limits(60_000, 600_000), CancellationToken::new());
    let (browser_r, mut browser_w) = tokio::io::split(browser);
    let (app_r, mut app_w) = tokio::io::split(app);
    const FRAMES: usize = 2_000;
    let up: Vec<u8> = (0..FRAMES)
        .flat_map(|i| client_text(&format!("up {i}")))
        .collect();
    let down: Vec<u8> = (0..FRAMES)
        .flat_map(|i| {
            let p = format!("down {i}");
            let mut f = vec![0x81, u8::try_from(p.len()).expect("short")];
            f.extend_from_slice(p.as_bytes());
            f
        })
        .collect();
    let (expect_up, expect_down) = (up.clone(), down.clone());
    let (up_len, down_len) = (up.len(), down.len());
    let send_up = tokio::spawn(async move {
        for chunk in up.chunks(97) {
            browser_w.write_all(chunk).await.expect("browser write");
        }
        browser_w
    });
    let send_down = tokio::spawn(async move {
        for chunk in down.chunks(89) {
            app_w.write_all(chunk).await.expect("app write");
        }
        app_w
    });
    let read_all = |mut r: tokio::io::ReadHalf<DuplexStream>, n: usize| async move {
        let mut got = vec![0u8; n];
        r.read_exact(&mut got).await.expect("read");
        (r, got)
    };
    let at_app = tokio::spawn(read_all(app_r, up_len));
    let at_browser = tokio::spawn(read_all(browser_r, down_len));
    let within = Duration::from_secs(20);
    let (app_r2, got_up) = tokio::time::timeout(within, at_app)
        .await
        .expect("every frame upstream in time")
        .expect("join");
    let (browser_r2, got_down) = tokio::time::timeout(within, at_browser)
        .await
        .expect("every frame to the browser in time")
        .expect("join");
    assert!(
        got_up == expect_up,
        "the browser's frames arrive upstream in order"
    );
    assert!(
        got_down == expect_down,
        "the app's frames reach the browser in order"
    );
    let browser_w = send_up.await.expect("join");
    let app_w = send_down.await.expect("join");
    drop((browser_w, browser_r2, app_w, app_r2));
    let stats = task.await.expect("join");
    assert_eq!(stats.frames_to_upstream, FRAMES as u64);
    assert_eq!(stats.frames_to_client, FRAMES as u64);
}
