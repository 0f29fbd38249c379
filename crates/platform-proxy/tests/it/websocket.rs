//! WebSocket tunnels end to end (RFC 6455): messages, control frames,
//! handshake headers, close codes, the proxy's own closes (idle, lifetime),
//! refusals and the per-route connection limit.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use crate::support::upstream::{full, serve, ws_echo};
use crate::support::ws::{self, connect, next, open, raw_upgrade, raw_ws_upstream, Ws};
use crate::support::TestProxy;

/// Sends `msg` and expects the same message back.
async fn round_trip(ws: &mut Ws, msg: Message) {
    ws.send(msg.clone()).await.expect("send");
    assert_eq!(next(ws).await, msg);
}

/// Waits for the proxy's Close frame, skipping echoes; returns it and when
/// it arrived.
async fn close_frame(ws: &mut Ws) -> (CloseFrame, Instant) {
    for _ in 0..1000 {
        match next(ws).await {
            Message::Close(Some(f)) => return (f, Instant::now()),
            Message::Close(None) => panic!("close frame without a code"),
            _ => {}
        }
    }
    panic!("no close frame among 1000 messages");
}

#[tokio::test]
async fn text_and_binary_messages_echo_through_host_and_path_routes() {
    let proxy = TestProxy::start().await;
    let up = ws_echo().await;
    proxy.host_route("wsh", up, json!({})).await;
    proxy.path_route("wsp", up, json!({})).await;
    for url in ["ws://wsh.apps.test/", "ws://apps.test/w/wsp/web/ws"] {
        let mut c = open(proxy.addr, url).await;
        round_trip(&mut c, Message::text("hello, tunnel ✓")).await;
        round_trip(&mut c, Message::binary(vec![0u8, 1, 2, 254, 255])).await;
        round_trip(&mut c, Message::text("")).await;
        round_trip(&mut c, Message::binary(vec![7u8; 70_000])).await;
        c.close(None).await.expect("close");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn ping_gets_a_pong_with_the_same_payload() {
    let proxy = TestProxy::start().await;
    proxy.host_route("wsping", ws_echo().await, json!({})).await;
    let mut c = open(proxy.addr, "ws://wsping.apps.test/").await;
    let payload = Bytes::from_static(b"are you there?");
    c.send(Message::Ping(payload.clone())).await.expect("ping");
    assert_eq!(next(&mut c).await, Message::Pong(payload));
    drop(c);
    proxy.stop().await;
}

#[tokio::test]
async fn subprotocol_negotiation_passes_end_to_end() {
    let proxy = TestProxy::start().await;
    proxy
        .host_route("wsproto", ws_echo().await, json!({}))
        .await;
    let (mut c, resp) = connect(
        proxy.addr,
        "ws://wsproto.apps.test/",
        &[("sec-websocket-protocol", "chat.v2, chat.v1")],
    )
    .await
    .expect("handshake");
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok());
    assert_eq!(chosen, Some("chat.v2"));
    round_trip(&mut c, Message::text("in chat.v2")).await;
    drop(c);
    proxy.stop().await;
}

#[tokio::test]
async fn permessage_deflate_offer_and_answer_pass_unchanged() {
    let proxy = TestProxy::start().await;
    let answer = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
    let up = raw_ws_upstream(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=10\r\n",
    )
    .await;
    proxy.host_route("wsdeflate", up.addr, json!({})).await;
    let offer = "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame";
    let mut a = raw_upgrade(
        proxy.addr,
        "wsdeflate.apps.test",
        "/",
        &[("Sec-WebSocket-Extensions", offer)],
    )
    .await;
    assert_eq!(a.status, 101, "{}", a.head);
    assert_eq!(
        a.header("sec-websocket-extensions").as_deref(),
        Some(answer)
    );
    let heads = up.heads();
    assert_eq!(heads.len(), 1);
    assert_eq!(
        ws::header_of(&heads[0], "sec-websocket-extensions").as_deref(),
        Some(offer)
    );
    // A compressed frame (RSV1 set) passes byte for byte; the raw upstream
    // echoes it back verbatim.
    let frame = [0xC1u8, 0x85, 1, 2, 3, 4, 0xf3, 0x4a, 0x4e, 0x4b, 0x05];
    a.stream.write_all(&frame).await.expect("write frame");
    let mut got = a.rest.clone();
    let mut buf = [0u8; 64];
    while got.len() < frame.len() {
        let n = tokio::time::timeout(
            ws::WAIT,
            tokio::io::AsyncReadExt::read(&mut a.stream, &mut buf),
        )
        .await
        .expect("echo within the wait")
        .expect("read echo");
        assert!(n > 0, "tunnel closed before the echo");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, frame);
    drop(a);
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_close_code_reaches_the_client() {
    let proxy = TestProxy::start().await;
    proxy
        .host_route("wsclose", ws_echo().await, json!({}))
        .await;
    let mut c = open(proxy.addr, "ws://wsclose.apps.test/").await;
    c.send(Message::text("close:4000")).await.expect("send");
    let (f, _) = close_frame(&mut c).await;
    assert_eq!(u16::from(f.code), 4000);
    assert_eq!(f.reason.as_str(), "asked to");
    drop(c);
    proxy.stop().await;
}

#[tokio::test]
async fn idle_tunnel_is_closed_with_1001_idle_timeout() {
    let proxy = TestProxy::start().await;
    let limits = json!({"limits": {"websocket_idle_timeout_secs": 1}});
    proxy.host_route("wsidle", ws_echo().await, limits).await;
    let mut c = open(proxy.addr, "ws://wsidle.apps.test/").await;
    let opened = Instant::now();
    let (f, at) = close_frame(&mut c).await;
    let after = at - opened;
    assert_eq!(u16::from(f.code), 1001);
    assert_eq!(f.reason.as_str(), "idle timeout");
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_secs(3),
        "closed after {after:?}"
    );
    drop(c);
    proxy.stop().await;
}

#[tokio::test]
async fn busy_tunnel_is_closed_at_its_maximum_lifetime() {
    let proxy = TestProxy::start().await;
    let limits =
        json!({"limits": {"websocket_max_lifetime_secs": 1, "websocket_idle_timeout_secs": 30}});
    proxy.host_route("wslife", ws_echo().await, limits).await;
    let mut c = open(proxy.addr, "ws://wslife.apps.test/").await;
    let opened = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut echoes = 0u32;
    let (f, after) = loop {
        assert!(
            opened.elapsed() < ws::WAIT,
            "no close within {:?}",
            ws::WAIT
        );
        tokio::select! {
            _ = tick.tick() => {
                // The tunnel may already be closing; a failed send is fine.
                let _ = c.send(Message::text("still here")).await;
            }
            m = tokio::time::timeout(ws::WAIT, c.next()) => {
                match m.expect("message within the wait").expect("stream open").expect("websocket") {
                    Message::Close(Some(f)) => break (f, opened.elapsed()),
                    Message::Text(_) => echoes += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    };
    assert_eq!(u16::from(f.code), 1001);
    assert_eq!(f.reason.as_str(), "maximum connection lifetime reached");
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_secs(3),
        "closed after {after:?}"
    );
    assert!(echoes >= 3, "the tunnel was busy: {echoes} echoes");
    drop(c);
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_refusing_the_upgrade_passes_its_status_through() {
    let proxy = TestProxy::start().await;
    let up = serve(|_req: Request<Incoming>| async move {
        Response::builder()
            .status(403)
            .header("content-type", "text/plain")
            .body(full("no websockets for you"))
            .expect("response")
    })
    .await;
    proxy.host_route("wsno", up.addr, json!({})).await;
    match connect(proxy.addr, "ws://wsno.apps.test/", &[]).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            assert!(
                resp.headers().get("upgrade").is_none(),
                "{:?}",
                resp.headers()
            );
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the upgrade was refused upstream but succeeded"),
    }
    let a = raw_upgrade(proxy.addr, "wsno.apps.test", "/", &[]).await;
    assert_eq!(a.status, 403, "{}", a.head);
    assert_eq!(String::from_utf8_lossy(&a.rest), "no websockets for you");
    proxy.stop().await;
}

#[tokio::test]
async fn max_connections_counts_open_tunnels() {
    let proxy = TestProxy::start().await;
    proxy
        .host_route(
            "wsbusy",
            ws_echo().await,
            json!({"limits": {"max_connections": 1}}),
        )
        .await;
    let url = "ws://wsbusy.apps.test/";
    let mut first = open(proxy.addr, url).await;
    round_trip(&mut first, Message::text("one")).await;
    let refused = raw_upgrade(proxy.addr, "wsbusy.apps.test", "/", &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.head);
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    let v: Value = serde_json::from_slice(&refused.rest).expect("envelope json");
    assert_eq!(v["error"]["code"], "route_busy", "{v}");
    // The first tunnel is still fine.
    round_trip(&mut first, Message::text("still one")).await;
    // Close the first tunnel: handshake, then the client's socket goes.
    first.close(None).await.expect("close");
    let _ = tokio::time::timeout(ws::WAIT, async { while first.next().await.is_some() {} }).await;
    drop(first);
    let mut second = None;
    for _ in 0..200 {
        match connect(proxy.addr, url, &[]).await {
            Ok((c, _)) => {
                second = Some(c);
                break;
            }
            Err(WsError::Http(r)) if r.status() == 429 => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("unexpected handshake error {e}"),
        }
    }
    let mut second =
        second.expect("a slot frees up within 200 tries after the first tunnel closed");
    round_trip(&mut second, Message::text("two")).await;
    drop((second, refused));
    proxy.stop().await;
}

#[tokio::test]
async fn five_mib_binary_message_passes_intact() {
    let proxy = TestProxy::start().await;
    proxy.host_route("wsbig", ws_echo().await, json!({})).await;
    let mut c = open(proxy.addr, "ws://wsbig.apps.test/").await;
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sum = |b: &[u8]| {
        let mut h = DefaultHasher::new();
        b.hash(&mut h);
        h.finish()
    };
    let sent = sum(&data);
    c.send(Message::binary(data)).await.expect("send 5 MiB");
    match next(&mut c).await {
        Message::Binary(b) => {
            assert_eq!(b.len(), 5 * 1024 * 1024);
            assert_eq!(sum(&b), sent, "checksum differs");
        }
        other => panic!("expected binary, got {other:?}"),
    }
    drop(c);
    proxy.stop().await;
}

/// An upstream that greets in the same TCP write as its 101 answer: the
/// proxy's HTTP client has read the greeting's bytes along with the head,
/// and the tunnel must relay them before anything it reads from the socket
/// afterwards.
#[tokio::test]
async fn a_frame_sent_with_the_101_answer_reaches_the_client_first() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let (head, _) = ws::read_head(&mut s).await;
        let key = ws::header_of(&head, "sec-websocket-key").unwrap_or_default();
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        // An unmasked text frame, "greeting", in the same write.
        answer.extend_from_slice(&[0x81, 8]);
        answer.extend_from_slice(b"greeting");
        if s.write_all(&answer).await.is_err() {
            return;
        }
        // Then echo raw bytes back (a masked client frame comes back as is,
        // which tungstenite rejects; answer with a fixed frame instead).
        let mut buf = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await {
            if n == 0
                || s.write_all(&[0x81, 5, b'a', b'f', b't', b'e', b'r'])
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    let proxy = TestProxy::start().await;
    proxy.host_route("wsgreet", up, json!({})).await;
    let mut c = open(proxy.addr, "ws://wsgreet.apps.test/").await;
    assert_eq!(next(&mut c).await, Message::text("greeting"));
    c.send(Message::text("x")).await.expect("send");
    assert_eq!(next(&mut c).await, Message::text("after"));
    drop(c);
    proxy.stop().await;
}

/// A handshake goes upstream on hyper's client, from a map: the fields the
/// server passes on unparsed for other requests (`headers/passed.rs`) are
/// put back into it, once each.
#[tokio::test]
async fn a_handshakes_unread_fields_reach_the_upstream_once_each() {
    let proxy = TestProxy::start().await;
    let up = raw_ws_upstream("").await;
    proxy.host_route("wsfields", up.addr, json!({})).await;
    let a = raw_upgrade(
        proxy.addr,
        "wsfields.apps.test",
        "/",
        &[
            ("User-Agent", "Mozilla/5.0 (X11)"),
            ("Accept-Language", "en"),
            ("Cache-Control", "no-cache"),
            ("accept-language", "de"),
        ],
    )
    .await;
    assert_eq!(a.status, 101, "{}", a.head);
    let heads = up.heads();
    assert_eq!(heads.len(), 1);
    for (name, values) in [
        ("user-agent", &["Mozilla/5.0 (X11)"][..]),
        ("accept-language", &["en", "de"]),
        ("cache-control", &["no-cache"]),
        ("sec-websocket-key", &["dGhlIHNhbXBsZSBub25jZQ=="]),
    ] {
        assert_eq!(
            ws::header_values(&heads[0], name),
            values,
            "{name}: {}",
            heads[0]
        );
    }
    // The client leaves first: a graceful shutdown lets open tunnels run
    // for its whole grace period (30 s by default).
    drop(a);
    proxy.stop().await;
}
