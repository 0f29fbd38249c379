//! Listeners: TLS with ALPN and SNI, the header read timeout and size
//! limit, and `check-config` on the real binary. HTTP/2 itself (h2c,
//! streams, uploads and downloads, drains) is in `http2.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Version;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::process::command;
use crate::support::tls::Pki;
use crate::support::{base_toml, upstream, TempDir, TestProxy, TOKEN};

/// A proxy with plain and TLS listeners serving `pki`'s certificates, and
/// a host route `demo.apps.test` to an echo upstream.
async fn tls_proxy(pki: &Pki) -> (TestProxy, SocketAddr) {
    let up = upstream::echo().await;
    let proxy = TestProxy::start_with(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        pki.toml()
    ))
    .await;
    proxy.host_route("demo", up.addr, json!({})).await;
    let tls = proxy.tls_addr.expect("TLS listener");
    (proxy, tls)
}

#[tokio::test]
async fn tls_listener_negotiates_h2_by_alpn_and_forwards_https() {
    let pki = Pki::generate();
    let (_proxy, tls) = tls_proxy(&pki).await;
    let client = pki
        .client(tls, &["demo.apps.test"])
        .build()
        .expect("client");
    let resp = client
        .get(format!("https://demo.apps.test:{}/hello", tls.port()))
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("echo json");
    assert_eq!(v["target"], "/hello");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");

    let (alpn, _) = pki
        .handshake(tls, "demo.apps.test", &[b"h2", b"http/1.1"])
        .await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn tls_listener_speaks_http1_to_clients_that_offer_only_http1() {
    let pki = Pki::generate();
    let (_proxy, tls) = tls_proxy(&pki).await;
    let client = pki
        .client(tls, &["demo.apps.test"])
        .http1_only()
        .build()
        .expect("client");
    let resp = client
        .get(format!("https://demo.apps.test:{}/", tls.port()))
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("echo json");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");

    let (alpn, _) = pki.handshake(tls, "demo.apps.test", &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn sni_picks_the_exact_certificate_or_the_apps_wildcard() {
    let pki = Pki::generate();
    let (_proxy, tls) = tls_proxy(&pki).await;
    for (sni, want, which) in [
        ("api.test", &pki.api.der, "api.test"),
        ("demo.apps.test", &pki.wildcard.der, "wildcard"),
        ("other.apps.test", &pki.wildcard.der, "wildcard"),
    ] {
        let (_, got) = pki.handshake(tls, sni, &[b"h2"]).await;
        assert!(got == *want, "SNI {sni} should get the {which} certificate");
    }

    // The same through a verifying client: each name validates against the
    // certificate the proxy picked for it.
    let client = pki
        .client(tls, &["api.test", "other.apps.test"])
        .build()
        .expect("client");
    let health = client
        .get(format!("https://api.test:{}/healthz", tls.port()))
        .send()
        .await
        .expect("api.test over TLS");
    assert_eq!(health.status(), 200);
    let other = client
        .get(format!("https://other.apps.test:{}/", tls.port()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("other.apps.test over TLS");
    assert_eq!(other.status(), 404);
    let v: Value = other.json().await.expect("envelope");
    assert_eq!(v["error"]["code"], "route_not_found");
}

/// Sends `prefix` and nothing more; the proxy must close the connection
/// between ~0.8 s and 3 s (header_read_timeout_secs = 1) without answering
/// anything but a 408.
async fn closed_after_header_read_timeout(prefix: &[u8]) {
    let proxy = TestProxy::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nheader_read_timeout_secs = 1\n",
    )
    .await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(prefix).await.expect("write prefix");
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut got)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "connection still open after 3 s");
    assert!(
        elapsed >= Duration::from_millis(800),
        "closed too early: {elapsed:?}"
    );
    // hyper may say 408 before closing; it must not answer anything else.
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer: {text}"
    );
}

#[tokio::test]
async fn incomplete_request_head_is_closed_after_header_read_timeout() {
    closed_after_header_read_timeout(b"GET / HTTP/1.1\r\nHost: apps.test\r\n").await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_header_read_timeout() {
    closed_after_header_read_timeout(b"").await;
}

#[tokio::test]
async fn stalled_http2_preface_is_closed_after_header_read_timeout() {
    closed_after_header_read_timeout(b"PRI * HTTP/2.0\r\n").await;
}

/// Reads one answer from `s` (a small one, in one read) and checks it is
/// a 200.
async fn read_ok(s: &mut TcpStream) {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Waits, at most `within`, for the proxy to close `s` without sending
/// anything; how long that took.
async fn closed_silently(s: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(within, s.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed without an answer: {read:?}"
    );
    started.elapsed()
}

/// One header-read timer serves all of a connection's requests: each wait
/// for a head must still get the whole timeout, counted from its own
/// start, not from an earlier request's.
#[tokio::test]
async fn each_keep_alive_wait_gets_the_whole_header_read_timeout() {
    let proxy = TestProxy::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nheader_read_timeout_secs = 1\n",
    )
    .await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n";
    for pause in [700, 500] {
        s.write_all(request).await.expect("write");
        read_ok(&mut s).await;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    // The second request came 700 ms into the first wait; the third wait
    // is 500 ms old, past the first wait's due time, with 500 ms left.
    let waited = closed_silently(&mut s, Duration::from_secs(3)).await;
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
}

/// A connection idle past the release point (one second into a wait) lets
/// its buffers go: its next request, whole or in parts, must be read as
/// before; a part of a head already in when that point passes must be
/// kept; and the header-read timeout still closes it in the end.
#[tokio::test]
async fn an_idle_connection_lets_its_buffers_go_and_still_reads_every_byte() {
    let proxy = TestProxy::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nheader_read_timeout_secs = 2\n",
    )
    .await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let (start, rest) = ("GET /healthz HTTP/1.1\r\nHost: ", "api.test\r\n\r\n");
    // (pause before the head's start, pause between its two parts)
    for (before, between) in [(0, 0), (1300, 300), (0, 1300)] {
        tokio::time::sleep(Duration::from_millis(before)).await;
        s.write_all(start.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(between)).await;
        s.write_all(rest.as_bytes()).await.expect("write");
        read_ok(&mut s).await;
    }
    let waited = closed_silently(&mut s, Duration::from_secs(4)).await;
    assert!(
        waited >= Duration::from_millis(1500),
        "closed too early: {waited:?}"
    );
}

#[tokio::test]
async fn oversized_request_headers_get_431_envelope() {
    let up = upstream::echo().await;
    let proxy =
        TestProxy::start_with("[server]\nlisten = [\"127.0.0.1:0\"]\nmax_header_bytes = 2048\n")
            .await;
    proxy.host_route("x", up.addr, json!({})).await;

    let resp = proxy
        .get("x.apps.test", "/")
        .header("x-big", "a".repeat(4096))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 431);
    let cid = resp
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-correlation-id header");
    let v: Value = resp.json().await.expect("envelope");
    assert_eq!(v["error"]["code"], "headers_too_large");
    assert_eq!(v["error"]["correlation_id"], cid.as_str());
    assert_eq!(
        up.connections(),
        0,
        "the oversized request reached the upstream"
    );

    let resp = proxy
        .get("x.apps.test", "/")
        .header("x-big", "a".repeat(1024))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("echo json");
    assert_eq!(v["headers"]["x-big"].as_str().map(str::len), Some(1024));
}

/// Runs `check-config --config FILE` on `toml` with `env` added; returns
/// (success, stdout, stderr).
fn check_config(toml: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = TempDir::new();
    let path = dir.0.join("proxy.toml");
    std::fs::write(&path, base_toml(&dir, toml)).expect("write config");
    let out = command()
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("run platform-proxy check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\n";

#[test]
fn check_config_accepts_a_good_file() {
    let (ok, stdout, stderr) = check_config(GOOD, &[]);
    assert!(ok, "good config rejected: {stderr}");
    assert_eq!(stdout.trim(), "config ok");
}

#[test]
fn check_config_names_the_bad_key() {
    let (ok, _, stderr) = check_config("[server]\nlisten = [\"nope\"]\n", &[]);
    assert!(!ok, "bad config accepted");
    assert!(stderr.contains("server.listen[0]"), "stderr: {stderr}");
}

#[test]
fn check_config_names_a_bad_key_set_by_the_environment() {
    let (ok, _, stderr) = check_config(GOOD, &[("PLATFORM_PROXY_SERVER__LISTEN", "[\"bad\"]")]);
    assert!(!ok, "bad environment override accepted");
    assert!(stderr.contains("server.listen[0]"), "stderr: {stderr}");
}

#[test]
fn check_config_loads_the_certificates() {
    let pki = Pki::generate();
    let tls = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        pki.toml()
    );
    let (ok, stdout, stderr) = check_config(&tls, &[]);
    assert!(ok, "good TLS config rejected: {stderr}");
    assert_eq!(stdout.trim(), "config ok");

    // A key file that holds a certificate instead of a key.
    std::fs::copy(&pki.api.cert, &pki.api.key).expect("spoil key");
    let (ok, _, stderr) = check_config(&tls, &[]);
    assert!(!ok, "unusable key accepted");
    assert!(
        stderr.contains(&pki.api.key.display().to_string()),
        "stderr: {stderr}"
    );
}
