use bytes::BytesMut;
use http::HeaderMap;

use super::*;
use crate::frame::{
    write_data_head, write_headers, write_rst_stream, write_settings, write_window_update,
};
use crate::hpack::encode_field;

/// A client's side of the wire: frames built by hand, the server's
/// output read back frame by frame.
struct Wire {
    server: Connection,
    events: Vec<Event>,
}

type Frame = (Head, Vec<u8>);

fn frames(mut b: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some((h, rest)) = b.split_first_chunk::<HEAD_LEN>() {
        let h = Head::parse(h);
        let (payload, rest) = rest.split_at(h.len as usize);
        out.push((h, payload.to_vec()));
        b = rest;
    }
    out
}

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        encode_field(&mut b, n.as_bytes(), v.as_bytes(), false);
    }
    b
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "app.example.com"),
    (":path", "/x?y=1"),
];

impl Wire {
    fn new(config: Config) -> Self {
        let mut w = Self {
            server: Connection::new(config),
            events: Vec::new(),
        };
        let mut b = PREFACE.to_vec();
        write_settings(&mut b, &[]);
        w.send(&b).expect("handshake");
        w
    }

    /// Feeds bytes; returns what the server wrote since the last call.
    fn send(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, ConnError> {
        let mut buf = BytesMut::from(bytes);
        let res = self.server.receive(&mut buf, &mut self.events);
        assert!(buf.is_empty() || res.is_err(), "whole frames were sent");
        res?;
        let out = frames(self.server.output());
        let n = self.server.output().len();
        self.server.written(n);
        Ok(out)
    }

    fn out(&mut self) -> Vec<Frame> {
        let out = frames(self.server.output());
        let n = self.server.output().len();
        self.server.written(n);
        out
    }

    fn headers(
        &mut self,
        stream: u32,
        fields: &[(&str, &str)],
        end_stream: bool,
    ) -> Result<Vec<Frame>, ConnError> {
        let mut b = Vec::new();
        write_headers(&mut b, stream, &block(fields), end_stream, 16_384);
        self.send(&b)
    }

    fn data(
        &mut self,
        stream: u32,
        data: &[u8],
        end_stream: bool,
    ) -> Result<Vec<Frame>, ConnError> {
        let mut b = Vec::new();
        write_data_head(&mut b, stream, data.len(), end_stream);
        b.extend_from_slice(data);
        self.send(&b)
    }

    fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn kinds(frames: &[Frame]) -> Vec<(Option<Kind>, u8, u32)> {
    frames
        .iter()
        .map(|(h, _)| (Kind::from_u8(h.kind), h.flags, h.stream))
        .collect()
}

fn go_away_reason(frames: &[Frame]) -> Option<Reason> {
    frames
        .iter()
        .find(|(h, _)| h.kind == Kind::GoAway.code())
        .map(|(h, p)| frame::go_away(h, p).expect("a GOAWAY").reason)
}

fn rst_reason(frames: &[Frame], stream: u32) -> Option<Reason> {
    frames
        .iter()
        .find(|(h, _)| h.kind == Kind::RstStream.code() && h.stream == stream)
        .map(|(h, p)| frame::rst_stream(h, p).expect("an RST_STREAM"))
}

#[test]
fn a_get_is_an_event_and_its_answer_frames_end_the_stream() {
    let server = Connection::new(Config::default());
    let first = kinds(&frames(server.output()));
    assert_eq!(
        first,
        [
            (Some(Kind::Settings), 0, 0),
            (Some(Kind::WindowUpdate), 0, 0)
        ],
        "settings, then the connection window"
    );

    let mut w = Wire::new(Config::default());
    let acked = w.headers(1, GET, true).expect("a request");
    assert!(
        acked.is_empty(),
        "the settings ack went out with the handshake"
    );
    let events = w.take();
    let [Event::Request {
        stream: 1,
        request,
        end_stream: true,
        content_length: None,
    }] = &events[..]
    else {
        panic!("one request: {events:?}");
    };
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.uri(), "https://app.example.com/x?y=1");
    assert_eq!(request.version(), http::Version::HTTP_2);
    assert_eq!(w.server.open_streams(), 1);

    let mut h = HeaderMap::new();
    h.insert("content-type", "text/plain".parse().expect("value"));
    h.insert("connection", "close".parse().expect("value"));
    assert!(w.server.send_headers(1, 200, &h, false));
    assert_eq!(w.server.send_data(1, b"hello", true), 5);
    let out = w.out();
    assert_eq!(
        kinds(&out),
        [
            (Some(Kind::Headers), flags::END_HEADERS, 1),
            (Some(Kind::Data), flags::END_STREAM, 1)
        ]
    );
    let mut fields = Vec::new();
    Decoder::new(4096)
        .decode(&out[0].1, usize::MAX, |f| {
            fields.push((f.name.to_vec(), f.value.to_vec()))
        })
        .expect("decodes");
    assert_eq!(
        fields,
        [
            (b":status".to_vec(), b"200".to_vec()),
            (b"content-type".to_vec(), b"text/plain".to_vec())
        ],
        "connection is dropped"
    );
    assert_eq!(out[1].1, b"hello");
    assert_eq!(w.server.open_streams(), 0, "both sides ended");
}

#[test]
fn split_cookies_are_joined_and_malformed_requests_are_reset() {
    let mut w = Wire::new(Config::default());
    let mut fields = GET.to_vec();
    fields.extend([("cookie", "a=1"), ("x-k", "v"), ("cookie", "b=2")]);
    w.headers(1, &fields, true).expect("a request");
    let events = w.take();
    let [Event::Request { request, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(request.headers()["cookie"], "a=1; b=2");
    assert_eq!(request.headers()["x-k"], "v");

    let mut stream = 1;
    for (extra, why) in [
        (vec![("X-Upper", "v")], "uppercase name"),
        (vec![("connection", "keep-alive")], "connection-specific"),
        (vec![("te", "gzip")], "te other than trailers"),
        (
            vec![(":protocol", "websocket")],
            "extended CONNECT is not offered",
        ),
        (vec![("x-bad", " padded")], "whitespace at the value's edge"),
        (vec![("content-length", "5")], "a length with no body"),
    ] {
        stream += 2;
        let mut fields = GET.to_vec();
        fields.extend(extra);
        let out = w
            .headers(stream, &fields, true)
            .expect("a stream error only");
        assert_eq!(
            rst_reason(&out, stream),
            Some(Reason::PROTOCOL_ERROR),
            "{why}"
        );
        assert!(w.take().is_empty(), "{why}: no event");
    }
    stream += 2;
    let out = w
        .headers(stream, &GET[..3], true)
        .expect("a stream error only");
    assert_eq!(
        rst_reason(&out, stream),
        Some(Reason::PROTOCOL_ERROR),
        "no :path"
    );
    stream += 2;
    let out = w
        .headers(
            stream,
            &[
                (":method", "GET"),
                (":path", "/"),
                (":scheme", "http"),
                (":method", "GET"),
            ],
            true,
        )
        .expect("a stream error only");
    assert_eq!(
        rst_reason(&out, stream),
        Some(Reason::PROTOCOL_ERROR),
        "a repeated :method"
    );
    assert_eq!(
        w.server.open_streams(),
        1,
        "the first request is still open"
    );
}

#[test]
fn a_body_arrives_as_data_and_released_bytes_open_the_windows() {
    let config = Config {
        stream_window: 100,
        connection_window: 65_535,
        ..Config::default()
    };
    let mut w = Wire::new(config);
    let mut fields = GET.to_vec();
    fields[0] = (":method", "POST");
    fields.push(("content-length", "120"));
    w.headers(1, &fields, false).expect("a request");
    w.data(1, &[b'a'; 60], false).expect("data");
    let events = w.take();
    assert!(
        matches!(&events[..], [Event::Request { end_stream: false, content_length: Some(120), .. }, Event::Data { data, end_stream: false, .. }] if data.len() == 60)
    );
    // 60 of the 100-byte window used: 41 more is over it.
    let out = w.data(1, &[b'b'; 41], false).expect("a stream error only");
    assert_eq!(rst_reason(&out, 1), Some(Reason::FLOW_CONTROL_ERROR));
    assert!(matches!(
        &w.take()[..],
        [Event::Reset {
            stream: 1,
            reason: Reason::FLOW_CONTROL_ERROR
        }]
    ));

    w.headers(3, &fields, false).expect("a request");
    w.data(3, &[b'a'; 60], false).expect("data");
    w.server.release(3, 60);
    let out = w.out();
    assert_eq!(
        kinds(&out),
        [(Some(Kind::WindowUpdate), 0, 3)],
        "half the stream window owed: updated"
    );
    assert_eq!(frame::window_update(&out[0].0, &out[0].1), Ok(60));
    w.data(3, &[b'b'; 60], true)
        .expect("the rest, now within the window");
    let events = w.take();
    assert!(
        matches!(
            &events[..],
            [
                _,
                _,
                Event::Data {
                    end_stream: true,
                    ..
                }
            ]
        ),
        "{events:?}"
    );

    // A body longer than its content-length.
    fields.pop();
    fields.push(("content-length", "10"));
    w.headers(5, &fields, false).expect("a request");
    let out = w.data(5, &[b'c'; 11], false).expect("a stream error only");
    assert_eq!(rst_reason(&out, 5), Some(Reason::PROTOCOL_ERROR));
}

#[test]
fn more_body_than_the_connection_window_closes_the_connection() {
    let config = Config {
        stream_window: 1 << 20,
        connection_window: 65_535,
        ..Config::default()
    };
    let mut w = Wire::new(config);
    let mut fields = GET.to_vec();
    fields[0] = (":method", "POST");
    w.headers(1, &fields, false).expect("a request");
    for _ in 0..3 {
        w.data(1, &[0; 16_384], false).expect("within the window");
    }
    w.data(1, &[0; 16_383], false)
        .expect("to the window's last byte");
    let err = w.data(1, &[0; 1], false).expect_err("one byte over");
    assert_eq!(err.reason, Reason::FLOW_CONTROL_ERROR);
    assert_eq!(go_away_reason(&w.out()), Some(Reason::FLOW_CONTROL_ERROR));
}

#[test]
fn answers_wait_for_the_clients_windows() {
    let mut w = Wire::new(Config::default());
    let mut b = Vec::new();
    write_settings(
        &mut b,
        &[
            (frame::SETTING_INITIAL_WINDOW_SIZE, 10),
            (frame::SETTING_MAX_FRAME_SIZE, 16_384),
        ],
    );
    w.send(&b).expect("settings");
    w.headers(1, GET, true).expect("a request");
    assert!(w.server.send_headers(1, 200, &HeaderMap::new(), false));
    assert_eq!(
        w.server.send_data(1, &[1; 25], true),
        10,
        "the stream's window"
    );
    assert_eq!(w.server.send_capacity(1), 0);
    let mut out = w.out();
    w.take();
    let mut b = Vec::new();
    write_window_update(&mut b, 1, 100);
    w.send(&b).expect("an update");
    assert!(matches!(&w.take()[..], [Event::WindowOpened]));
    assert_eq!(w.server.send_capacity(1), 100);
    assert_eq!(w.server.send_data(1, &[1; 15], true), 15);
    out.extend(w.out());
    let data: Vec<_> = out
        .iter()
        .filter(|(h, _)| h.kind == 0)
        .map(|(h, p)| (h.flags, p.len()))
        .collect();
    assert_eq!(data, [(0, 10), (flags::END_STREAM, 15)]);
    // A window past 2^31 - 1 is the stream's error.
    w.headers(3, GET, true).expect("a request");
    let mut b = Vec::new();
    write_window_update(&mut b, 3, MAX_WINDOW);
    let out = w.send(&b).expect("a stream error only");
    assert_eq!(rst_reason(&out, 3), Some(Reason::FLOW_CONTROL_ERROR));
}

#[test]
fn protocol_faults_are_connection_errors() {
    for (bytes, want) in [
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), Reason::PROTOCOL_ERROR),
        (
            {
                let mut b = PREFACE.to_vec();
                frame::write_ping(&mut b, false, [0; 8]);
                b
            },
            Reason::PROTOCOL_ERROR,
        ),
    ] {
        let mut c = Connection::new(Config::default());
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            c.receive(&mut buf, &mut Vec::new())
                .expect_err("refused")
                .reason,
            want
        );
    }
    let mut w = Wire::new(Config::default());
    assert_eq!(
        w.headers(2, GET, true).expect_err("even").reason,
        Reason::PROTOCOL_ERROR
    );
    let mut w = Wire::new(Config::default());
    w.headers(5, GET, true).expect("a request");
    assert_eq!(
        w.headers(3, GET, true).expect_err("lower").reason,
        Reason::STREAM_CLOSED
    );
    let mut w = Wire::new(Config::default());
    assert_eq!(
        w.data(1, b"x", false).expect_err("an idle stream").reason,
        Reason::PROTOCOL_ERROR
    );
    let mut w = Wire::new(Config::default());
    let mut b = Vec::new();
    frame::Head::new(Kind::Data, 0, 1, 16_385).write(&mut b);
    b.resize(b.len() + 16_385, 0);
    assert_eq!(
        w.send(&b).expect_err("too large").reason,
        Reason::FRAME_SIZE_ERROR
    );
    let mut w = Wire::new(Config::default());
    w.headers(
        1,
        &[(":method", "GET"), (":path", "/"), (":scheme", "http")],
        true,
    )
    .expect("a request without :authority");
    let mut bad_block = Vec::new();
    write_headers(&mut bad_block, 3, &[0xbf], true, 16_384);
    assert_eq!(
        w.send(&bad_block).expect_err("a bad index").reason,
        Reason::COMPRESSION_ERROR
    );
    assert!(
        w.send(&[]).is_err(),
        "a failed connection reads nothing more"
    );
}

