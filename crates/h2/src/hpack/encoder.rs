//! Writing a header block (RFC 7541 §6) without the dynamic table.
//!
//! Every field is a literal without indexing, its name an index into the
//! static table where it has one, its value sent raw. Nothing enters the
//! peer's dynamic table, so the encoder keeps no state, never has to
//! evict or send a table size update, and is right for any
//! `SETTINGS_HEADER_TABLE_SIZE` the peer sends, 0 included. What it gives
//! up is size on the wire: a field the peer has seen before costs its
//! bytes again (an answer's fields are some 200 bytes; its body is most
//! of what an answer weighs). HAProxy's HTTP/2 encoder makes the same
//! trade; `h2`'s indexes and Huffman-codes every literal, which was an
//! eighth of the proxy's instructions an HTTP/2 request.

use super::table::static_name;

/// `:status` codes with a full entry in the static table.
fn static_status(code: u16) -> Option<u8> {
    Some(match code {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => return None,
    })
}

/// Appends `:status`, the first field of an answer's block.
pub fn encode_status(dst: &mut Vec<u8>, code: u16) {
    if let Some(i) = static_status(code) {
        dst.push(0x80 | i);
        return;
    }
    // Literal without indexing, name index 8 (`:status`); three digits.
    let digits = [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    dst.push(0x08);
    string(dst, &digits);
}

/// Appends one field as a literal without indexing, or never indexed
/// (§6.2.3) when `never_indexed`: a value an intermediary must not
/// compress either. `name` must be lowercase (RFC 9113 §8.2.1).
pub fn encode_field(dst: &mut Vec<u8>, name: &[u8], value: &[u8], never_indexed: bool) {
    let pattern = if never_indexed { 0x10 } else { 0x00 };
    match static_name(name) {
        Some(i) => integer(dst, usize::from(i), 4, pattern),
        None => {
            dst.push(pattern);
            string(dst, name);
        }
    }
    string(dst, value);
}

/// Appends a raw string literal (§5.2, H clear).
fn string(dst: &mut Vec<u8>, s: &[u8]) {
    integer(dst, s.len(), 7, 0);
    dst.extend_from_slice(s);
}

/// Appends `value` with an `n`-bit prefix (§5.1) after `pattern`'s bits.
fn integer(dst: &mut Vec<u8>, value: usize, n: u32, pattern: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        dst.push(pattern | value as u8);
        return;
    }
    dst.push(pattern | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        dst.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.push(rest as u8);
}

#[cfg(test)]
mod tests;
