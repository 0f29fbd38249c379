//! Request heads as the server reads them: framing, connection facts, the
//! forms of request target it takes, and each limit crossed.

use http::Version;

use super::*;
use crate::codec::MAX_HEADERS;

fn parsed(raw: &str, max_head: usize) -> Result<Option<Head>, HeadError> {
    let mut buf = BytesMut::from(raw.as_bytes());
    parse_head(
        &mut buf,
        max_head,
        &mut Vec::new(),
        &mut codec::Names::default(),
    )
}

#[test]
fn a_connections_heads_read_their_own_names_whatever_the_last_one_had() {
    let mut names = codec::Names::default();
    let mut read = |raw: &str| {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, 64 * 1024, &mut Vec::new(), &mut names)
    };
    let heads = [
        "GET / HTTP/1.1\r\nHost: a\r\nX-Trace: 1\r\nCookie: c=1\r\n\r\n",
        // The same names in the same places, one spelled otherwise.
        "GET / HTTP/1.1\r\nHost: b\r\nx-trace: 2\r\nCookie: c=2\r\n\r\n",
        // Other names in those places, and one more.
        "GET / HTTP/1.1\r\nX-Trace: 3\r\nHost: c\r\nOrigin: http://c\r\nX-New: n\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: d\r\n\r\n",
    ];
    let want: [&[(&str, &str)]; 4] = [
        &[("host", "a"), ("x-trace", "1"), ("cookie", "c=1")],
        &[("host", "b"), ("x-trace", "2"), ("cookie", "c=2")],
        &[
            ("x-trace", "3"),
            ("host", "c"),
            ("origin", "http://c"),
            ("x-new", "n"),
        ],
        &[("host", "d")],
    ];
    for (raw, want) in heads.iter().zip(want) {
        let head = read(raw).expect("parses").expect("complete");
        let got: Vec<(&str, &str)> = head
            .parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().expect("text")))
            .collect();
        assert_eq!(got, want, "{raw:?}");
    }
    // A name that is no token is refused even where a valid one stood.
    assert!(matches!(
        read("GET / HTTP/1.1\r\nHo(st: e\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
}

fn head(raw: &str) -> Head {
    match parsed(raw, 64 * 1024) {
        Ok(Some(h)) => h,
        Ok(None) => panic!("incomplete: {raw:?}"),
        Err(e) => panic!("refused: {raw:?}: {e:?}"),
    }
}

#[test]
fn heads_say_how_their_body_and_connection_go() {
    let cases: &[(&str, Framing, bool, bool, bool)] = &[
        // (head, body, keep-alive, expect 100-continue, upgrade)
        (
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Framing::Done,
            true,
            false,
            false,
        ),
        (
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            Framing::Done,
            false,
            false,
            false,
        ),
        ("GET / HTTP/1.0\r\n\r\n", Framing::Done, false, false, false),
        (
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            Framing::Done,
            true,
            false,
            false,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            Framing::Length(5),
            true,
            false,
            false,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            Framing::Length(5),
            true,
            false,
            false,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            Framing::Done,
            true,
            false,
            false,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
            Framing::Chunked(codec::Chunk::Size),
            true,
            false,
            false,
        ),
        (
            "PUT / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            Framing::Length(3),
            true,
            true,
            false,
        ),
        // Nothing to continue to without a body.
        (
            "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            Framing::Done,
            true,
            false,
            false,
        ),
        (
            "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
            Framing::Done,
            true,
            false,
            true,
        ),
        // An upgrade token without the field asks for nothing.
        (
            "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            Framing::Done,
            true,
            false,
            false,
        ),
    ];
    for (raw, body, keep_alive, expect_continue, upgrade) in cases {
        let h = head(raw);
        assert_eq!(h.body, *body, "{raw:?}");
        assert_eq!(h.keep_alive, *keep_alive, "{raw:?}");
        assert_eq!(h.expect_continue, *expect_continue, "{raw:?}");
        assert_eq!(h.upgrade, *upgrade, "{raw:?}");
    }
}

#[test]
fn request_targets_are_origin_absolute_or_asterisk_form() {
    for (raw, path) in [
        ("GET /a/b?c=d HTTP/1.1\r\n\r\n", "/a/b"),
        ("GET http://app.example/x HTTP/1.1\r\n\r\n", "/x"),
        ("OPTIONS * HTTP/1.1\r\n\r\n", "*"),
    ] {
        assert_eq!(head(raw).parts.uri.path(), path, "{raw:?}");
    }
    for raw in [
        "GET x HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "CONNECT app.example:443 HTTP/1.1\r\n\r\n",
        "GET app.example:80 HTTP/1.1\r\n\r\n",
    ] {
        assert!(
            matches!(parsed(raw, 4096), Err(HeadError::Malformed(_))),
            "{raw:?}"
        );
    }
}

#[test]
fn header_values_are_slices_of_the_head_as_sent() {
    let h = head("GET / HTTP/1.1\r\nHost: a.example\r\nCookie: x=1\r\ncookie: y=2\r\nX-Odd: caf\u{e9}\r\n\r\n");
    let cookies: Vec<_> = h.parts.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["x=1", "y=2"]);
    assert_eq!(h.parts.headers["host"], "a.example");
    assert_eq!(h.parts.headers["x-odd"].as_bytes(), "caf\u{e9}".as_bytes());
    assert_eq!(h.parts.version, Version::HTTP_11);
}

#[test]
fn ambiguous_or_broken_heads_are_refused() {
    for raw in [
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        // A coding the proxy would strip without undoing, and chunked twice.
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        // Two hosts: routing and the upstream could each take another.
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "\x16\x03\x01\x00\x05hello\r\n\r\n",
    ] {
        assert!(
            matches!(parsed(raw, 4096), Err(HeadError::Malformed(_))),
            "{raw:?}"
        );
    }
}

#[test]
fn head_limits_pass_at_the_bound_and_refuse_past_it() {
    let sized = |n: usize| {
        let fixed = "GET / HTTP/1.1\r\nX: \r\n\r\n".len();
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(n - fixed))
    };
    assert!(
        matches!(parsed(&sized(4096), 4096), Ok(Some(_))),
        "exactly the limit"
    );
    assert!(matches!(
        parsed(&sized(4097), 4096),
        Err(HeadError::TooLarge)
    ));
    // Incomplete and already past the limit: refused without waiting.
    let partial = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(5000));
    assert!(matches!(parsed(&partial, 4096), Err(HeadError::TooLarge)));
    assert!(matches!(parsed("GET / HTTP/1.1\r\nHost:", 4096), Ok(None)));
    let fields = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..n {
            s.push_str(&format!("X-{i}: 1\r\n"));
        }
        s + "\r\n"
    };
    assert!(matches!(
        parsed(&fields(MAX_HEADERS), 64 * 1024),
        Ok(Some(_))
    ));
    assert!(matches!(
        parsed(&fields(MAX_HEADERS + 1), 64 * 1024),
        Err(HeadError::TooLarge)
    ));
}

