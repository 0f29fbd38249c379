use super::*;
use tokio::io::duplex;

fn limits(idle_ms: u64, life_ms: u64) -> TunnelLimits {
    TunnelLimits {
        idle: Duration::from_millis(idle_ms),
        max_lifetime: Duration::from_millis(life_ms),
    }
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
    let (client, mut browser) = duplex(1 << 20);
    let (upstream, mut app) = duplex(1 << 20);
    let task = tokio::spawn(relay(
        client,
        upstream,
        limits(5000, 60_000),
        CancellationToken::new(),
        std::future::pending(),
    ));
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
    let (client, mut browser) = duplex(4096);
    let (upstream, mut app) = duplex(4096);
    let task = tokio::spawn(relay(
        client,
        upstream,
        limits(200, 60_000),
        CancellationToken::new(),
        std::future::pending(),
    ));
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
    let (client, mut browser) = duplex(1 << 16);
    let (upstream, mut app) = duplex(1 << 16);
    let task = tokio::spawn(relay(
        client,
        upstream,
        limits(10_000, 400),
        CancellationToken::new(),
        std::future::pending(),
    ));
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
    let (client, mut browser) = duplex(4096);
    let (upstream, _app) = duplex(4096);
    let drain = CancellationToken::new();
    let task = tokio::spawn(relay(
        client,
        upstream,
        limits(10_000, 60_000),
        drain.clone(),
        std::future::pending(),
    ));
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
    let (client, mut browser) = duplex(4096);
    let (upstream, mut app) = duplex(4096);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay(
        client,
        upstream,
        limits(10_000, 60_000),
        CancellationToken::new(),
        async move {
            let _ = rx.await;
            "user signed out"
        },
    ));
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
    let (client, mut browser) = duplex(4096);
    let (upstream, app) = duplex(4096);
    let task = tokio::spawn(relay(
        client,
        upstream,
        limits(10_000, 60_000),
        CancellationToken::new(),
        std::future::pending(),
    ));
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
