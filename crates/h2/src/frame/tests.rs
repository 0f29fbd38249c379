use super::*;
use crate::hex;

fn head(kind: Kind, flags: u8, stream: u32, len: usize) -> Head {
    Head::new(kind, flags, stream, len)
}

fn conn<T>(r: Reason) -> Result<T, FrameError> {
    Err(FrameError::Connection(r))
}

/// Splits written frames back into (head, payload) pairs.
fn frames(mut b: &[u8]) -> Vec<(Head, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (h, rest) = b.split_first_chunk::<HEAD_LEN>().expect("a whole head");
        let h = Head::parse(h);
        let (payload, rest) = rest.split_at(h.len as usize);
        out.push((h, payload.to_vec()));
        b = rest;
    }
    out
}

#[test]
fn heads_read_back_as_written_and_the_reserved_bit_is_dropped() {
    let mut b = Vec::new();
    head(
        Kind::Headers,
        flags::END_HEADERS | flags::END_STREAM,
        7,
        0x01_02_03,
    )
    .write(&mut b);
    assert_eq!(b, hex("010203 01 05 00000007"));
    let read = Head::parse(&b.try_into().expect("nine bytes"));
    assert_eq!(
        (read.len, read.kind, read.flags, read.stream),
        (0x01_02_03, 1, 5, 7)
    );
    assert!(read.has(flags::END_STREAM));
    let reserved = Head::parse(&hex("000000 00 00 80000003").try_into().expect("nine bytes"));
    assert_eq!(reserved.stream, 3);
    assert_eq!(Kind::from_u8(9), Some(Kind::Continuation));
    assert_eq!(
        Kind::from_u8(0xa),
        None,
        "unknown types are ignored by the caller"
    );
}

#[test]
fn padding_is_dropped_and_too_much_of_it_is_a_connection_error() {
    let padded = head(Kind::Data, flags::PADDED, 1, 0);
    assert_eq!(unpad(&padded, &hex("02 6162 0000")), Ok(&b"ab"[..]));
    assert_eq!(unpad(&padded, &hex("00")), Ok(&b""[..]));
    assert_eq!(
        unpad(&head(Kind::Data, 0, 1, 0), &hex("02 6162")),
        Ok(&hex("026162")[..])
    );
    let bad = Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
    assert_eq!(
        unpad(&padded, &hex("03 6162 00")),
        Ok(&b""[..]),
        "padding fills the rest"
    );
    assert_eq!(
        unpad(&padded, &hex("04 6162 00")),
        bad,
        "padding as long as the payload"
    );
    assert_eq!(unpad(&padded, &[]), bad);
}

#[test]
fn a_headers_fragment_loses_its_priority_and_may_not_depend_on_itself() {
    let h = head(Kind::Headers, flags::PRIORITY | flags::PADDED, 3, 0);
    // Pad length 1, dependency 1 (exclusive bit set), weight, fragment, pad.
    assert_eq!(
        headers_fragment(&h, &hex("01 80000001 10 8286 00")),
        Ok(&hex("8286")[..])
    );
    assert_eq!(
        headers_fragment(&h, &hex("00 00000003 10 82")),
        Err(FrameError::Stream(Reason::PROTOCOL_ERROR, 3))
    );
    assert_eq!(
        headers_fragment(&h, &hex("00 000000")),
        Err(FrameError::Connection(Reason::FRAME_SIZE_ERROR))
    );
}