#[tokio::test]
async fn a_body_outliving_its_request_never_reads_the_next_ones_bytes() {
    use http_body_util::BodyExt;
    let (client, mut peer) = tokio::io::duplex(1024);
    let side: Shared = Arc::new(Mutex::new(ReadSide {
        io: Reader::Stream(Box::new(client)),
        buf: BytesMut::new(),
        reads: ReadSize::new(MAX_READ),
        body: Framing::Length(3),
        failed: false,
        gone: false,
        generation: 1,
        waiter: None,
        stall: Stall::new(Duration::from_secs(60)),
    }));
    let first = RequestBody {
        side: Arc::clone(&side),
        generation: 1,
        passed: Passed::default(),
    };
    // The next request has begun on the connection: its body is 5 bytes.
    {
        let mut s = lock(&side);
        s.generation = 2;
        s.body = Framing::Length(5);
    }
    tokio::io::AsyncWriteExt::write_all(&mut peer, b"next!")
        .await
        .expect("write");
    assert!(first.is_end_stream());
    assert_eq!(first.size_hint().exact(), Some(0));
    let mut first = first;
    assert!(first.frame().await.is_none(), "the old body reads nothing");
    drop(first);
    assert!(!lock(&side).gone, "and its drop does not end the new body");
    let second = RequestBody {
        side: Arc::clone(&side),
        generation: 2,
        passed: Passed::default(),
    };
    let got = second.collect().await.expect("body").to_bytes();
    assert_eq!(got, "next!");
}

