//! Micro-benchmarks of HTTP/2 as a proxy's server meets it: a browser's
//! request decoded (first on a connection, its literals Huffman-coded and
//! indexed; then a repeat, which is mostly indexes), an answer's head
//! encoded, and a whole request's protocol work in the server connection
//! (its HEADERS frame read into an `http::Request`, then a 1 KiB answer's
//! HEADERS and DATA written).
//!
//! `cargo bench -p pp-h2`. Compared between runs on one machine
//! (docs/performance.md), never asserted in tests.

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};
use pp_h2::frame::{write_headers, write_settings, PREFACE};
use pp_h2::hpack::{encode_field, encode_status, huffman, static_name, Decoder};
use pp_h2::server::{Config, Connection, Event};

fn main() {
    divan::main();
}

/// A browser's GET with the fields Chrome sends, and a session cookie.
const REQUEST: &[(&str, &str)] = &[
    (":method", "GET"),
    (":authority", "app-7f3a.apps.example.com"),
    (":scheme", "https"),
    (":path", "/lab/api/contents/notebooks?content=1&hash=0"),
    ("sec-ch-ua", "\"Chromium\";v=\"156\", \"Not.A/Brand\";v=\"99\""),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("sec-fetch-site", "same-origin"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9"),
    ("cookie", "pp_session=v1.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGh"),
];

/// The block a browser's encoder sends for [`REQUEST`]: every field a
/// Huffman-coded literal with incremental indexing the first time, an
/// index after.
fn request_block(first: bool) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, (name, value)) in REQUEST.iter().enumerate() {
        if !first {
            // Entries are newest first: field i is at 62 + (n - 1 - i).
            let index = 62 + REQUEST.len() - 1 - i;
            assert!(index < 127, "a one-byte index");
            b.push(0x80 | index as u8);
            continue;
        }
        match static_name(name.as_bytes()) {
            Some(n) if n < 63 => b.push(0x40 | n),
            _ => {
                b.push(0x40);
                huffman_string(&mut b, name.as_bytes());
            }
        }
        huffman_string(&mut b, value.as_bytes());
    }
    b
}

fn huffman_string(b: &mut Vec<u8>, s: &[u8]) {
    let len = huffman::encoded_len(s);
    assert!(len < 127, "a one-byte length");
    b.push(0x80 | len as u8);
    huffman::encode(s, b);
}

#[divan::bench]
fn decode_first_request(bencher: divan::Bencher) {
    let block = request_block(true);
    bencher.bench_local(|| {
        let mut d = Decoder::new(4096);
        let mut bytes = 0;
        d.decode(divan::black_box(&block), 16 << 10, |f| {
            bytes += f.name.len() + f.value.len()
        })
        .expect("decodes");
        bytes
    });
}

#[divan::bench]
fn decode_repeat_request(bencher: divan::Bencher) {
    let mut d = Decoder::new(4096);
    d.decode(&request_block(true), 16 << 10, |_| {})
        .expect("decodes");
    let block = request_block(false);
    bencher.bench_local(|| {
        let mut bytes = 0;
        d.decode(divan::black_box(&block), 16 << 10, |f| {
            bytes += f.name.len() + f.value.len()
        })
        .expect("decodes");
        bytes
    });
}

/// The bench upstream's answer to a 1 KiB file, with the correlation id.
const ANSWER: &[(&str, &str, bool)] = &[
    ("server", "nginx/1.22.1", false),
    ("date", "Mon, 07 Dec 2026 18:05:11 GMT", false),
    ("content-type", "text/plain", false),
    ("content-length", "1024", false),
    ("last-modified", "Mon, 07 Dec 2026 17:40:02 GMT", false),
    ("etag", "\"6755a0a2-400\"", false),
    ("accept-ranges", "bytes", false),
    ("x-correlation-id", "0f3c9a7e5b2d4c6a8e1f3b5d7c9a2e4f", true),
];

#[divan::bench]
fn encode_answer(bencher: divan::Bencher) {
    let mut out = Vec::with_capacity(512);
    bencher.bench_local(|| {
        out.clear();
        encode_status(&mut out, 200);
        for (n, v, never) in divan::black_box(ANSWER) {
            encode_field(&mut out, n.as_bytes(), v.as_bytes(), *never);
        }
        out.len()
    });
}

/// One request on an open connection, as the bench's `h2load` run makes
/// it: its HEADERS read (the fields indexed, as a browser's repeat
/// request is), the answer's head and 1 KiB body written.
#[divan::bench]
fn server_request_round(bencher: divan::Bencher) {
    let mut c = Connection::new(Config::default());
    let mut wire = PREFACE.to_vec();
    write_settings(&mut wire, &[]);
    let mut first = Vec::new();
    write_headers(&mut first, 1, &request_block(true), true, 16_384);
    wire.extend_from_slice(&first);
    let mut events = Vec::new();
    c.receive(&mut BytesMut::from(&wire[..]), &mut events)
        .expect("handshake");
    let mut answer = HeaderMap::new();
    for (n, v, never) in ANSWER {
        let mut v = HeaderValue::from_static(v);
        v.set_sensitive(*never);
        answer.append(HeaderName::from_static(n), v);
    }
    let body = vec![b'x'; 1024];
    let repeat = request_block(false);
    let mut stream = 1u32;
    let mut buf = BytesMut::with_capacity(4096);
    bencher.bench_local(|| {
        stream += 2;
        let mut frame = Vec::with_capacity(64);
        write_headers(&mut frame, stream, &repeat, true, 16_384);
        buf.extend_from_slice(&frame);
        events.clear();
        c.receive(&mut buf, &mut events).expect("a request");
        let Some(Event::Request {
            stream: id,
            request,
            ..
        }) = events.pop()
        else {
            panic!("a request event");
        };
        divan::black_box(&request);
        c.send_headers(id, 200, &answer, false);
        c.send_data(id, &body, true);
        let n = c.output().len();
        c.written(n);
        n
    });
}
