use pp_testkit::Rng;

use super::*;

/// What a head came to, in a form both parsers can be brought to.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Partial,
    Malformed,
    Head {
        /// Method and target, or the status code, as text.
        start: String,
        minor: u8,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        len: usize,
    },
}

/// Field lines from `at` with this scanner; each line offered the name at
/// its place in `hints` (as a connection's kept names would be).
fn scan_fields(buf: &[u8], at: usize, hints: &[&[u8]]) -> Scan<(Vec<(Vec<u8>, Vec<u8>)>, usize)> {
    let mut fields = Fields::new(buf, at);
    let mut out = Vec::new();
    loop {
        let hint = hints.get(out.len()).copied().unwrap_or_default();
        let Some(line) = fields.next(hint)? else {
            return Ok((out, fields.end()));
        };
        assert_eq!(
            line.hinted,
            !hint.is_empty() && line.name(buf) == hint,
            "a hint is taken exactly when the line has that name"
        );
        if let Some(whole) = line.whole() {
            assert!(buf[whole.clone()].ends_with(b"\r\n"));
            assert!(buf[whole].starts_with(line.name(buf)));
        }
        out.push((line.name(buf).to_vec(), line.value(buf).to_vec()));
    }
}

fn ours_request(buf: &[u8], hints: &[&[u8]]) -> Read {
    let line = match request_line(buf) {
        Ok(l) => l,
        Err(Stop::Partial) => return Read::Partial,
        Err(Stop::Malformed(_)) => return Read::Malformed,
    };
    match scan_fields(buf, line.fields, hints) {
        Ok((fields, len)) => Read::Head {
            start: format!(
                "{} {}",
                String::from_utf8_lossy(&buf[line.method]),
                String::from_utf8_lossy(&buf[line.target])
            ),
            minor: line.minor,
            fields,
            len,
        },
        Err(Stop::Partial) => Read::Partial,
        Err(Stop::Malformed(_)) => Read::Malformed,
    }
}

fn ours_response(buf: &[u8], hints: &[&[u8]]) -> Read {
    let line = match status_line(buf) {
        Ok(l) => l,
        Err(Stop::Partial) => return Read::Partial,
        Err(Stop::Malformed(_)) => return Read::Malformed,
    };
    match scan_fields(buf, line.fields, hints) {
        Ok((fields, len)) => Read::Head {
            start: line.code.to_string(),
            minor: line.minor,
            fields,
            len,
        },
        Err(Stop::Partial) => Read::Partial,
        Err(Stop::Malformed(_)) => Read::Malformed,
    }
}

fn theirs_fields(headers: &[httparse::Header<'_>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
        .collect()
}

fn theirs_request(buf: &[u8]) -> Read {
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Read::Head {
            start: format!("{} {}", req.method.unwrap_or(""), req.path.unwrap_or("")),
            minor: req.version.unwrap_or(9),
            fields: theirs_fields(req.headers),
            len,
        },
        Ok(httparse::Status::Partial) => Read::Partial,
        Err(_) => Read::Malformed,
    }
}

fn theirs_response(buf: &[u8]) -> Read {
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut res = httparse::Response::new(&mut slots);
    match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Read::Head {
            start: res.code.unwrap_or(0).to_string(),
            minor: res.version.unwrap_or(9),
            fields: theirs_fields(res.headers),
            len,
        },
        Ok(httparse::Status::Partial) => Read::Partial,
        Err(_) => Read::Malformed,
    }
}

const BROWSER: &[u8] = b"GET /lab/api/contents?content=1&hash=0 HTTP/1.1\r\n\
Host: s.apps.example:8443\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\n\
Connection: keep-alive\r\n\
Accept: */*\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
sec-ch-ua: \"Chromium\";v=\"156\", \"Not-A.Brand\";v=\"24\"\r\n\
Cookie: _pp_session=abc.def; theme=dark\r\n\
X-Empty:\r\n\
X-Blank: \t \r\n\
X-Tabbed:\tone\ttwo\t \r\n\
\r\nbody";

/// nginx's answer to a 1 KiB GET, as the bench's upstream sends it
/// (shared with the benchmark, `testdata/`).
const ANSWER: &[u8] = include_bytes!("../testdata/nginx-answer.http");

