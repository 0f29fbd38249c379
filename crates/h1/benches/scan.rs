//! Reading a head, this crate against httparse (what the proxy used
//! before): a browser's request as the server reads it, and nginx's
//! answer as the upstream client reads it, each with no hints (a
//! connection's first head) and with the last head's names as hints (every
//! later one).
//!
//! `cargo bench -p pp-h1`. Results are compared between runs on one
//! machine (docs/performance.md), never asserted in tests.

use std::hint::black_box;

fn main() {
    divan::main();
}

const BROWSER: &[u8] = b"GET /lab/api/contents?content=1&hash=0 HTTP/1.1\r\n\
Host: s.apps.example:8443\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\n\
Connection: keep-alive\r\n\
Accept: */*\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Referer: http://apps.example/lab\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
sec-ch-ua: \"Chromium\";v=\"156\", \"Not-A.Brand\";v=\"24\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Priority: u=1, i\r\n\
Cookie: _pp_session=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0BBQkNERUZHSElKS0xNTk9QUVJTVFVW\r\n\
\r\n";

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.26.3\r\n\
Date: Mon, 07 Dec 2026 20:00:00 GMT\r\n\
Content-Type: text/plain\r\n\
Content-Length: 1024\r\n\
Last-Modified: Mon, 07 Dec 2026 19:00:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6755a3c0-400\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

/// Every field's name and value bytes summed, so neither side's work can
/// be left out; the head's length with them.
fn ours(buf: &[u8], fields: usize, hints: &[&[u8]]) -> usize {
    let mut lines = pp_h1::Fields::new(buf, fields);
    let mut seen = 0;
    let mut i = 0;
    loop {
        match lines.next(hints.get(i).copied().unwrap_or_default()) {
            Ok(Some(line)) => seen += line.name(buf).len() + line.value(buf).len(),
            Ok(None) => return seen + lines.end(),
            Err(_) => return 0,
        }
        i += 1;
    }
}

fn names(buf: &[u8], fields: usize) -> Vec<&[u8]> {
    let mut lines = pp_h1::Fields::new(buf, fields);
    let mut out = Vec::new();
    while let Ok(Some(line)) = lines.next(b"") {
        out.push(line.name(buf));
    }
    out
}

#[divan::bench(args = [false, true])]
fn request_scan(bencher: divan::Bencher, hinted: bool) {
    let fields = pp_h1::request_line(BROWSER).expect("a request").fields;
    let hints = if hinted {
        names(BROWSER, fields)
    } else {
        Vec::new()
    };
    bencher.bench(|| {
        let line = pp_h1::request_line(black_box(BROWSER)).expect("a request");
        ours(BROWSER, line.fields, &hints)
    });
}

#[divan::bench]
fn request_httparse(bencher: divan::Bencher) {
    bencher.bench(|| {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut slots);
        let len = match req.parse(black_box(BROWSER)) {
            Ok(httparse::Status::Complete(len)) => len,
            _ => 0,
        };
        len + req
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len())
            .sum::<usize>()
    });
}

#[divan::bench(args = [false, true])]
fn answer_scan(bencher: divan::Bencher, hinted: bool) {
    let fields = pp_h1::status_line(ANSWER).expect("an answer").fields;
    let hints = if hinted {
        names(ANSWER, fields)
    } else {
        Vec::new()
    };
    bencher.bench(|| {
        let line = pp_h1::status_line(black_box(ANSWER)).expect("an answer");
        ours(ANSWER, line.fields, &hints)
    });
}

#[divan::bench]
fn answer_httparse(bencher: divan::Bencher) {
    bencher.bench(|| {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut slots);
        let len = match res.parse(black_box(ANSWER)) {
            Ok(httparse::Status::Complete(len)) => len,
            _ => 0,
        };
        len + res
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len())
            .sum::<usize>()
    });
}