#[test]
fn control_frames_check_their_stream_and_length() {
    let on = |kind, stream| head(kind, 0, stream, 0);
    assert_eq!(
        priority(&on(Kind::Priority, 1), &hex("00000003 10")),
        Ok(())
    );
    assert_eq!(
        priority(&on(Kind::Priority, 0), &hex("00000003 10")),
        conn(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(
        priority(&on(Kind::Priority, 1), &hex("00000003")),
        Err(FrameError::Stream(Reason::FRAME_SIZE_ERROR, 1))
    );
    assert_eq!(
        rst_stream(&on(Kind::RstStream, 1), &hex("00000008")),
        Ok(Reason::CANCEL)
    );
    assert_eq!(
        rst_stream(&on(Kind::RstStream, 0), &hex("00000008")),
        conn(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(
        rst_stream(&on(Kind::RstStream, 1), &hex("000008")),
        conn(Reason::FRAME_SIZE_ERROR)
    );
    assert_eq!(
        ping(&on(Kind::Ping, 0), &hex("0102030405060708")),
        Ok([1, 2, 3, 4, 5, 6, 7, 8])
    );
    assert_eq!(
        ping(&on(Kind::Ping, 1), &hex("0102030405060708")),
        conn(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(
        ping(&on(Kind::Ping, 0), &hex("01")),
        conn(Reason::FRAME_SIZE_ERROR)
    );
    assert_eq!(
        go_away(&on(Kind::GoAway, 0), &hex("80000005 0000000b 6869")),
        Ok(GoAway {
            last_stream: 5,
            reason: Reason::ENHANCE_YOUR_CALM,
            debug: b"hi"
        })
    );
    assert_eq!(
        go_away(&on(Kind::GoAway, 0), &hex("00000005")),
        conn(Reason::FRAME_SIZE_ERROR)
    );
    assert_eq!(
        window_update(&on(Kind::WindowUpdate, 0), &hex("80000100")),
        Ok(256)
    );
    assert_eq!(
        window_update(&on(Kind::WindowUpdate, 0), &hex("00000000")),
        conn(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(
        window_update(&on(Kind::WindowUpdate, 5), &hex("80000000")),
        Err(FrameError::Stream(Reason::PROTOCOL_ERROR, 5))
    );
    assert_eq!(
        window_update(&on(Kind::WindowUpdate, 5), &hex("0001")),
        conn(Reason::FRAME_SIZE_ERROR)
    );
    assert_eq!(Reason(0xb).to_string(), "ENHANCE_YOUR_CALM (0xb)");
    assert_eq!(Reason(0x99).name(), "unknown");
}

#[test]
fn settings_apply_in_order_and_refuse_values_out_of_range() {
    let h = head(Kind::Settings, 0, 0, 0);
    let mut s = Settings::default();
    let mut payload = Vec::new();
    for (id, v) in [
        (SETTING_HEADER_TABLE_SIZE, 0),
        (SETTING_ENABLE_PUSH, 0),
        (SETTING_MAX_CONCURRENT_STREAMS, 100),
        (SETTING_INITIAL_WINDOW_SIZE, 1 << 20),
        (SETTING_MAX_FRAME_SIZE, 1 << 20),
        (SETTING_MAX_HEADER_LIST_SIZE, 8192),
        (SETTING_ENABLE_CONNECT_PROTOCOL, 1),
        (0x99, 7),
    ] {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&u32::to_be_bytes(v));
    }
    s.apply(&h, &payload).expect("valid settings");
    assert_eq!(
        s,
        Settings {
            header_table_size: 0,
            enable_push: false,
            max_concurrent_streams: Some(100),
            initial_window_size: 1 << 20,
            max_frame_size: 1 << 20,
            max_header_list_size: Some(8192),
            enable_connect_protocol: true,
        }
    );
    for (bytes, want) in [
        ("0002 00000002", conn(Reason::PROTOCOL_ERROR)),
        ("0004 80000000", conn(Reason::FLOW_CONTROL_ERROR)),
        ("0005 00003fff", conn(Reason::PROTOCOL_ERROR)),
        ("0005 01000000", conn(Reason::PROTOCOL_ERROR)),
        ("0008 00000002", conn(Reason::PROTOCOL_ERROR)),
        ("0004 000000", conn(Reason::FRAME_SIZE_ERROR)),
    ] {
        assert_eq!(Settings::default().apply(&h, &hex(bytes)), want, "{bytes}");
    }
    assert_eq!(
        Settings::default().apply(&head(Kind::Settings, 0, 1, 0), &[]),
        conn(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(
        Settings::check_ack(&head(Kind::Settings, flags::ACK, 0, 0)),
        Ok(())
    );
    assert_eq!(
        Settings::check_ack(&head(Kind::Settings, flags::ACK, 0, 6)),
        conn(Reason::FRAME_SIZE_ERROR)
    );
}

#[test]
fn control_frames_are_written_as_the_spec_lays_them_out() {
    let mut b = Vec::new();
    write_settings(
        &mut b,
        &[
            (SETTING_MAX_CONCURRENT_STREAMS, 256),
            (SETTING_INITIAL_WINDOW_SIZE, 1 << 20),
        ],
    );
    write_settings_ack(&mut b);
    write_ping(&mut b, true, [9; 8]);
    write_go_away(&mut b, 7, Reason::PROTOCOL_ERROR, b"x");
    write_rst_stream(&mut b, 3, Reason::CANCEL);
    write_window_update(&mut b, 0, 1 << 16);
    write_data_head(&mut b, 5, 2, true);
    b.extend_from_slice(b"ok");
    assert_eq!(
        b,
        hex(concat!(
            "00000c 04 00 00000000 0003 00000100 0004 00100000",
            "000000 04 01 00000000",
            "000008 06 01 00000000 0909090909090909",
            "000009 07 00 00000000 00000007 00000001 78",
            "000004 03 00 00000003 00000008",
            "000004 08 00 00000000 00010000",
            "000002 00 01 00000005 6f6b",
        ))
    );
}

#[test]
fn a_header_block_past_the_frame_size_continues_in_continuation_frames() {
    let block: Vec<u8> = (0..40).collect();
    let mut b = Vec::new();
    write_headers(&mut b, 9, &block, true, 16);
    let got = frames(&b);
    let shape: Vec<_> = got
        .iter()
        .map(|(h, p)| (h.kind, h.flags, h.stream, p.len()))
        .collect();
    assert_eq!(
        shape,
        [
            (1, flags::END_STREAM, 9, 16),
            (9, 0, 9, 16),
            (9, flags::END_HEADERS, 9, 8),
        ]
    );
    assert_eq!(
        got.iter().flat_map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        block
    );

    let mut b = Vec::new();
    write_headers(&mut b, 1, &block[..3], false, 16);
    let got = frames(&b);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.kind, got[0].0.flags), (1, flags::END_HEADERS));

    let mut b = Vec::new();
    write_headers(&mut b, 1, &[], true, 16);
    assert_eq!(
        b,
        hex("000000 01 05 00000001"),
        "an empty block is one frame"
    );
}
