//! The limits a hostile client meets: concurrent streams, the header
//! list and block, the reset budget, empty frames, and the buffers an
//! idle or bursting connection gives back.

use http::HeaderMap;

use super::*;

#[test]
fn streams_past_the_limit_are_refused_and_oversize_heads_answered_431() {
    let config = Config {
        max_concurrent_streams: 2,
        max_header_list: 200,
        ..Config::default()
    };
    let mut w = Wire::new(config);
    w.headers(1, GET, true).expect("a request");
    w.headers(3, GET, true).expect("a request");
    let out = w.headers(5, GET, true).expect("a stream error only");
    assert_eq!(rst_reason(&out, 5), Some(Reason::REFUSED_STREAM));
    assert_eq!(w.take().len(), 2);

    let big = "v".repeat(150);
    let mut fields = GET.to_vec();
    fields.push(("x-big", &big));
    let out = w.headers(7, &fields, true).expect("answered, not an error");
    assert_eq!(
        kinds(&out),
        [(
            Some(Kind::Headers),
            flags::END_STREAM | flags::END_HEADERS,
            7
        )]
    );
    assert_eq!(out[0].1, [0x08, 0x03, b'4', b'3', b'1']);
    assert!(w.take().is_empty());
}

#[test]
fn resets_of_open_streams_past_the_budget_close_the_connection() {
    let config = Config {
        max_resets: 3,
        ..Config::default()
    };
    let mut w = Wire::new(config);
    let mut stream = 1;
    let reset = |w: &mut Wire, stream: u32| {
        w.headers(stream, GET, true).expect("a request");
        let mut b = Vec::new();
        write_rst_stream(&mut b, stream, Reason::CANCEL);
        w.send(&b)
    };
    for _ in 0..3 {
        reset(&mut w, stream).expect("within the budget");
        stream += 2;
    }
    // An answered stream earns one back.
    w.headers(stream, GET, true).expect("a request");
    assert!(w.server.send_headers(stream, 204, &HeaderMap::new(), true));
    stream += 2;
    reset(&mut w, stream).expect("the earned reset");
    stream += 2;
    let err = reset(&mut w, stream).expect_err("over the budget");
    assert_eq!(err.reason, Reason::ENHANCE_YOUR_CALM);
    assert_eq!(go_away_reason(&w.out()), Some(Reason::ENHANCE_YOUR_CALM));
    let resets = w
        .take()
        .iter()
        .filter(|e| matches!(e, Event::Reset { .. }))
        .count();
    assert_eq!(resets, 4);
}

#[test]
fn header_blocks_continue_only_in_continuations_and_within_a_bound() {
    let mut w = Wire::new(Config::default());
    let mut b = Vec::new();
    write_headers(&mut b, 1, &block(GET), true, 8);
    w.send(&b).expect("a request over four frames");
    assert!(matches!(&w.take()[..], [Event::Request { stream: 1, .. }]));

    // A PING inside a block.
    let mut b = Vec::new();
    write_headers(&mut b, 3, &block(GET), true, 8);
    let cut = HEAD_LEN + 8;
    frame::write_ping(&mut b, false, [0; 8]);
    let ping = b.split_off(b.len() - HEAD_LEN - 8);
    let mut wire = b[..cut].to_vec();
    wire.extend_from_slice(&ping);
    assert_eq!(
        w.send(&wire).expect_err("interleaved").reason,
        Reason::PROTOCOL_ERROR
    );

    // Endless CONTINUATIONs.
    let mut w = Wire::new(Config {
        max_header_list: 1024,
        ..Config::default()
    });
    let mut b = Vec::new();
    frame::Head::new(Kind::Headers, 0, 1, 0).write(&mut b);
    for _ in 0..3 {
        frame::Head::new(Kind::Continuation, 0, 1, 1000).write(&mut b);
        b.extend_from_slice(&[0x82; 1000]);
    }
    assert_eq!(
        w.send(&b).expect_err("a flood").reason,
        Reason::ENHANCE_YOUR_CALM
    );
}

#[test]
fn request_trailers_end_the_stream_and_empty_frames_are_bounded() {
    let mut w = Wire::new(Config::default());
    let mut fields = GET.to_vec();
    fields[0] = (":method", "POST");
    w.headers(1, &fields, false).expect("a request");
    w.data(1, b"abc", false).expect("data");
    w.headers(1, &[("x-checksum", "1")], true)
        .expect("trailers");
    let events = w.take();
    let [_, _, Event::Trailers {
        stream: 1,
        trailers,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(trailers["x-checksum"], "1");

    w.headers(3, &fields, false).expect("a request");
    let mut b = Vec::new();
    for _ in 0..=MAX_EMPTY_FRAMES {
        write_data_head(&mut b, 3, 0, false);
    }
    assert_eq!(
        w.send(&b).expect_err("a flood").reason,
        Reason::ENHANCE_YOUR_CALM
    );
}

#[test]
fn output_room_past_a_burst_is_given_back_and_an_idle_connection_lets_its_buffers_go() {
    let mut w = Wire::new(Config::default());
    let mut b = Vec::new();
    write_settings(&mut b, &[(frame::SETTING_INITIAL_WINDOW_SIZE, MAX_WINDOW)]);
    write_window_update(&mut b, 0, MAX_WINDOW - DEFAULT_WINDOW);
    w.send(&b).expect("windows");
    w.headers(1, GET, true).expect("a request");
    assert!(w.server.send_headers(1, 200, &HeaderMap::new(), false));
    assert_eq!(w.server.send_data(1, &vec![0; 512 << 10], true), 512 << 10);
    assert!(w.server.out.capacity() >= 512 << 10);
    assert_eq!(w.out().len(), 1 + 32, "the head and 32 frames of 16 KiB");
    assert!(
        w.server.out.capacity() <= OUT_KEEP,
        "{}",
        w.server.out.capacity()
    );
    w.server.shrink();
    assert_eq!(
        (
            w.server.out.capacity(),
            w.server.block.capacity(),
            w.server.scratch.capacity()
        ),
        (0, 0, 0)
    );
    w.headers(3, GET, true).expect("served after");
    assert!(w.server.send_headers(3, 204, &HeaderMap::new(), true));
    assert_eq!(w.out().len(), 1);
}