#[test]
fn a_browser_request_reads_as_httparse_reads_it() {
    let read = ours_request(BROWSER, &[]);
    assert_eq!(read, theirs_request(BROWSER));
    let Read::Head {
        start, fields, len, ..
    } = read
    else {
        panic!("not read: {read:?}");
    };
    assert_eq!(start, "GET /lab/api/contents?content=1&hash=0");
    assert_eq!(&BROWSER[len..], b"body");
    assert_eq!(fields[8], (b"X-Empty".to_vec(), b"".to_vec()));
    assert_eq!(fields[9], (b"X-Blank".to_vec(), b"".to_vec()));
    assert_eq!(fields[10], (b"X-Tabbed".to_vec(), b"one\ttwo".to_vec()));
}

#[test]
fn hints_are_taken_only_where_the_name_matches() {
    let hints: [&[u8]; 5] = [b"Host", b"User-Agent", b"Accept", b"Connect", b"Ho"];
    assert_eq!(ours_request(BROWSER, &hints), theirs_request(BROWSER));
    let line = request_line(BROWSER).expect("a start line");
    let mut fields = Fields::new(BROWSER, line.fields);
    let host = fields.next(b"Host").expect("a line").expect("a field");
    assert!(host.hinted);
    assert_eq!(host.value(BROWSER), b"s.apps.example:8443");
    // A hint that is a prefix of the name is not the name.
    let agent = fields.next(b"User").expect("a line").expect("a field");
    assert!(!agent.hinted);
    assert_eq!(agent.name(BROWSER), b"User-Agent");
}

#[test]
fn answers_read_as_httparse_reads_them() {
    for head in [
        ANSWER,
        b"HTTP/1.1 204\r\n\r\n",
        b"HTTP/1.0 404 Not  Found \r\nX: y\n\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"\r\n\nHTTP/1.1 200 \xe9t\xe9\r\n\r\n",
        b"HTTP/1.1 999 \t\r\n\r\n",
    ] {
        let read = ours_response(head, &[]);
        assert!(matches!(read, Read::Head { .. }), "{read:?}");
        assert_eq!(read, theirs_response(head), "{}", head.escape_ascii());
    }
}

/// `head` is refused by this scanner and by httparse alike.
fn refused_by_both(head: &[u8], ours: fn(&[u8], &[&[u8]]) -> Read, theirs: fn(&[u8]) -> Read) {
    let shown = head.escape_ascii();
    assert_eq!(ours(head, &[]), Read::Malformed, "{shown}");
    assert_eq!(theirs(head), Read::Malformed, "{shown}");
}

#[test]
fn what_httparse_refuses_is_refused() {
    let requests: [&[u8]; 14] = [
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1 \r\n\r\n",
        b"GET / HTTP/1.1\rX\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\n: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n\rx",
    ];
    for head in requests {
        refused_by_both(head, ours_request, theirs_request);
    }
    let answers: [&[u8]; 6] = [
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/1.1 200 O\x01K\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX\r\n\r\n",
        b"HTTP/3 200 OK\r\n\r\n",
    ];
    for head in answers {
        refused_by_both(head, ours_response, theirs_response);
    }
}

#[test]
fn every_prefix_is_partial_as_httparse_says() {
    for cut in 0..BROWSER.len() {
        let head = &BROWSER[..cut];
        assert_eq!(
            ours_request(head, &[]),
            theirs_request(head),
            "cut at {cut}"
        );
    }
    for cut in 0..ANSWER.len() {
        let head = &ANSWER[..cut];
        assert_eq!(
            ours_response(head, &[]),
            theirs_response(head),
            "cut at {cut}"
        );
    }
}

/// Bytes a mutation puts in: the ones the grammar turns on.
const ALPHABET: &[u8] = b"\r\n\t :\x00\x01\x7f\x80\xc3\xa9\xffaZ0/.-_\"?#%";

fn mutate(rng: &mut Rng, head: &[u8]) -> Vec<u8> {
    let mut out = head.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        let byte = ALPHABET[rng.below(ALPHABET.len())];
        match rng.below(4) {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ => out.truncate(at.max(1)),
        }
    }
    out
}