#[test]
fn pings_are_answered_and_a_graceful_close_ignores_new_streams() {
    let mut w = Wire::new(Config::default());
    let mut b = Vec::new();
    frame::write_ping(&mut b, false, [7; 8]);
    let out = w.send(&b).expect("a ping");
    assert_eq!(kinds(&out), [(Some(Kind::Ping), flags::ACK, 0)]);
    assert_eq!(out[0].1, [7; 8]);

    w.headers(1, GET, true).expect("a request");
    w.server.go_away();
    let out = w.out();
    assert_eq!(go_away_reason(&out), Some(Reason::NO_ERROR));
    assert_eq!(
        frame::go_away(&out[0].0, &out[0].1)
            .expect("goaway")
            .last_stream,
        1
    );
    w.take();
    w.headers(3, GET, true).expect("ignored, not an error");
    assert!(w.take().is_empty());
    assert_eq!(w.server.open_streams(), 1, "stream 1 finishes");

    let mut b = Vec::new();
    frame::write_go_away(&mut b, 0, Reason::NO_ERROR, b"");
    w.send(&b).expect("the client's goaway");
    assert!(matches!(
        &w.take()[..],
        [Event::GoAway {
            reason: Reason::NO_ERROR,
            ..
        }]
    ));
}

mod limits;