/// A body of `len` bytes read off a duplex pipe, with a body-read timeout.
fn timed_body(len: u64, timeout: Duration) -> (RequestBody, tokio::io::DuplexStream) {
    let (client, peer) = tokio::io::duplex(1024);
    let side: Shared = Arc::new(Mutex::new(ReadSide {
        io: Reader::Stream(Box::new(client)),
        buf: BytesMut::new(),
        reads: ReadSize::new(MAX_READ),
        body: Framing::Length(len),
        failed: false,
        gone: false,
        generation: 1,
        waiter: None,
        stall: Stall::new(timeout),
    }));
    let body = RequestBody {
        side,
        generation: 1,
        passed: Passed::default(),
    };
    (body, peer)
}

#[tokio::test]
async fn a_body_whose_client_stalls_fails_after_the_body_read_timeout() {
    use http_body_util::BodyExt;
    let (mut body, mut peer) = timed_body(5, Duration::from_millis(150));
    peer.write_all(b"ab").await.expect("write");
    let frame = body.frame().await.expect("a frame").expect("data");
    assert_eq!(frame.into_data().expect("data").as_ref(), b"ab");
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the timeout fires")
        .expect("an error frame")
        .expect_err("the stalled body fails");
    assert!(crate::body::is_body_timeout(err.as_ref()), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(140));
    // Failed for good: nothing more is read.
    peer.write_all(b"cde").await.expect("write");
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn a_slow_body_that_keeps_coming_is_not_timed_out() {
    use http_body_util::BodyExt;
    let (mut body, mut peer) = timed_body(8, Duration::from_millis(200));
    let writer = tokio::spawn(async move {
        // 8 bytes over about 0.8 s: four times the timeout in all, but
        // never a gap of it.
        for b in b"slowbody" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peer.write_all(&[*b]).await.expect("write");
        }
        peer
    });
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("no timeout between bytes");
        got.extend_from_slice(&frame.into_data().expect("data"));
    }
    assert_eq!(got, b"slowbody");
    writer.await.expect("writer");
}

/// The mapped fields of a head, as (name, value) pairs.
fn mapped(head: &Head) -> Vec<(&str, &str)> {
    head.parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().expect("text")))
        .collect()
}

/// The passed lines of a head, as one text.
fn passed_text(head: &Head) -> String {
    head.passed
        .runs()
        .map(|run| std::str::from_utf8(run).expect("text"))
        .collect()
}

/// A Chromium fetch's field lines, and whether each passes unmapped.
const CHROMIUM_FETCH: &[(&str, bool)] = &[
    ("Host: lab.apps.test", false),
    ("Connection: keep-alive", false),
    ("sec-ch-ua-platform: \"Linux\"", true),
    ("User-Agent: Mozilla/5.0 (X11; Linux x86_64)  ", true),
    ("sec-ch-ua: \"Chromium\";v=\"156\"", true),
    ("Accept: */*", true),
    ("Sec-Fetch-Site: same-origin", true),
    ("Sec-Fetch-Mode: cors", true),
    ("Referer: http://lab.apps.test/lab", true),
    ("Accept-Language: en-US,en;q=0.9", true),
    ("Cookie: _pp_session=abc", false),
    ("Priority: u=1, i", true),
];

