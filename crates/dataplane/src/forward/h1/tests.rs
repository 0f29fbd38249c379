//! The client side of an upstream connection against a raw loopback peer:
//! what it writes for a request, and how it frames each kind of response,
//! including every limit crossed by one byte.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::header::{HeaderName, HeaderValue};
use http::Request;
use http_body_util::StreamBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::body::{boxed, empty, full};
use crate::codec::{parse_length, MAX_CHUNK_LINE, MAX_HEADERS};
use pp_testkit::Rng;

/// A connection and the raw upstream end of it.
async fn pair() -> (Box<Conn>, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (upstream, _) = l.accept().await.expect("accept");
    (Conn::new(client, "test"), upstream)
}

fn parts(method: &str, target: &str, headers: &[(&str, &str)]) -> request::Parts {
    let mut b = Request::builder().method(method).uri(target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request").into_parts().0
}

fn streamed(frames: Vec<Frame<Bytes>>) -> ProxyBody {
    let frames: Vec<Result<_, std::io::Error>> = frames.into_iter().map(Ok).collect();
    boxed(StreamBody::new(stream::iter(frames)))
}

async fn send(conn: &mut Conn) -> Result<(), UpstreamError> {
    std::future::poll_fn(|cx| conn.poll_send(cx)).await
}

async fn head(conn: &mut Conn, method: &Method) -> Result<Head, UpstreamError> {
    let m = method.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        std::future::poll_fn(|cx| conn.poll_head(cx, &m)),
    )
    .await
    .expect("a head or an error in time")
}

/// The body's bytes and trailers, read to its end.
async fn body(
    conn: &mut Conn,
    mut framing: Framing,
) -> Result<(Vec<u8>, Option<HeaderMap>), UpstreamError> {
    let mut data = Vec::new();
    let mut trailers = None;
    loop {
        let next = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| conn.poll_body(cx, &mut framing)),
        )
        .await
        .expect("a frame or the end in time")?;
        let Some(frame) = next else {
            return Ok((data, trailers));
        };
        match frame.into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
}

/// What the upstream end receives, until `len` bytes have arrived.
async fn received(upstream: &mut TcpStream, len: usize) -> String {
    let mut got = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(5), upstream.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    String::from_utf8(got).expect("text")
}

#[tokio::test]
async fn request_heads_and_bodies_are_framed_for_the_upstream() {
    let cases: Vec<(&str, request::Parts, ProxyBody, &str)> = vec![
        (
            "no body: the head alone",
            parts("GET", "/a/b?c=1", &[("host", "app"), ("x-two", "1"), ("x-two", "2")]),
            empty(),
            "GET /a/b?c=1 HTTP/1.1\r\nhost: app\r\nx-two: 1\r\nx-two: 2\r\n\r\n",
        ),
        (
            "a body of known size gets its Content-Length",
            parts("POST", "/in", &[("host", "app")]),
            full("hello"),
            "POST /in HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\n\r\nhello",
        ),
        (
            "a declared Content-Length is kept, once",
            parts("PUT", "/in", &[("content-length", "5"), ("content-length", "5")]),
            full("hello"),
            "PUT /in HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
        ),
        (
            "a streamed body goes chunked, trailers included",
            parts("POST", "/in", &[]),
            streamed(vec![
                Frame::data(Bytes::from_static(b"abc")),
                Frame::data(Bytes::new()),
                Frame::data(Bytes::from(vec![b'z'; 26])),
                Frame::trailers(HeaderMap::from_iter([(
                    HeaderName::from_static("x-sum"),
                    HeaderValue::from_static("7"),
                )])),
            ]),
            "POST /in HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n1a\r\nzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n0\r\nx-sum: 7\r\n\r\n",
        ),
    ];
    for (what, parts, body, wire) in cases {
        let (mut conn, mut upstream) = pair().await;
        conn.start(&parts, &Added::new(), body).expect(what);
        send(&mut conn).await.expect(what);
        assert!(conn.is_sent(), "{what}");
        assert_eq!(received(&mut upstream, wire.len()).await, wire, "{what}");
    }
}

