use super::*;
use crate::hex;

#[test]
fn derived_codes_are_the_appendix_codes() {
    // (symbol, code, length) rows of RFC 7541 Appendix B.
    for (sym, code, len) in [
        (0, 0x1ff8, 13),
        (1, 0x7f_ffd8, 23),
        (10, 0x3fff_fffc, 30),
        (32, 0x14, 6),
        (48, 0x0, 5),
        (97, 0x3, 5),
        (127, 0xfff_fffc, 28),
        (255, 0x3ff_ffee, 26),
        (EOS, 0x3fff_ffff, 30),
    ] {
        assert_eq!((CODES[sym], LENGTHS[sym]), (code, len), "symbol {sym}");
    }
}

#[test]
fn strings_code_as_in_the_appendix_c_examples() {
    for (text, coded) in [
        ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
        ("no-cache", "a8eb 1064 9cbf"),
        ("custom-key", "25a8 49e9 5ba9 7d7f"),
        ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
    ] {
        let mut out = Vec::new();
        encode(text.as_bytes(), &mut out);
        assert_eq!(out, hex(coded), "{text}");
        assert_eq!(encoded_len(text.as_bytes()), out.len());
        let mut back = Vec::new();
        decode(&out, &mut back).expect("well formed");
        assert_eq!(back, text.as_bytes());
    }
}

#[test]
fn every_byte_value_round_trips() {
    let all: Vec<u8> = (0..=255).collect();
    let mut coded = Vec::new();
    encode(&all, &mut coded);
    let mut back = Vec::new();
    decode(&coded, &mut back).expect("well formed");
    assert_eq!(back, all);

    // Strings of every length up to 64 from a fixed sequence, so every
    // padding length is met.
    let mut x = 0x2545_f491_u32;
    for n in 0..64 {
        let s: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let mut coded = Vec::new();
        encode(&s, &mut coded);
        let mut back = Vec::new();
        decode(&coded, &mut back).expect("well formed");
        assert_eq!(back, s, "length {n}");
    }
}

#[test]
fn malformed_strings_are_refused() {
    let mut out = Vec::new();
    assert_eq!(decode(&[], &mut out), Ok(()), "the empty string");
    // 'a' is 00011: padded with ones it reads back.
    assert_eq!(decode(&[0x1f], &mut out), Ok(()));
    assert_eq!(out, b"a");
    for (bytes, why) in [
        (&[0x18][..], "padding not all ones"),
        (&[0x1f, 0xff][..], "eleven bits of padding"),
        (&[0xff, 0xff, 0xff, 0xff][..], "EOS inside the string"),
        (&[0xff][..], "a code cut short by the string's end"),
    ] {
        assert_eq!(decode(bytes, &mut Vec::new()), Err(HuffmanError), "{why}");
    }
}