#[test]
fn a_browsers_fields_no_step_reads_pass_as_they_came_and_the_rest_are_mapped() {
    let mut raw = String::from("GET /lab/api HTTP/1.1\r\n");
    for (line, _) in CHROMIUM_FETCH {
        raw.push_str(&format!("{line}\r\n"));
    }
    raw.push_str("\r\n");
    let passing = CHROMIUM_FETCH.iter().filter(|(_, passes)| *passes);
    // The lines as sent, blanks and case kept.
    let want_text: String = passing.clone().map(|(l, _)| format!("{l}\r\n")).collect();
    // As the header limit counts: name, value and four bytes a field.
    let want_bytes: usize = passing
        .map(|(l, _)| {
            l.split_once(':')
                .map_or(0, |(n, v)| n.len() + v.trim().len() + 4)
        })
        .sum();
    let mut names = codec::Names::default();
    // Twice on one connection: the second head reads its names from the
    // connection's cache, marks included.
    for _ in 0..2 {
        let mut buf = BytesMut::from(raw.as_bytes());
        let head = parse_head(&mut buf, 64 * 1024, &mut Vec::new(), &mut names)
            .expect("parses")
            .expect("complete");
        assert_eq!(
            mapped(&head),
            [("host", "lab.apps.test"), ("cookie", "_pp_session=abc"),]
        );
        assert_eq!(passed_text(&head), want_text);
        assert_eq!(head.passed.runs().count(), 2, "either side of the cookie");
        assert!(!head.passed.asks_html(), "a fetch, not a navigation");
        assert_eq!(head.passed.bytes(), want_bytes);
    }
}

#[test]
fn a_connection_field_naming_a_passed_name_keeps_every_field_in_the_map() {
    let head = head(
        "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nReferer: r\r\n\
         Connection: keep-alive, User-Agent\r\n\r\n",
    );
    assert!(head.passed.is_empty(), "the hop-by-hop step must find it");
    assert_eq!(
        mapped(&head),
        [
            ("host", "a"),
            ("connection", "keep-alive, User-Agent"),
            ("user-agent", "t"),
            ("referer", "r"),
        ]
    );
}

#[test]
fn a_passed_name_on_a_line_ended_by_a_bare_lf_is_mapped() {
    let head = head("GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: t\nReferer: r\r\n\r\n");
    assert_eq!(mapped(&head), [("host", "a"), ("user-agent", "t")]);
    assert_eq!(passed_text(&head), "Referer: r\r\n");
}

#[test]
fn past_the_runs_bound_passed_names_go_to_the_map() {
    // Passed and mapped names in turn: every passed field starts a run.
    let mut raw = String::from("GET / HTTP/1.1\r\n");
    for i in 0..12 {
        raw.push_str(&format!("Referer: r{i}\r\nX-Other: o{i}\r\n"));
    }
    raw.push_str("\r\n");
    let head = head(&raw);
    assert_eq!(head.passed.runs().count(), 8);
    let refs: Vec<_> = head.parts.headers.get_all("referer").iter().collect();
    assert_eq!(refs, ["r8", "r9", "r10", "r11"]);
    assert_eq!(head.parts.headers.get_all("x-other").iter().count(), 12);
}

#[test]
fn a_passed_accept_or_fetch_mode_that_asks_for_html_is_noted() {
    for (field, html) in [
        ("Accept: text/html,application/xhtml+xml", true),
        ("Sec-Fetch-Mode: navigate", true),
        ("Accept: application/json", false),
        ("Sec-Fetch-Mode: cors", false),
        ("Sec-Fetch-Dest: navigate", false),
    ] {
        let head = head(&format!("GET / HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n"));
        assert_eq!(passed_text(&head), format!("{field}\r\n"));
        assert_eq!(head.passed.asks_html(), html, "{field}");
    }
}

#[test]
fn a_connection_field_of_its_own_tokens_alone_is_taken_in_and_not_mapped() {
    for (field, mapped_as, keep_alive, upgrade) in [
        ("Connection: keep-alive", None, true, false),
        ("Connection: close", None, false, false),
        ("Connection: Keep-Alive, close", None, false, false),
        ("Connection: Upgrade", Some("Upgrade"), true, true),
        (
            "Connection: keep-alive, Upgrade",
            Some("keep-alive, Upgrade"),
            true,
            true,
        ),
        (
            "Connection: close, X-Secret",
            Some("close, X-Secret"),
            false,
            false,
        ),
    ] {
        let head = head(&format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{field}\r\nUpgrade: websocket\r\n\r\n"
        ));
        let got = head
            .parts
            .headers
            .get("connection")
            .map(|v| v.to_str().expect("text"));
        assert_eq!(got, mapped_as, "{field}");
        assert_eq!(head.keep_alive, keep_alive, "{field}");
        assert_eq!(head.upgrade, upgrade, "{field}");
    }
}