/// The client's passed lines go out as they came, after the map's fields
/// and before the proxy's own, in one head.
#[tokio::test]
async fn passed_lines_are_written_between_the_maps_fields_and_the_proxys() {
    use crate::headers::passed::Passed;
    use crate::headers::Sink;
    let client = Bytes::from_static(
        b"GET / HTTP/1.1\r\nUser-Agent: t \r\nHost: app\r\nAccept-Language: en\r\n\r\n",
    );
    let mut passed = Passed::default();
    assert!(passed.take(16..32, 15, false));
    assert!(passed.take(43..64, 21, false));
    passed.seal(&client);
    let mut added = Added::new();
    added.pass(passed);
    added.put(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    let (mut conn, mut upstream) = pair().await;
    conn.start(&parts("GET", "/", &[("host", "app")]), &added, empty())
        .expect("head");
    send(&mut conn).await.expect("sent");
    let wire = "GET / HTTP/1.1\r\nhost: app\r\nUser-Agent: t \r\nAccept-Language: en\r\n\
                x-forwarded-proto: http\r\n\r\n";
    assert_eq!(received(&mut upstream, wire.len()).await, wire);
}

#[tokio::test]
async fn a_body_that_breaks_its_declared_length_fails_the_upload() {
    for (declared, sent, why) in [("3", "hello", "longer"), ("9", "hello", "ended before")] {
        let (mut conn, _upstream) = pair().await;
        let body = streamed(vec![Frame::data(Bytes::from(sent))]);
        conn.start(
            &parts("POST", "/", &[("content-length", declared)]),
            &Added::new(),
            body,
        )
        .expect("head");
        let err = send(&mut conn).await.expect_err("the upload fails");
        assert!(matches!(err, UpstreamError::Upload(_)), "{err}");
        assert!(err.to_string().contains(why), "{err}");
        assert!(
            !conn.is_reusable(),
            "a broken upload leaves the connection unusable"
        );
    }
    let (mut conn, _upstream) = pair().await;
    let bad = parts("POST", "/", &[("content-length", "1x")]);
    assert!(matches!(
        conn.start(&bad, &Added::new(), full("1x")),
        Err(UpstreamError::BadRequest(_))
    ));
}

/// One response case: the raw bytes the upstream sends (and whether it
/// then closes), the request method, and what must come out.
struct Case {
    what: &'static str,
    method: Method,
    raw: Vec<u8>,
    close: bool,
    status: u16,
    body: &'static str,
    keep_alive: bool,
}

fn case(what: &'static str, raw: &str, status: u16, body: &'static str, keep_alive: bool) -> Case {
    Case {
        what,
        method: Method::GET,
        raw: raw.as_bytes().to_vec(),
        close: false,
        status,
        body,
        keep_alive,
    }
}

#[tokio::test]
async fn responses_are_framed_as_rfc_9112_says() {
    let mut cases = vec![
        case("length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", true),
        case(
            "one length repeated",
            "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok",
            200,
            "ok",
            true,
        ),
        case(
            "chunked with an extension and an empty trailer section",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            200,
            "hello world",
            true,
        ),
        case("no length: until the close", "HTTP/1.1 200 OK\r\n\r\nto the end", 200, "to the end", false),
        case("204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", 204, "", true),
        case("304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", 304, "", true),
        case("zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", true),
        case(
            "interim heads are read past",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            201,
            "ok",
            true,
        ),
        case("HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false),
        case(
            "HTTP/1.0 keeps alive when it says so",
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
            200,
            "ok",
            true,
        ),
        case(
            "Connection: close",
            "HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 2\r\n\r\nok",
            200,
            "ok",
            false,
        ),
        case(
            "chunked beside a length: chunked wins, the connection is not trusted",
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            200,
            "ok",
            false,
        ),
        case(
            "a coding after chunked: until the close",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw",
            200,
            "raw",
            false,
        ),
    ];
    let mut head_case = case(
        "HEAD: a length but no body",
        "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
        200,
        "",
        true,
    );
    head_case.method = Method::HEAD;
    cases.push(head_case);
    for c in &mut cases {
        c.close = !c.keep_alive;
    }
    for c in cases {
        let (mut conn, mut upstream) = pair().await;
        upstream.write_all(&c.raw).await.expect("write");
        if c.close {
            upstream.shutdown().await.expect("shutdown");
        }
        let h = head(&mut conn, &c.method).await.expect(c.what);
        assert_eq!(h.status.as_u16(), c.status, "{}", c.what);
        assert_eq!(h.keep_alive, c.keep_alive, "{}", c.what);
        let (got, _) = body(&mut conn, h.framing).await.expect(c.what);
        assert_eq!(String::from_utf8_lossy(&got), c.body, "{}", c.what);
        if c.keep_alive {
            assert!(conn.is_reusable(), "{}: nothing is left over", c.what);
        }
    }
}

#[tokio::test]
async fn header_values_and_trailers_arrive_as_sent() {
    let (mut conn, mut upstream) = pair().await;
    let raw = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Odd: caf\u{e9}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 42\r\n\r\n";
    upstream.write_all(raw.as_bytes()).await.expect("write");
    let h = head(&mut conn, &Method::GET).await.expect("head");
    assert!(
        !h.headers.contains_key("transfer-encoding"),
        "framing fields are the connection's, not the answer's"
    );
    let cookies: Vec<_> = h.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(h.headers["x-odd"].as_bytes(), "caf\u{e9}".as_bytes());
    for gone in ["connection", "keep-alive"] {
        assert!(!h.headers.contains_key(gone), "{gone}");
    }
    let (data, trailers) = body(&mut conn, h.framing).await.expect("body");
    assert_eq!(data, b"ok");
    assert_eq!(trailers.expect("trailers")["x-checksum"], "42");
}

#[tokio::test]
async fn a_response_dribbled_a_byte_at_a_time_reads_the_same() {
    let (mut conn, mut upstream) = pair().await;
    upstream.set_nodelay(true).expect("nodelay");
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n";
    let writer = tokio::spawn(async move {
        for b in raw {
            upstream.write_all(&[*b]).await.expect("write");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        upstream
    });
    let h = head(&mut conn, &Method::GET).await.expect("head");
    let (data, trailers) = body(&mut conn, h.framing).await.expect("body");
    assert_eq!(data, b"abcdefg");
    assert_eq!(trailers.expect("trailers")["x-t"], "1");
    assert!(conn.is_reusable());
    drop(writer.await.expect("writer"));
}

#[tokio::test]
async fn a_body_whose_end_is_in_the_buffer_ends_with_its_last_frame() {
    let (mut conn, mut upstream) = pair().await;
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    upstream.write_all(raw).await.expect("write");
    // Wait until all of it can be read at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let h = head(&mut conn, &Method::GET).await.expect("head");
    let mut framing = h.framing;
    let first = std::future::poll_fn(|cx| conn.poll_body(cx, &mut framing))
        .await
        .expect("frame")
        .expect("data");
    assert_eq!(first.into_data().expect("data"), "ok");
    assert_eq!(framing, Framing::Done, "the last chunk was read past");
}

#[tokio::test]
async fn malformed_or_oversized_responses_are_protocol_errors() {
    let big = |n: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
            "v".repeat(n)
        )
    };
    let fields = |n: usize| {
        let mut s = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..n {
            s.push_str(&format!("X-F{i}: 1\r\n"));
        }
        s + "Content-Length: 0\r\n\r\n"
    };
    // Heads at the limits pass; one over fails.
    let fit = big(MAX_HEAD - 64);
    let (mut conn, mut upstream) = pair().await;
    upstream.write_all(fit.as_bytes()).await.expect("write");
    head(&mut conn, &Method::GET)
        .await
        .expect("a head just under the limit");
    let (mut conn, mut upstream) = pair().await;
    upstream
        .write_all(fields(MAX_HEADERS - 1).as_bytes())
        .await
        .expect("write");
    head(&mut conn, &Method::GET)
        .await
        .expect("exactly the most fields");

    let cases = [
        ("head too large", big(MAX_HEAD)),
        ("too many fields", fields(MAX_HEADERS)),
        (
            "too many fields in an informational head",
            format!(
                "HTTP/1.1 103 Early Hints\r\n{}\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                "Link: </s.css>\r\n".repeat(MAX_HEADERS + 1)
            ),
        ),
        (
            "conflicting lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".into(),
        ),
        (
            "negative length",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".into(),
        ),
        ("not HTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n".into()),
        (
            "a switch nobody asked for",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n".into(),
        ),
    ];
    for (what, raw) in cases {
        let (mut conn, mut upstream) = pair().await;
        upstream.write_all(raw.as_bytes()).await.expect("write");
        let err = head(&mut conn, &Method::GET).await.expect_err(what);
        assert!(matches!(err, UpstreamError::Protocol(_)), "{what}: {err}");
    }

    let long_line = format!("{};{}\r\n", 1, "e".repeat(MAX_CHUNK_LINE));
    let bodies = [
        (
            "a chunk size that is not hex",
            "zz\r\nok\r\n0\r\n\r\n".to_owned(),
        ),
        (
            "chunk data without its CRLF",
            "2\r\nokXX0\r\n\r\n".to_owned(),
        ),
        ("a chunk-size line over the limit", long_line),
    ];
    for (what, chunks) in bodies {
        let (mut conn, mut upstream) = pair().await;
        let raw = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
        upstream.write_all(raw.as_bytes()).await.expect("write");
        let h = head(&mut conn, &Method::GET).await.expect("head");
        let err = body(&mut conn, h.framing).await.expect_err(what);
        assert!(matches!(err, UpstreamError::Protocol(_)), "{what}: {err}");
    }
}

#[tokio::test]
async fn an_upstream_that_closes_early_is_told_apart_from_a_whole_response() {
    let (mut conn, upstream) = pair().await;
    drop(upstream);
    let err = head(&mut conn, &Method::GET).await.expect_err("no head");
    assert!(matches!(err, UpstreamError::Closed(_)), "{err}");

    for (what, raw) in [
        (
            "a length body cut short",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ),
        (
            "a chunked body cut short",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ),
    ] {
        let (mut conn, mut upstream) = pair().await;
        upstream.write_all(raw.as_bytes()).await.expect("write");
        upstream.shutdown().await.expect("shutdown");
        let h = head(&mut conn, &Method::GET).await.expect("head");
        let err = body(&mut conn, h.framing).await.expect_err(what);
        assert!(matches!(err, UpstreamError::Closed(_)), "{what}: {err}");
    }
}

#[tokio::test]
async fn a_resting_connection_is_usable_until_the_upstream_closes_or_talks() {
    let (conn, upstream) = pair().await;
    assert!(conn.is_usable());
    drop(upstream);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!conn.is_usable(), "closed by the upstream");

    let (conn, mut upstream) = pair().await;
    upstream
        .write_all(b"HTTP/1.1 200 OK\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!conn.is_usable(), "bytes nobody asked for");
}

#[tokio::test]
async fn a_failed_bodiless_exchange_on_a_rested_connection_may_go_again() {
    let (mut conn, upstream) = pair().await;
    conn.reused = true;
    conn.start(
        &parts("GET", "/again", &[("host", "app")]),
        &Added::new(),
        empty(),
    )
    .expect("head");
    drop(upstream);
    send(&mut conn)
        .await
        .expect("written before the close is seen");
    let err = head(&mut conn, &Method::GET).await.expect_err("closed");
    assert!(conn.may_retry(&err), "{err}");
    let again = conn.take_head().expect("the head");
    assert_eq!(again, b"GET /again HTTP/1.1\r\nhost: app\r\n\r\n");

    // With a body, the request cannot be rebuilt from its head.
    let (mut conn, upstream) = pair().await;
    conn.reused = true;
    conn.start(&parts("PUT", "/", &[]), &Added::new(), full("data"))
        .expect("head");
    send(&mut conn).await.expect("written");
    drop(upstream);
    let err = head(&mut conn, &Method::PUT).await.expect_err("closed");
    assert!(!conn.may_retry(&err));
    assert!(conn.take_head().is_none());
}

#[test]
fn lengths_are_digits_only() {
    for (s, want) in [
        ("0", Some(0)),
        ("1024", Some(1024)),
        ("18446744073709551615", Some(u64::MAX)),
        ("18446744073709551616", None),
        ("", None),
        ("+1", None),
        ("1 ", None),
        ("0x10", None),
    ] {
        assert_eq!(parse_length(s.as_bytes()), want, "{s:?}");
    }
}

#[tokio::test]
async fn a_connection_field_naming_other_fields_stays_for_the_hop_by_hop_pass() {
    let (mut conn, mut upstream) = pair().await;
    let raw = "HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: 1\r\nContent-Length: 0\r\n\r\n";
    upstream.write_all(raw.as_bytes()).await.expect("write");
    let mut h = head(&mut conn, &Method::GET).await.expect("head");
    assert!(!h.keep_alive);
    assert_eq!(h.headers["connection"], "close, X-Internal");
    crate::headers::hop::strip(&mut h.headers, false);
    let left: Vec<_> = h.headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, ["content-length"]);
}

