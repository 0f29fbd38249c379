//! Hostile input, at random: byte strings and frame sequences no client
//! should send, fed to the decoder and the server connection, which must
//! refuse them with an error and never panic. A fixed seed keeps each run
//! the same; the counts keep it under a second in a debug build.

use bytes::BytesMut;
use pp_testkit::Rng;

use crate::frame::{self, Head, Kind, HEAD_LEN, PREFACE};
use crate::hpack::{encode_field, huffman, Decoder};
use crate::server::{Config, Connection};

/// A valid request block; its cookie never indexed at times.
fn valid_block(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a.example"),
        (":path", "/x"),
        ("cookie", "k=v"),
    ] {
        encode_field(&mut b, n.as_bytes(), v.as_bytes(), rng.below(4) == 0);
    }
    b
}

/// A valid request block, then bytes of it changed at random.
fn mutated_block(rng: &mut Rng) -> Vec<u8> {
    let mut b = valid_block(rng);
    for _ in 0..=rng.below(4) {
        let i = rng.below(b.len());
        b[i] = rng.next_u64() as u8;
    }
    b
}

#[test]
fn random_blocks_and_huffman_strings_are_refused_without_a_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoder = Decoder::new(4096);
    let mut out = Vec::new();
    for round in 0..20_000 {
        let block = if round % 2 == 0 {
            let len = rng.below(64);
            rng.bytes(len)
        } else {
            mutated_block(&mut rng)
        };
        // A failed block leaves the table unknown: a real connection ends
        // there, so a fresh decoder takes the next one.
        if decoder.decode(&block, 1 << 16, |_| {}).is_err() {
            decoder = Decoder::new(4096);
        }
        out.clear();
        let _ = huffman::decode(&block, &mut out);
    }
}

#[test]
fn random_frames_after_the_preface_end_in_events_or_a_goaway_without_a_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut refused = 0;
    for _ in 0..2_000 {
        let mut c = Connection::new(Config {
            max_concurrent_streams: 4,
            stream_window: 1024,
            connection_window: 65_535,
            max_header_list: 1024,
            max_resets: 8,
            ..Config::default()
        });
        let mut wire = PREFACE.to_vec();
        frame::write_settings(&mut wire, &[]);
        for _ in 0..rng.below(12) {
            let kind = rng.below(11) as u8;
            let flags = rng.next_u64() as u8;
            let stream = match rng.below(4) {
                0 => 0,
                1 => 1,
                2 => rng.below(8) as u32 * 2 + 1,
                _ => rng.next_u64() as u32,
            };
            let payload = if kind == Kind::Headers.code() && rng.below(2) == 0 {
                mutated_block(&mut rng)
            } else {
                let len = rng.below(40);
                rng.bytes(len)
            };
            Head {
                len: payload.len() as u32,
                kind,
                flags,
                stream,
            }
            .write(&mut wire);
            wire.extend_from_slice(&payload);
        }
        // Delivered in random cuts, as a socket would.
        let mut events = Vec::new();
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        let mut failed = false;
        while !rest.is_empty() && !failed {
            let n = (1 + rng.below(64)).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            failed = c.receive(&mut buf, &mut events).is_err();
        }
        refused += usize::from(failed);
        // Whatever the server wrote is whole frames.
        let mut out = c.output();
        while !out.is_empty() {
            let (h, tail) = out.split_first_chunk::<HEAD_LEN>().expect("a whole head");
            let h = Head::parse(h);
            out = tail.get(h.len as usize..).expect("a whole payload");
        }
    }
    assert!(
        refused > 1_000,
        "most random sequences break a rule: {refused} of 2,000 did"
    );
}

/// A plausible frame: one a client does send, on a stream it may well
/// have open, now and then with a byte changed.
fn plausible_frame(rng: &mut Rng, wire: &mut Vec<u8>, next_stream: &mut u32) {
    let open = if *next_stream > 1 {
        1 + 2 * rng.below(*next_stream as usize / 2) as u32
    } else {
        1
    };
    let start = wire.len();
    match rng.below(9) {
        0 | 1 => {
            let block = if rng.below(8) == 0 {
                mutated_block(rng)
            } else {
                valid_block(rng)
            };
            let end = if rng.below(2) == 0 {
                frame::flags::END_STREAM
            } else {
                0
            };
            let max = 1 + rng.below(64);
            frame::write_headers(wire, *next_stream, &block, end != 0, max);
            *next_stream += 2;
        }
        2 | 3 => {
            let len = rng.below(300);
            let data = rng.bytes(len);
            frame::write_data_head(wire, open, data.len(), rng.below(3) == 0);
            wire.extend_from_slice(&data);
        }
        4 => frame::write_window_update(
            wire,
            if rng.below(2) == 0 { 0 } else { open },
            1 + rng.below(1 << 20) as u32,
        ),
        5 => frame::write_rst_stream(wire, open, frame::Reason::CANCEL),
        6 => frame::write_ping(wire, rng.below(4) == 0, [1; 8]),
        7 => frame::write_settings(
            wire,
            &[
                (
                    frame::SETTING_INITIAL_WINDOW_SIZE,
                    rng.below(1 << 17) as u32,
                ),
                (
                    frame::SETTING_MAX_FRAME_SIZE,
                    16_384 + rng.below(1 << 10) as u32,
                ),
            ],
        ),
        _ => {
            // Trailers.
            let mut t = Vec::new();
            encode_field(&mut t, b"x-sum", b"1", false);
            frame::write_headers(wire, open, &t, true, 16_384);
        }
    }
    if rng.below(16) == 0 {
        let i = start + rng.below(wire.len() - start);
        wire[i] = rng.next_u64() as u8;
    }
}

#[test]
fn plausible_frame_sequences_with_faults_never_panic_and_reach_deep_states() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let (mut requests, mut data, mut refused) = (0, 0, 0);
    for _ in 0..1_000 {
        let mut c = Connection::new(Config {
            max_concurrent_streams: 4,
            stream_window: 1024,
            max_resets: 8,
            ..Config::default()
        });
        let mut wire = PREFACE.to_vec();
        frame::write_settings(&mut wire, &[]);
        let mut next_stream = 1;
        for _ in 0..rng.below(40) {
            plausible_frame(&mut rng, &mut wire, &mut next_stream);
        }
        let mut events = Vec::new();
        let mut buf = BytesMut::from(&wire[..]);
        if c.receive(&mut buf, &mut events).is_err() {
            refused += 1;
        }
        for e in &events {
            match e {
                crate::server::Event::Request { stream, .. } => {
                    requests += 1;
                    let mut h = http::HeaderMap::new();
                    h.insert("x-a", http::HeaderValue::from_static("1"));
                    c.send_headers(*stream, 200, &h, false);
                    c.send_data(*stream, &[0; 3000], true);
                }
                crate::server::Event::Data {
                    stream, data: d, ..
                } => {
                    data += 1;
                    c.release(*stream, d.len());
                }
                _ => {}
            }
        }
        let n = c.output().len();
        c.written(n);
    }
    assert!(
        requests > 500 && data > 100 && refused > 100,
        "requests {requests}, data {data}, refused {refused}"
    );
}
