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

/// nginx's answer to a 1 KiB GET, as the bench's upstream sends it
/// (shared with the tests, `testdata/`).
const ANSWER: &[u8] = include_bytes!("../testdata/nginx-answer.http");

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

/// Where a head's field lines start, as this crate reads its start line.
type Start = fn(&[u8]) -> Result<usize, pp_h1::Stop>;

fn request_start(buf: &[u8]) -> Result<usize, pp_h1::Stop> {
    pp_h1::request_line(buf).map(|l| l.fields)
}

fn answer_start(buf: &[u8]) -> Result<usize, pp_h1::Stop> {
    pp_h1::status_line(buf).map(|l| l.fields)
}

/// `head` read with this crate: start line, then fields, hinted with its
/// own names or not.
fn scan(bencher: divan::Bencher, head: &'static [u8], start: Start, hinted: bool) {
    let fields = start(head).expect("a head");
    let hints = if hinted {
        names(head, fields)
    } else {
        Vec::new()
    };
    bencher.bench(|| {
        let fields = start(black_box(head)).expect("a head");
        ours(head, fields, &hints)
    });
}

/// What httparse made of a head: its length and every field's bytes.
fn theirs(parsed: httparse::Result<usize>, headers: &[httparse::Header<'_>]) -> usize {
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        _ => 0,
    };
    len + headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum::<usize>()
}

#[divan::bench(args = [false, true])]
fn request_scan(bencher: divan::Bencher, hinted: bool) {
    scan(bencher, BROWSER, request_start, hinted);
}

#[divan::bench]
fn request_httparse(bencher: divan::Bencher) {
    bencher.bench(|| {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut slots);
        let parsed = req.parse(black_box(BROWSER));
        theirs(parsed, req.headers)
    });
}

#[divan::bench(args = [false, true])]
fn answer_scan(bencher: divan::Bencher, hinted: bool) {
    scan(bencher, ANSWER, answer_start, hinted);
}

#[divan::bench]
fn answer_httparse(bencher: divan::Bencher) {
    bencher.bench(|| {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut slots);
        let parsed = res.parse(black_box(ANSWER));
        theirs(parsed, res.headers)
    });
}