#[tokio::test]
async fn field_names_remembered_from_the_last_answer_never_mislabel_the_next() {
    let (mut conn, mut upstream) = pair().await;
    let answers = [
        "HTTP/1.1 200 OK\r\nX-App: 1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
        // Same names, same places: taken from the last answer.
        "HTTP/1.1 200 OK\r\nX-App: 2\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok",
        // Other names, other case, more of them.
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-App: 3\r\nX-Other: 4\r\nX-Last: 5\r\n\r\nok",
        // Names of the same lengths in the same places, a byte apart.
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-Apq: 6\r\nX-Othes: 7\r\nX-Lass: 8\r\n\r\nok",
        // A long name, then one a byte apart in its middle.
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-Long-Field-Name-Alpha-One: 9\r\n\r\nok",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-Long-Field-Name-Alphb-One: 10\r\n\r\nok",
    ];
    let mut seen = Vec::new();
    for raw in answers {
        upstream.write_all(raw.as_bytes()).await.expect("write");
        let h = head(&mut conn, &Method::GET).await.expect("head");
        body(&mut conn, h.framing).await.expect("body");
        let mut fields: Vec<String> = h
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_str().expect("ascii")))
            .collect();
        fields.sort();
        seen.push(fields.join(" "));
    }
    assert_eq!(
        seen,
        [
            "content-length=2 content-type=text/plain x-app=1",
            "content-length=2 content-type=text/html x-app=2",
            "content-length=2 x-app=3 x-last=5 x-other=4",
            "content-length=2 x-apq=6 x-lass=8 x-othes=7",
            "content-length=2 x-long-field-name-alpha-one=9",
            "content-length=2 x-long-field-name-alphb-one=10",
        ]
    );
}

