use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::*;

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// A raw HTTP/1.1 GET: what the proxy sends, with nothing in between.
async fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n{extra_headers}\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("response within 5 s")
        .expect("read response");
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("end of head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn index_page_is_self_contained_and_uses_only_relative_urls() {
    let app = start().await;
    let reply = get(app.addr, "/", "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = &reply.body;
    for needle in [
        "<title>platform-proxy demo</title>",
        "id=\"ws-log\"",
        "id=\"sse-log\"",
        "id=\"status\"",
    ] {
        assert!(page.contains(needle), "page lacks {needle}");
    }
    assert!(page.contains("new URL('ws', location.href)"));
    assert!(page.contains("new EventSource('events')"));
    assert!(
        !page.contains("://"),
        "no absolute URL and no external resource"
    );
    assert!(!page.contains("src="), "no external scripts or images");
    for marker in ["new WebSocket(", "new EventSource(", "new URL(", "href=\""] {
        for (at, _) in page.match_indices(marker) {
            let arg = page[at + marker.len()..].trim_start_matches(['\'', '"', '`']);
            assert!(
                !arg.starts_with('/'),
                "root-relative URL after {marker}: {}",
                &arg[..20.min(arg.len())]
            );
        }
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn redirect_points_at_the_app_root() {
    let app = start().await;
    let reply = get(app.addr, "/redirect", "").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("/"));
    assert!(!reply.body.is_empty());
    app.shutdown.cancel();
}

#[tokio::test]
async fn cookie_page_counts_visits_and_escapes_forwarded_headers() {
    let app = start().await;
    let first = get(app.addr, "/cookie", "").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("set-cookie"),
        Some("demo_visits=1; Path=/; HttpOnly; SameSite=Lax")
    );
    assert!(first.body.contains(r#"<span id="visits">1</span>"#));
    assert!(first.body.contains("(absent)"));
    assert!(first.body.contains(r#"href="./""#));

    let headers = "Cookie: theme=dark; demo_visits=41\r\n\
                   X-Forwarded-Host: <b>apps.localhost</b>\r\n\
                   X-Forwarded-Prefix: /w/demo/web\r\n\
                   X-Forwarded-Proto: http\r\n\
                   X-Forwarded-For: 127.0.0.1\r\n";
    let next = get(app.addr, "/cookie", headers).await;
    assert_eq!(
        next.header("set-cookie"),
        Some("demo_visits=42; Path=/; HttpOnly; SameSite=Lax")
    );
    assert!(next.body.contains(r#"<span id="visits">42</span>"#));
    assert!(next.body.contains("&lt;b&gt;apps.localhost&lt;/b&gt;"));
    assert!(!next.body.contains("<b>apps"));
    assert!(next.body.contains("/w/demo/web"));
    app.shutdown.cancel();
}

#[tokio::test]
async fn healthz_answers_and_unknown_paths_are_404() {
    let app = start().await;
    let health = get(app.addr, "/healthz", "").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(get(app.addr, "/nope", "").await.status, 404);
    assert_eq!(
        get(app.addr, "/ws", "").await.status,
        426,
        "a plain GET on /ws is refused"
    );
    app.shutdown.cancel();
}

/// Reads a raw `/events` response until it holds `want` events.
async fn read_events(stream: &mut TcpStream, want: usize) -> String {
    let mut seen = String::new();
    let mut buf = [0_u8; 1024];
    while seen.matches("\ndata: ").count() < want {
        let n = stream.read(&mut buf).await.expect("read events");
        assert!(n > 0, "stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

async fn open_events(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        .await
        .expect("send request");
    stream
}

#[tokio::test]
async fn events_stream_one_event_per_second_unbuffered() {
    let app = start().await;
    let mut stream = open_events(app.addr).await;
    let seen = tokio::time::timeout(Duration::from_millis(2500), read_events(&mut stream, 2))
        .await
        .expect("two events within 2.5 s");
    let head = seen
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(seen.contains("id: 1\ndata: 20"), "{seen}");
    assert!(seen.contains("id: 2\ndata: 20"), "{seen}");
    app.shutdown.cancel();
}

async fn open_websocket(addr: SocketAddr) -> (WebSocketStream<TcpStream>, Option<String>) {
    let mut req = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("chat, superchat"),
    );
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("handshake");
    let protocol = resp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (ws, protocol)
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_and_selects_first_protocol() {
    let app = start().await;
    let (mut ws, protocol) = open_websocket(app.addr).await;
    assert_eq!(protocol.as_deref(), Some("chat"));

    for msg in [
        Message::text("hello 1"),
        Message::binary(vec![0_u8, 1, 2, 254, 255]),
    ] {
        ws.send(msg.clone()).await.expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .expect("echo within 2 s")
            .expect("stream open")
            .expect("valid message");
        assert_eq!(echoed, msg);
    }

    ws.close(None).await.expect("send close");
    let reply = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("close reply within 2 s");
    assert!(
        matches!(reply, Some(Ok(Message::Close(_))) | None),
        "{reply:?}"
    );
    app.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_ends_open_websockets_and_event_streams() {
    let app = start().await;
    let mut events = open_events(app.addr).await;
    read_events(&mut events, 1).await;
    let (mut ws, _) = open_websocket(app.addr).await;

    app.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(4), app.task)
        .await
        .expect("serve returns within 4 s of shutdown")
        .expect("serve did not panic");

    let closed = tokio::time::timeout(Duration::from_secs(1), ws.next())
        .await
        .expect("close frame already sent");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a Close(Away) frame, got {other:?}"),
    }
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), events.read_to_end(&mut rest))
        .await
        .expect("event stream ended")
        .expect("read to end");
    assert!(
        TcpStream::connect(app.addr).await.is_err(),
        "listener closed"
    );
}

#[test]
fn rfc3339_utc_formats_known_instants() {
    let at = |secs, millis| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
    assert_eq!(rfc3339_utc(at(0, 0)), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_utc(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
    assert_eq!(
        rfc3339_utc(at(1_709_210_096, 789)),
        "2024-02-29T12:34:56.789Z"
    );
    assert_eq!(
        rfc3339_utc(at(4_102_444_799, 999)),
        "2099-12-31T23:59:59.999Z"
    );
}

#[test]
fn visits_cookie_parsing_tolerates_noise() {
    let with = |cookie: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie).expect("valid header"),
        );
        visits_from_cookies(&headers)
    };
    assert_eq!(visits_from_cookies(&HeaderMap::new()), 0);
    assert_eq!(with("demo_visits=7"), 7);
    assert_eq!(with("a=1;demo_visits=3 ; b=2"), 3);
    assert_eq!(with("demo_visits=lots"), 0);
    assert_eq!(with("xdemo_visits=9"), 0);
}
