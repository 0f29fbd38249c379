use super::super::Decoder;
use super::*;
use crate::hex;

#[test]
fn statuses_are_indexed_where_the_static_table_has_them() {
    for (code, want) in [
        (200, "88"),
        (304, "8b"),
        (500, "8e"),
        (302, "08 03 333032"),
        (101, "08 03 313031"),
    ] {
        let mut out = Vec::new();
        encode_status(&mut out, code);
        assert_eq!(out, hex(want), "{code}");
    }
}

#[test]
fn fields_are_literals_with_static_names_where_there_are_any() {
    for (name, value, never, want) in [
        // content-type is 31: the 4-bit prefix fills (15), then 16.
        (
            "content-type",
            "text/plain",
            false,
            "0f10 0a 746578742f706c61696e",
        ),
        ("date", "x", false, "0f12 01 78"),
        ("age", "1", false, "0f06 01 31"),
        (":path", "/", false, "04 01 2f"),
        ("x-id", "7", true, "10 04 782d6964 01 37"),
        ("set-cookie", "a=b", true, "1f28 03 613d62"),
    ] {
        let mut out = Vec::new();
        encode_field(&mut out, name.as_bytes(), value.as_bytes(), never);
        assert_eq!(out, hex(want), "{name}");
    }
}

#[test]
fn what_is_encoded_decodes_to_the_same_fields() {
    let long = "v".repeat(300);
    let head: Vec<(&str, &str, bool)> = vec![
        ("server", "nginx", false),
        ("content-length", "1024", false),
        ("x-correlation-id", "0123456789abcdef0123456789abcdef", true),
        ("x-long", &long, false),
        ("", "", false),
    ];
    let mut block = Vec::new();
    encode_status(&mut block, 418);
    for (n, v, never) in &head {
        encode_field(&mut block, n.as_bytes(), v.as_bytes(), *never);
    }
    let mut d = Decoder::new(0);
    let mut got = Vec::new();
    d.decode(&block, usize::MAX, |f| {
        got.push((f.name.to_vec(), f.value.to_vec(), f.never_indexed));
    })
    .expect("decodes");
    let mut want = vec![(b":status".to_vec(), b"418".to_vec(), false)];
    want.extend(
        head.iter()
            .map(|(n, v, never)| (n.as_bytes().to_vec(), v.as_bytes().to_vec(), *never)),
    );
    assert_eq!(got, want);
    assert_eq!(d.table_len(), 0, "nothing is indexed");
}