/// A response carrying `body`, framed one of three ways, and whether the
/// connection stays usable after it.
fn framed(rng: &mut Rng, body: &[u8]) -> (Vec<u8>, bool) {
    match rng.below(3) {
        0 => {
            let mut raw =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            raw.extend_from_slice(body);
            (raw, true)
        }
        1 => {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut rest = body;
            while !rest.is_empty() {
                let n = (1 + rng.below(300)).min(rest.len());
                raw.extend_from_slice(format!("{n:x}").as_bytes());
                if rng.below(4) == 0 {
                    raw.extend_from_slice(b";ext=v");
                }
                raw.extend_from_slice(b"\r\n");
                raw.extend_from_slice(&rest[..n]);
                raw.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            raw.extend_from_slice(b"0\r\n");
            if rng.below(2) == 0 {
                raw.extend_from_slice(b"X-Trailer: t\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            (raw, true)
        }
        _ => {
            let mut raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            raw.extend_from_slice(body);
            (raw, false)
        }
    }
}

/// Writes `raw` in pieces of random size, letting the reader run between
/// them, then closes the connection.
fn dribble(mut upstream: TcpStream, raw: Vec<u8>, seed: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Rng(seed | 1);
        let mut rest = &raw[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(64)).min(rest.len());
            if upstream.write_all(&rest[..n]).await.is_err() {
                return;
            }
            rest = &rest[n..];
            tokio::task::yield_now().await;
        }
        let _ = upstream.shutdown().await;
    })
}

