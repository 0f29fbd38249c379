//! Streaming both ways: server-sent events arrive as they are flushed,
//! uploads stream without buffering, body limits hold for declared and
//! undeclared lengths, and a gibibyte each way leaves the real binary's
//! memory flat.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};

use crate::support::process::{ChildProxy, RssSampler};
use crate::support::streams::{counting, generator, now_ms, sink, sse};
use crate::support::upstream::echo;
use crate::support::TestProxy;

const MIB: u64 = 1024 * 1024;

/// A chunked request body of `n` chunks of `size` bytes each.
fn chunked(n: u64, size: usize) -> reqwest::Body {
    let block = Bytes::from(vec![b'u'; size]);
    reqwest::Body::wrap_stream(stream::iter(
        (0..n).map(move |_| Ok::<_, std::io::Error>(block.clone())),
    ))
}

#[tokio::test]
async fn sse_events_arrive_as_they_are_flushed() {
    let proxy = TestProxy::start().await;
    let up = sse(5, Duration::from_millis(300)).await;
    proxy.host_route("sse", up.addr, json!({})).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        proxy
            .get("sse.apps.test", "/events")
            .header("accept", "text/event-stream")
            .header("accept-encoding", "gzip, br, zstd")
            .send(),
    )
    .await
    .expect("response head within 10 s")
    .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(
        resp.headers().get("content-encoding").is_none(),
        "{:?}",
        resp.headers()
    );
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut events: Vec<(u64, u64)> = Vec::new(); // (sent, arrived), ms
    while events.len() < 5 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("next event within 5 s")
            .expect("stream ended early")
            .expect("body chunk");
        let arrived = now_ms();
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let sent: u64 = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|v| v.parse().ok())
                .expect("data line with a timestamp");
            events.push((sent, arrived));
        }
    }
    let end = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("stream end within 5 s");
    assert!(end.is_none(), "more than 5 events");
    println!(
        "sse (sent ms, delay ms): {:?}",
        events.iter().map(|(s, a)| (s, a - s)).collect::<Vec<_>>()
    );
    for (i, (sent, arrived)) in events.iter().enumerate() {
        assert!(
            arrived.saturating_sub(*sent) <= 100,
            "event {i} took {} ms",
            arrived - sent
        );
    }
    for w in events.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            gap >= 200,
            "events bunched: arrivals {gap} ms apart; {events:?}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn sixty_four_mib_chunked_upload_reaches_the_upstream_whole() {
    let proxy = TestProxy::start().await;
    let up = echo().await;
    proxy.path_route("upl", up.addr, json!({})).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(120),
        proxy
            .req(reqwest::Method::POST, "apps.test", "/w/upl/web/upload")
            .body(chunked(64 * 16, 64 * 1024))
            .send(),
    )
    .await
    .expect("upload within 120 s")
    .expect("send");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["body_len"], 64 * MIB, "{v}");
    assert_eq!(v["target"], "/upload");
    assert!(v["headers"].get("content-length").is_none(), "{v}");
    assert_eq!(v["headers"]["transfer-encoding"], "chunked", "{v}");
    proxy.stop().await;
}

#[tokio::test]
async fn route_body_limit_refuses_declared_and_streamed_oversize_bodies() {
    let proxy = TestProxy::start().await;
    let (up, requests) = counting().await;
    proxy
        .host_route("lim", up.addr, json!({"limits": {"max_body_bytes": 1000}}))
        .await;
    let post = |body: reqwest::Body| {
        proxy
            .req(reqwest::Method::POST, "lim.apps.test", "/u")
            .body(body)
            .send()
    };

    let resp = post(vec![b'a'; 1001].into()).await.expect("send 1001");
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        0,
        "a declared oversize body reached the upstream"
    );
    assert_eq!(up.connections(), 0, "the upstream was even connected to");

    let resp = post(chunked(2, 1000)).await.expect("send chunked 2000");
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");

    let resp = post(vec![b'a'; 1000].into()).await.expect("send 1000");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["body_len"], 1000, "{v}");

    let resp = post(chunked(1, 1000)).await.expect("send chunked 1000");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["body_len"], 1000, "{v}");
    proxy.stop().await;
}

/// A host route body for the child's API.
fn route(label: &str, target: SocketAddr) -> Value {
    json!({
        "owner_type": "app_instance", "owner_id": label, "endpoint_name": "web",
        "route_mode": "subdomain", "route_host": label,
        // About carrying bytes, not access.
        "policy": {"public": true},
        "upstream": {"targets": [target.to_string()]},
    })
}

/// Polls `check` (bounded) until the child serves the new route.
async fn until_served<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} not served within 5 s");
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_each_way_streams_in_flat_memory() {
    const TOTAL: u64 = 1024 * MIB;
    const CHUNK: usize = 64 * 1024;
    const LIMIT: u64 = 64 * MIB;
    let child = ChildProxy::serve("").await;
    let down = generator(CHUNK).await;
    let up = sink().await;
    child.create_route(route("down", down.addr)).await;
    child.create_route(route("up", up.addr)).await;
    let get = |n: u64| {
        child
            .req(
                reqwest::Method::GET,
                "down.apps.test",
                &format!("/?bytes={n}"),
            )
            .send()
    };
    let post = |body: reqwest::Body| {
        child
            .req(reqwest::Method::POST, "up.apps.test", "/")
            .body(body)
            .send()
    };
    // Warm both routes (and the upstream pool) with small transfers.
    until_served("down route", || async {
        match get(10).await {
            Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| b.len() == 10),
            _ => false,
        }
    })
    .await;
    until_served("up route", || async {
        match post(chunked(2, 10)).await {
            Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t == "20"),
            _ => false,
        }
    })
    .await;

    // Download.
    let before = child.rss();
    let sampler = RssSampler::start(child.pid());
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), get(TOTAL))
        .await
        .expect("download head within 10 s")
        .expect("download");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut got = 0u64;
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("download stalled for 30 s");
        match chunk {
            Some(c) => got += c.expect("download chunk").len() as u64,
            None => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "download takes over 300 s"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let (peak, samples) = sampler.finish();
    let grew = peak.saturating_sub(before);
    println!(
        "download: {got} bytes in {secs:.1} s = {:.0} MB/s; RSS before {:.1} MiB, peak {:.1} MiB (+{:.1} MiB, {samples} samples)",
        mb(got) / secs,
        mb(before),
        mb(peak),
        mb(grew)
    );
    assert_eq!(got, TOTAL);
    assert!(grew < LIMIT, "download grew RSS by {:.1} MiB", mb(grew));

    // Upload.
    let before = child.rss();
    let sampler = RssSampler::start(child.pid());
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(300),
        post(chunked(TOTAL / CHUNK as u64, CHUNK)),
    )
    .await
    .expect("upload within 300 s")
    .expect("upload");
    let status = resp.status();
    let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("upload answer within 10 s")
        .expect("upload answer");
    let secs = started.elapsed().as_secs_f64();
    let (peak, samples) = sampler.finish();
    let grew = peak.saturating_sub(before);
    println!(
        "upload: {text} bytes in {secs:.1} s = {:.0} MB/s; RSS before {:.1} MiB, peak {:.1} MiB (+{:.1} MiB, {samples} samples)",
        mb(TOTAL) / secs,
        mb(before),
        mb(peak),
        mb(grew)
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, TOTAL.to_string());
    assert!(grew < LIMIT, "upload grew RSS by {:.1} MiB", mb(grew));
}
