use super::*;
use crate::hex;

fn fields(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let mut out = Vec::new();
    d.decode(block, usize::MAX, |f| {
        out.push((
            String::from_utf8_lossy(f.name).into_owned(),
            String::from_utf8_lossy(f.value).into_owned(),
        ));
    })?;
    Ok(out)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// RFC 7541 Appendix C.3 (raw strings) and C.4 (the same requests
/// Huffman-coded): three requests on one connection, each later one
/// using the entries the earlier ones added.
#[test]
fn appendix_c_requests_decode_with_their_table() {
    let plain = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];
    let huffman = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    let want = [
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ]),
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ]),
        pairs(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]),
    ];
    for blocks in [plain, huffman] {
        let mut d = Decoder::new(4096);
        for ((block, want), (size, len)) in
            blocks.iter().zip(&want).zip([(57, 1), (110, 2), (164, 3)])
        {
            assert_eq!(&fields(&mut d, &hex(block)).expect("decodes"), want);
            assert_eq!((d.table_size(), d.table_len()), (size, len));
        }
        // The newest entry is index 62.
        assert_eq!(
            d.table.get(62),
            Some((&b"custom-key"[..], &b"custom-value"[..]))
        );
        assert_eq!(
            d.table.get(64),
            Some((&b":authority"[..], &b"www.example.com"[..]))
        );
        assert_eq!(d.table.get(65), None);
    }
}

#[test]
fn the_oldest_entries_make_room_and_an_oversize_one_empties_the_table() {
    // A 100-byte table: "aaaa: 1111" is 40 bytes, two fit.
    let mut d = Decoder::new(100);
    let lit = |name: &str, value: &str| {
        let mut b = vec![0x40, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
        b
    };
    fields(&mut d, &lit("aaaa", "1111")).expect("decodes");
    fields(&mut d, &lit("bbbb", "2222")).expect("decodes");
    assert_eq!((d.table_size(), d.table_len()), (80, 2));
    fields(&mut d, &lit("cccc", "3333")).expect("decodes");
    assert_eq!((d.table_size(), d.table_len()), (80, 2));
    assert_eq!(
        d.table.get(63),
        Some((&b"bbbb"[..], &b"2222"[..])),
        "aaaa went first"
    );
    // A literal naming index 63, the entry its own insert evicts: 0x7f
    // fills the 6-bit prefix (63), 0x00 adds nothing.
    let by_index = [&hex("7f00 04")[..], b"4444"].concat();
    assert_eq!(
        fields(&mut d, &by_index).expect("decodes"),
        pairs(&[("bbbb", "4444")])
    );
    assert_eq!(d.table.get(62), Some((&b"bbbb"[..], &b"4444"[..])));
    // Larger than the table: empties it, no error.
    let big = "x".repeat(80);
    assert_eq!(
        fields(&mut d, &lit("dddd", &big)).expect("decodes"),
        pairs(&[("dddd", &big)])
    );
    assert_eq!((d.table_size(), d.table_len()), (0, 0));
}

#[test]
fn table_size_updates_shrink_the_table_and_keep_to_the_limit() {
    let mut d = Decoder::new(4096);
    fields(
        &mut d,
        &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
    )
    .expect("decodes");
    assert_eq!(d.table_len(), 1);
    // 0x20: size 0 (evicts everything), then 0x3f e1 1f: size 4096, then a field.
    assert_eq!(
        fields(&mut d, &hex("20 3fe11f 82")).expect("decodes"),
        pairs(&[(":method", "GET")])
    );
    assert_eq!(d.table_len(), 0);
    assert_eq!(
        fields(&mut d, &hex("3fe21f")),
        Err(DecodeError::TableSize(4097, 4096))
    );
    assert_eq!(
        fields(&mut d, &hex("82 20")),
        Err(DecodeError::LateTableSize)
    );
}

#[test]
fn malformed_blocks_are_refused() {
    for (block, want) in [
        ("80", DecodeError::Index(0)),
        ("be", DecodeError::Index(62)),
        ("7f00", DecodeError::Index(63)),
        ("0f", DecodeError::Truncated),
        ("4005 6162", DecodeError::Truncated),
        ("4001 61", DecodeError::Truncated),
        ("ff ffffffff0f", DecodeError::Integer),
        ("ff 808080808001", DecodeError::Integer),
        ("4081 18 0161", DecodeError::Huffman(HuffmanError)),
    ] {
        assert_eq!(
            fields(&mut Decoder::new(4096), &hex(block)),
            Err(want),
            "{block}"
        );
    }
}

#[test]
fn fields_past_the_list_limit_are_counted_not_handed_over() {
    let block = hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    // :method GET is 42 bytes, :scheme http 43, :path / 38.
    let mut seen = Vec::new();
    let size = Decoder::new(4096)
        .decode(&block, 42 + 43, |f| seen.push(f.name.to_vec()))
        .expect("decodes");
    assert_eq!(seen, [b":method".to_vec(), b":scheme".to_vec()]);
    assert_eq!(size, 42 + 43 + 38 + 57);
}

#[test]
fn never_indexed_literals_say_so() {
    let mut seen = Vec::new();
    // 0x10: never indexed, literal name "a", value "b"; 0x00: without indexing.
    let mut d = Decoder::new(4096);
    d.decode(&hex("10 0161 0162 00 0161 0163"), usize::MAX, |f| {
        seen.push((f.value.to_vec(), f.never_indexed));
    })
    .expect("decodes");
    assert_eq!(seen, [(b"b".to_vec(), true), (b"c".to_vec(), false)]);
    assert_eq!(d.table_len(), 0, "neither enters the table");
}

#[test]
fn values_read_from_the_dynamic_table_come_with_its_buffer() {
    let mut d = Decoder::new(4096);
    fields(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).expect("decodes");
    let mut seen = Vec::new();
    d.decode(&hex("8286 84be"), usize::MAX, |f| {
        let within = f.shared.map(|b| {
            let range = b.as_ptr_range();
            range.contains(&f.value.as_ptr()) && b.slice_ref(f.value) == f.value
        });
        seen.push((f.name.to_vec(), within));
    })
    .expect("decodes");
    assert_eq!(
        seen,
        [
            (b":method".to_vec(), None),
            (b":scheme".to_vec(), None),
            (b":path".to_vec(), None),
            (b":authority".to_vec(), Some(true)),
        ],
        "static entries have no buffer; the dynamic one's value is a slice of its entry"
    );
}

#[test]
fn regular_fields_in_the_dynamic_table_come_parsed_and_pseudo_headers_do_not() {
    let mut d = Decoder::new(4096);
    fields(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).expect("decodes");
    fields(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf")).expect("decodes");
    // A value no request may carry, entered in the table all the same.
    fields(&mut d, &hex("4003 782d61 0220 31")).expect("decodes");
    let mut seen = Vec::new();
    d.decode(&hex("be bf c0"), usize::MAX, |f| {
        seen.push(
            f.parsed
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().expect("text").to_owned())),
        );
    })
    .expect("decodes");
    assert_eq!(
        seen,
        [
            None,
            Some(("cache-control".to_owned(), "no-cache".to_owned())),
            None
        ],
        "x-a's value starts with a space; :authority is a pseudo-header"
    );
}