#[tokio::test]
async fn random_framings_read_in_random_pieces_give_back_the_body() {
    let mut rng = Rng(0x5eed_0001);
    for case in 0..150 {
        let len = rng.below(2_000);
        let sent: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let (raw, keep_alive) = framed(&mut rng, &sent);
        let (mut conn, upstream) = pair().await;
        let writer = dribble(upstream, raw, rng.next_u64());
        let h = head(&mut conn, &Method::GET).await.expect("head");
        assert_eq!(h.keep_alive, keep_alive, "case {case}");
        let (got, _) = body(&mut conn, h.framing).await.expect("body");
        assert!(
            got == sent,
            "case {case}: {} bytes back of {len}",
            got.len()
        );
        writer.await.expect("writer");
    }
}

#[tokio::test]
async fn mangled_responses_end_in_an_answer_or_an_error_never_a_panic() {
    let mut rng = Rng(0x5eed_0002);
    let mut errors = 0;
    let mut passed = 0;
    for i in 0..300 {
        let len = rng.below(600);
        let sent: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let (mut raw, _) = framed(&mut rng, &sent);
        for _ in 0..=rng.below(4) {
            let at = rng.below(raw.len());
            match rng.below(3) {
                0 => raw[at] = rng.next_u64() as u8,
                1 => raw.insert(at, b"\r\n:;0 \t\x00\xff"[rng.below(9)]),
                _ => {
                    raw.remove(at);
                }
            }
        }
        let (mut conn, upstream) = pair().await;
        // Every other one may pass its fields on as they came: what passes
        // is whole field lines, whatever the mangling left.
        conn.verbatim = i % 2 == 0;
        let writer = dribble(upstream, raw, rng.next_u64());
        // The upstream closes after its bytes: every case ends, whatever
        // the mangling did to the framing.
        let outcome = match head(&mut conn, &Method::GET).await {
            Ok(h) => {
                if let Some(v) = &h.verbatim {
                    let section = [v.lines(), b"\r\n"].concat();
                    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let parsed = httparse::parse_headers(&section, &mut slots);
                    assert_eq!(
                        parsed.map(|s| s.is_complete()),
                        Ok(true),
                        "{:?}",
                        String::from_utf8_lossy(v.lines())
                    );
                    let lf = v.lines().iter().filter(|b| **b == b'\n').count();
                    let crlf = v.lines().windows(2).filter(|w| w == b"\r\n").count();
                    assert_eq!(lf, crlf, "every line passed on ends in CRLF");
                    passed += 1;
                }
                body(&mut conn, h.framing).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        errors += usize::from(outcome.is_err());
        writer.await.expect("writer");
    }
    // Mangling mostly breaks something; a check that everything passed
    // would mean the parser accepts anything.
    assert!(
        errors > 100,
        "only {errors} of 300 mangled responses were refused"
    );
    assert!(passed > 10, "only {passed} heads passed on verbatim");
}

/// A chunked answer carrying `ok` and the trailer section `trailers` (its
/// field lines), read to its end on a fresh connection.
async fn with_trailers(trailers: &str) -> Result<(Vec<u8>, Option<HeaderMap>), UpstreamError> {
    let (mut conn, mut upstream) = pair().await;
    let raw = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n{trailers}\r\n"
    );
    let writer = tokio::spawn(async move {
        let _ = upstream.write_all(raw.as_bytes()).await;
        upstream
    });
    let h = head(&mut conn, &Method::GET).await.expect("head");
    let got = body(&mut conn, h.framing).await;
    drop(writer.await.expect("writer"));
    got
}

#[tokio::test]
async fn a_trailer_section_passes_at_its_limit_and_fails_past_it() {
    use crate::codec::MAX_TRAILERS;
    // `X-T: <value>\r\n\r\n` is the value plus 7 bytes.
    for (value_len, fits) in [(MAX_TRAILERS - 1_000, true), (MAX_TRAILERS + 1, false)] {
        let got = with_trailers(&format!("X-T: {}\r\n", "t".repeat(value_len))).await;
        if fits {
            let (data, trailers) = got.expect("trailers under the limit");
            assert_eq!(data, b"ok");
            assert_eq!(trailers.expect("trailers")["x-t"].len(), value_len);
        } else {
            let err = got.expect_err("trailers past the limit");
            assert!(matches!(err, UpstreamError::Protocol(_)), "{err}");
        }
    }
}

#[tokio::test]
async fn a_trailer_section_holds_at_most_the_field_limit() {
    for (count, fits) in [(MAX_HEADERS, true), (MAX_HEADERS + 1, false)] {
        let trailers: String = (0..count).map(|i| format!("X-T{i}: 1\r\n")).collect();
        let got = with_trailers(&trailers).await;
        if fits {
            let (data, trailers) = got.expect("trailers at the limit");
            assert_eq!(data, b"ok");
            assert_eq!(trailers.expect("trailers").len(), count);
        } else {
            let err = got.expect_err("trailers past the limit");
            assert!(matches!(err, UpstreamError::Protocol(_)), "{err}");
        }
    }
}

/// The connection keeps one response timer across its exchanges, armed at
/// an earlier exchange's due time: a later exchange must still time out at
/// its own due time, neither at the earlier one nor never.
#[tokio::test]
async fn each_exchange_on_a_kept_connection_times_out_at_its_own_due_time() {
    let timeout = Duration::from_millis(400);
    let (mut conn, mut upstream) = pair().await;
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let request = "GET / HTTP/1.1\r\nhost: app\r\n\r\n";
    // Answered at once: the timer is made, armed for 400 ms from now.
    conn.start(
        &parts("GET", "/", &[("host", "app")]),
        &Added::new(),
        empty(),
    )
    .expect("head");
    let answer = async {
        received(&mut upstream, request.len()).await;
        upstream.write_all(ok.as_bytes()).await.expect("write");
        upstream
    };
    let (head, back) = tokio::join!(
        crate::forward::pool::exchange(&mut conn, &Method::GET, false, timeout),
        answer
    );
    upstream = back;
    assert_eq!(head.expect("answered").status, StatusCode::OK);
    conn.settle();
    // 250 ms later the next exchange goes unanswered: the earlier due time
    // passes 150 ms into it, its own only 400 ms in.
    tokio::time::sleep(Duration::from_millis(250)).await;
    conn.start(
        &parts("GET", "/", &[("host", "app")]),
        &Added::new(),
        empty(),
    )
    .expect("head");
    let started = std::time::Instant::now();
    let late = crate::forward::pool::exchange(&mut conn, &Method::GET, false, timeout);
    let err = tokio::time::timeout(Duration::from_secs(5), late)
        .await
        .expect("timed out in the end")
        .expect_err("nothing was answered");
    let waited = started.elapsed();
    assert!(matches!(err, UpstreamError::Timeout), "{err}");
    assert!(waited >= timeout, "timed out early, after {waited:?}");
    assert!(
        waited < Duration::from_secs(2),
        "timed out late, after {waited:?}"
    );
    assert_eq!(received(&mut upstream, request.len()).await, request);
}

/// Counts the wake-ups of the task it stands for.
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A connection put back to rest must not keep the last exchange's task:
/// its response timer, still armed, would wake that task for nothing when
/// it fires (and keep it allocated until then), whatever budget the task
/// has left.
#[tokio::test]
async fn a_resting_connection_wakes_no_task_when_its_timer_fires() {
    let timeout = Duration::from_millis(200);
    let (mut conn, mut upstream) = pair().await;
    conn.start(
        &parts("GET", "/", &[("host", "app")]),
        &Added::new(),
        empty(),
    )
    .expect("head");
    let wakes = std::sync::Arc::new(Wakes(std::sync::atomic::AtomicUsize::new(0)));
    let waker = std::task::Waker::from(std::sync::Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    let head = {
        let exchange = crate::forward::pool::exchange(&mut conn, &Method::GET, false, timeout);
        tokio::pin!(exchange);
        // The first poll sends and waits: the timer is armed with this task.
        assert!(exchange.as_mut().poll(&mut cx).is_pending());
        let request = "GET / HTTP/1.1\r\nhost: app\r\n\r\n";
        received(&mut upstream, request.len()).await;
        upstream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .expect("write");
        loop {
            if let Poll::Ready(head) = exchange.as_mut().poll(&mut cx) {
                break head;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    assert_eq!(head.expect("answered").status, StatusCode::OK);
    // Put back to rest with the task's budget spent, as after a long
    // body read without a wait: a timer polled within the budget would
    // return before taking the new waker.
    std::future::poll_fn(|cx| {
        while std::pin::pin!(tokio::task::consume_budget())
            .poll(cx)
            .is_ready()
        {}
        conn.settle();
        Poll::Ready(())
    })
    .await;
    let before = wakes.0.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(3 * timeout).await;
    assert_eq!(
        wakes.0.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "the resting connection's timer woke the last exchange's task"
    );
}

/// The head `raw` answers, read by a connection that may pass its fields on
/// verbatim, and the body after it.
async fn verbatim_head(raw: &str) -> (Head, Vec<u8>) {
    let (mut conn, mut upstream) = pair().await;
    conn.verbatim = true;
    upstream.write_all(raw.as_bytes()).await.expect("write");
    let h = head(&mut conn, &Method::GET).await.expect("head");
    let (data, _) = body(&mut conn, h.framing).await.expect("body");
    (h, data)
}

#[tokio::test]
async fn an_answer_no_step_acts_on_passes_its_lines_as_they_came_without_the_framing_ones() {
    // nginx's order: its `Connection` and `Keep-Alive` between the others.
    let raw = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\n\
               Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\
               Keep-Alive: timeout=5\r\nX-App:  spaced   \r\nETag: \"a\"\r\nx-app: again\r\n\r\nhello";
    let (h, data) = verbatim_head(raw).await;
    let v = h.verbatim.expect("passed on verbatim");
    assert_eq!(
        std::str::from_utf8(v.lines()).expect("text"),
        "Server: nginx\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\nContent-Type: text/plain\r\n\
         Content-Length: 5\r\nX-App:  spaced   \r\nETag: \"a\"\r\nx-app: again\r\n",
        "case, order, repeats and blanks kept; the connection's fields left out"
    );
    assert_eq!(v.length(), Some(5));
    assert!(v.dated());
    assert!(h.headers.is_empty(), "the map is left for the proxy's own");
    assert!(h.keep_alive);
    // Moving the lines together leaves the body after the head alone.
    assert_eq!(data, b"hello");
}

#[tokio::test]
async fn an_answer_without_date_or_length_says_so_and_one_with_no_field_left_passes_none() {
    let (h, data) = verbatim_head(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    )
    .await;
    let v = h.verbatim.expect("verbatim");
    assert_eq!(v.lines(), b"X-A: 1\r\n");
    assert_eq!((v.length(), v.dated()), (None, false));
    assert_eq!(data, b"ok");
    let (h, _) = verbatim_head("HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n").await;
    assert_eq!(h.verbatim.expect("verbatim").lines(), b"");
}

#[tokio::test]
async fn each_name_an_answer_step_acts_on_makes_the_answer_a_map() {
    for field in [
        "Location: /next",
        "Content-Location: /here",
        "Set-Cookie: a=1",
        "X-Correlation-Id: upstream-id",
        "Connection: X-Secret",
        "Upgrade: h2c",
        "Proxy-Authenticate: Basic",
        "Trailer: X-Sum",
        "TE: trailers",
    ] {
        let raw = format!("HTTP/1.1 200 OK\r\nX-Before: 1\r\n{field}\r\nContent-Length: 0\r\n\r\n");
        let (h, _) = verbatim_head(&raw).await;
        assert!(h.verbatim.is_none(), "{field} passed verbatim");
        let (name, value) = field.split_once(": ").expect("field");
        assert_eq!(h.headers[name], value, "{field} in the map");
        assert_eq!(h.headers["x-before"], "1");
    }
}

#[tokio::test]
async fn bare_line_feeds_a_204_and_a_request_that_asks_for_a_map_get_one() {
    // A line ended by a bare LF is read, not passed on as it came.
    let (h, _) = verbatim_head("HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n").await;
    assert!(h.verbatim.is_none());
    assert_eq!(h.headers["x-a"], "1");
    let (h, _) = verbatim_head("HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 0\n\n").await;
    assert!(h.verbatim.is_none());
    // A 204's stray length is left out by the map's writer only.
    let (h, _) = verbatim_head("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").await;
    assert!(h.verbatim.is_none());
    // Without the request's leave (an HTTP/2 client), never.
    let (mut conn, mut upstream) = pair().await;
    upstream
        .write_all(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write");
    let h = head(&mut conn, &Method::GET).await.expect("head");
    assert!(h.verbatim.is_none());
    assert_eq!(h.headers["x-a"], "1");
}