/// Random damage to real heads: whatever httparse makes of the bytes
/// (a head, partial, refused), this scanner makes of them too, with or
/// without names offered as hints (some right, some wrong).
#[test]
fn damaged_heads_read_as_httparse_reads_them() {
    let requests: [&[u8]; 3] = [
        BROWSER,
        b"POST /api/v1/routes HTTP/1.0\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"\r\nOPTIONS * HTTP/1.1\nHost: h\n\n",
    ];
    let answers: [&[u8]; 2] = [
        ANSWER,
        b"HTTP/1.0 302 Found\r\nLocation: /x\r\nSet-Cookie: a=b\r\n\r\n",
    ];
    let hints: [&[u8]; 4] = [b"Host", b"User-Agent", b"Server", b"Date"];
    let mut rng = Rng(0x5eed_5ca1);
    let mut tally = [0usize; 3];
    for i in 0..20_000 {
        let offered = if i % 2 == 0 { &hints[..] } else { &[] };
        if i % 3 == 0 {
            let seed = answers[rng.below(answers.len())];
            let head = mutate(&mut rng, seed);
            assert_eq!(
                ours_response(&head, offered),
                theirs_response(&head),
                "case {i}: {}",
                head.escape_ascii()
            );
        } else {
            let seed = requests[rng.below(requests.len())];
            let head = mutate(&mut rng, seed);
            let read = ours_request(&head, offered);
            tally[match read {
                Read::Head { .. } => 0,
                Read::Partial => 1,
                Read::Malformed => 2,
            }] += 1;
            assert_eq!(
                read,
                theirs_request(&head),
                "case {i}: {}",
                head.escape_ascii()
            );
        }
    }
    // The damage leaves enough heads whole, cut short and refused for the
    // comparison to mean something each way.
    assert!(
        tally.iter().all(|&n| n > 1_000),
        "heads, partial, refused: {tally:?}"
    );
}

#[test]
fn a_trailer_section_reads_as_httparse_reads_it() {
    let mut rng = Rng(0x7a11);
    let section: &[u8] = b"Expires: never\r\nX-Checksum: abc \r\n\r\n";
    for i in 0..5_000 {
        let bytes = if i == 0 {
            section.to_vec()
        } else {
            mutate(&mut rng, section)
        };
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let theirs = match httparse::parse_headers(&bytes, &mut slots) {
            Ok(httparse::Status::Complete((len, h))) => Ok((theirs_fields(h), len)),
            Ok(httparse::Status::Partial) => Err(Stop::Partial),
            Err(_) => Err(Stop::Malformed("")),
        };
        let ours = scan_fields(&bytes, 0, &[]).map_err(|e| match e {
            Stop::Partial => Stop::Partial,
            Stop::Malformed(_) => Stop::Malformed(""),
        });
        assert_eq!(ours, theirs, "case {i}: {}", bytes.escape_ascii());
    }
}

#[test]
fn a_line_runs_through_its_blanks_and_crlf_and_a_bare_lf_is_no_line() {
    let buf = b"A: 1  \r\nB: 2\nC: 3\r\n\r\n";
    let mut fields = Fields::new(buf, 0);
    let mut next = || fields.next(b"").expect("a line").expect("a field");
    let (a, b, c) = (next(), next(), next());
    assert_eq!((a.whole(), a.value(buf)), (Some(0..8), &b"1"[..]));
    assert_eq!(b.whole(), None, "ended by a bare LF");
    assert_eq!((c.whole(), c.value(buf)), (Some(13..19), &b"3"[..]));
    assert_eq!(fields.next(b""), Ok(None));
    assert_eq!(fields.end(), buf.len());
}

#[test]
fn same_compares_every_length_and_every_byte() {
    let a: Vec<u8> = (0..40u8).collect();
    for n in 0..a.len() {
        assert!(same(&a[..n], &a[..n]), "length {n}");
        assert!(!same(&a[..n], &a[..n + 1]), "lengths {n} and {}", n + 1);
        for at in 0..n {
            let mut b = a[..n].to_vec();
            b[at] ^= 0x20;
            assert!(!same(&a[..n], &b), "length {n}, differing at {at}");
        }
    }
}
